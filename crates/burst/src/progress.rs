//! A live progress line on stderr while a burst runs for more than a moment: how many requests
//! have ended, the time since firing began, and when the model says the last one ends. On a
//! terminal the line is rewritten in place; in a log, a line is written every ten seconds.

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// Quiet for the first moments: short bursts need no progress line.
const QUIET_FOR: Duration = Duration::from_secs(2);
/// How often a non-terminal gets a line.
const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Running {
    label: String,
    n: usize,
    predicted: Option<Duration>,
    started: Instant,
    drawn: bool,
    /// How far into the burst the last logged line was (non-terminal).
    logged: Duration,
}

/// The ticker; ends with [`Progress::end`] per burst and stops when dropped.
#[derive(Debug)]
pub struct Progress {
    ended: Arc<AtomicUsize>,
    current: Arc<Mutex<Option<Running>>>,
    tty: bool,
    task: JoinHandle<()>,
}

impl Progress {
    /// Start ticking on the current tokio runtime. `tty`: stderr is a terminal.
    pub fn start(tty: bool) -> Progress {
        let ended = Arc::new(AtomicUsize::new(0));
        let current: Arc<Mutex<Option<Running>>> = Arc::new(Mutex::new(None));
        let (count, state) = (ended.clone(), current.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let Ok(mut guard) = state.lock() else { return };
                let Some(run) = guard.as_mut() else { continue };
                let elapsed = run.started.elapsed();
                if elapsed < QUIET_FOR {
                    continue;
                }
                let line = line(run, count.load(Ordering::Relaxed), elapsed);
                if tty {
                    eprint!("\r\x1b[2K{line}");
                    let _ = std::io::stderr().flush();
                    run.drawn = true;
                } else if elapsed >= run.logged + LOG_EVERY {
                    // In a log: a line every ten seconds of a burst that lasts that long.
                    eprintln!("{line}");
                    run.logged += LOG_EVERY;
                }
            }
        });
        Progress {
            ended,
            current,
            tty,
            task,
        }
    }

    /// The counter the client bumps as each request ends.
    pub fn counter(&self) -> Arc<AtomicUsize> {
        self.ended.clone()
    }

    /// A burst of `n` begins.
    pub fn begin(&self, label: &str, n: usize, predicted: Option<Duration>) {
        self.ended.store(0, Ordering::Relaxed);
        if let Ok(mut guard) = self.current.lock() {
            *guard = Some(Running {
                label: label.to_owned(),
                n,
                predicted,
                started: Instant::now(),
                drawn: false,
                logged: Duration::ZERO,
            });
        }
    }

    /// The burst has ended: clear the line if one was drawn.
    pub fn end(&self) {
        if let Ok(mut guard) = self.current.lock() {
            if guard.take().is_some_and(|r| r.drawn) && self.tty {
                eprint!("\r\x1b[2K");
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.end();
        self.task.abort();
    }
}

fn line(run: &Running, ended: usize, elapsed: Duration) -> String {
    let model = run.predicted.map_or(String::new(), |p| {
        format!("; the model's last request at {:.1} s", p.as_secs_f64())
    });
    format!(
        "{}: {ended}/{} ended after {:.0} s{model}",
        run.label,
        run.n,
        elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_done_total_elapsed_and_the_predicted_end() {
        let run = Running {
            label: "pool /io × 1000".into(),
            n: 1000,
            predicted: Some(Duration::from_secs(250)),
            started: Instant::now(),
            drawn: false,
            logged: Duration::ZERO,
        };
        assert_eq!(
            line(&run, 40, Duration::from_secs(10)),
            "pool /io × 1000: 40/1000 ended after 10 s; the model's last request at 250.0 s"
        );
    }
}
