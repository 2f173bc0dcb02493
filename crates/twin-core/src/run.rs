//! The life of a twin's process, the same for both: check the flags, bind, start the workers,
//! print the banner, wait for Ctrl-C or SIGTERM, drain, and exit with a status that says how the
//! drain went. Errors are one line on stderr and exit status 1 — never a backtrace.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::config::{Config, ServerArgs};
use crate::route::ServerKind;
use crate::shutdown::{await_workers, DrainReport, InFlight};
use crate::{access_log, banner, listener, platform, reply, shutdown};

/// A started twin: what `main`, the tests and the drain need, the same for both.
pub trait Twin: Sized {
    /// The bound address (the real port when started on port 0).
    fn addr(&self) -> SocketAddr;
    /// The effective configuration, with `url` set.
    fn config(&self) -> &Config;
    /// Counts requests picked up by a worker and not yet answered.
    fn in_flight_counter(&self) -> &InFlight;
    /// Receives one message from each worker as it finishes.
    fn workers_done(&self) -> &mpsc::Receiver<()>;
    /// Begin the drain: refuse new connections, let each worker finish what it holds and stop.
    /// Returns at once.
    fn begin_shutdown(&self);
    /// `GET /events`: ended once the drain is over, so watchers see every request of it end.
    fn events(&self) -> &crate::events::Events;

    /// Requests picked up by a worker and not yet answered.
    fn in_flight(&self) -> usize {
        self.in_flight_counter().count()
    }

    /// Drain: begin, then wait up to `timeout` for every worker to finish.
    fn shutdown(self, timeout: Duration) -> DrainReport {
        let began = Instant::now();
        self.begin_shutdown();
        let report = await_workers(
            self.workers_done(),
            usize::from(self.config().workers),
            began,
            timeout,
            self.in_flight_counter(),
        );
        self.events().close();
        report
    }
}

/// Run a twin's process to the end. `own_flags` sets the binary's own configuration fields;
/// `start` starts the workers on a bound listener.
pub fn main<const P: u16, T: Twin>(
    args: &ServerArgs<P>,
    kind: ServerKind,
    own_flags: impl FnOnce(&mut Config),
    start: impl FnOnce(TcpListener, Config) -> io::Result<T>,
) -> ExitCode {
    match run(args, kind, own_flags, start) {
        Ok(code) => code,
        Err(line) => {
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}

fn run<const P: u16, T: Twin>(
    args: &ServerArgs<P>,
    kind: ServerKind,
    own_flags: impl FnOnce(&mut Config),
    start: impl FnOnce(TcpListener, Config) -> io::Result<T>,
) -> Result<ExitCode, String> {
    let binary = kind.binary();
    let mut config = args
        .config(kind)
        .map_err(|e| format!("{binary}: error: {e}"))?;
    own_flags(&mut config);
    let raised = match platform::raise_open_files() {
        Some((before, after)) => {
            config.open_files = Some(after);
            if after > before {
                format!("{after} (soft limit raised from {before})")
            } else {
                after.to_string()
            }
        }
        None => "no limit to raise on this system".to_owned(),
    };
    let _flush = access_log::init(&config);
    let addr = args.addr();
    let listener =
        listener::bind(addr, config.backlog).map_err(|e| listener::bind_error(binary, addr, &e))?;
    let signals = shutdown::install(binary)?;
    let twin = start(listener, config)
        .map_err(|e| format!("{binary}: error: cannot start the workers: {e}"))?;
    banner::print(twin.config(), &[("open files", raised)]);
    signals.wait();
    let timeout = twin.config().graceful_timeout();
    eprintln!(
        "{binary}: draining: no new work; {} in flight get up to {} s,\n\
         {binary}: and {} get a 503 (Ctrl-C again to quit now)",
        reply::plural(twin.in_flight() as u64, "request"),
        timeout.as_secs(),
        match kind {
            ServerKind::Pool => "requests waiting for a worker",
            ServerKind::EventLoop => "requests not picked up yet (behind a frozen loop)",
        }
    );
    let report = twin.shutdown(timeout);
    eprintln!("{}", report.message(binary, timeout));
    Ok(report.exit_code())
}
