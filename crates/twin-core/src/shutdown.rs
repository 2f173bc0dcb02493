//! Ctrl-C and SIGTERM: the first drains politely, a second quits at once.
//!
//! Both twins drain the same way: stop accepting, let every request a worker has picked up finish
//! (up to `--graceful-timeout`), then exit 0 — or exit 1 naming what was still in flight.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long, once a drain has begun, a connection that has sent nothing yet may still send its
/// request and get an answer (a 503) rather than be closed: the same on both twins.
pub const DRAIN_GRACE: Duration = Duration::from_millis(100);

/// Waits for the first Ctrl-C or SIGTERM.
#[derive(Debug)]
pub struct Signals {
    rx: mpsc::Receiver<()>,
}

/// Install the handler. A second signal prints one line and exits with status 130.
pub fn install(binary: &'static str) -> Result<Signals, String> {
    let (tx, rx) = mpsc::channel();
    let count = AtomicUsize::new(0);
    ctrlc::set_handler(move || {
        if count.fetch_add(1, Ordering::SeqCst) == 0 {
            let _ = tx.send(());
        } else {
            eprintln!("{binary}: second signal: quitting now, without waiting for requests");
            std::process::exit(130);
        }
    })
    .map_err(|e| format!("{binary}: error: cannot install the Ctrl-C handler: {e}"))?;
    Ok(Signals { rx })
}

impl Signals {
    /// Block until the first signal.
    pub fn wait(&self) {
        let _ = self.rx.recv();
    }
}

/// Counts requests that a worker has picked up and not yet answered.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

/// Holds one place in [`InFlight`] until dropped — also when a handler is cancelled.
#[derive(Debug)]
pub struct InFlightGuard(Arc<AtomicUsize>);

impl InFlight {
    pub fn enter(&self) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.0.clone())
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Every worker finished within the graceful timeout.
    pub drained: bool,
    /// Requests still being served when the timeout cut the drain off.
    pub still_in_flight: usize,
    pub took: Duration,
}

impl DrainReport {
    /// One line for stderr.
    pub fn message(&self, binary: &str, timeout: Duration) -> String {
        if self.drained {
            format!("{binary}: drained in {:.2} s; bye", self.took.as_secs_f64())
        } else {
            format!(
                "{binary}: graceful timeout ({} s) reached with {} still in flight; exiting",
                timeout.as_secs(),
                crate::reply::plural(self.still_in_flight as u64, "request")
            )
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        if self.drained {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// Wait until `workers` workers have said they are done on `done`, or until `timeout` after
/// `began`; then report. Both twins drain through this.
pub fn await_workers(
    done: &mpsc::Receiver<()>,
    workers: usize,
    began: Instant,
    timeout: Duration,
    in_flight: &InFlight,
) -> DrainReport {
    let deadline = began + timeout;
    for _ in 0..workers {
        let left = deadline.saturating_duration_since(Instant::now());
        if done.recv_timeout(left).is_err() {
            return DrainReport {
                drained: false,
                still_in_flight: in_flight.count(),
                took: began.elapsed(),
            };
        }
    }
    DrainReport {
        drained: true,
        still_in_flight: 0,
        took: began.elapsed(),
    }
}
