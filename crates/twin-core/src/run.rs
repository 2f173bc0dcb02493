//! The life of a twin's process, the same for both: check the flags, bind, start the workers,
//! print the banner, wait for Ctrl-C or SIGTERM, drain, and exit with a status that says how the
//! drain went. Errors are one line on stderr and exit status 1 — never a backtrace.

use std::io;
use std::net::TcpListener;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{Config, ServerArgs};
use crate::route::ServerKind;
use crate::shutdown::DrainReport;
use crate::{access_log, banner, listener, shutdown};

/// A started twin, as `main` needs to see it.
pub trait Twin {
    fn config(&self) -> &Config;
    /// Requests picked up by a worker and not yet answered.
    fn in_flight(&self) -> usize;
    /// Stop accepting, let in-flight requests finish for up to `timeout`.
    fn shutdown(self, timeout: Duration) -> DrainReport;
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
    let (before, after) = listener::raise_open_files();
    config.open_files = Some(after);
    let raised = if after > before {
        format!("{after} (soft limit raised from {before})")
    } else {
        after.to_string()
    };
    access_log::init(&config);
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
        "{binary}: draining: no new connections; {} request(s) in flight get up to {} s \
         (Ctrl-C again to quit now)",
        twin.in_flight(),
        timeout.as_secs()
    );
    let report = twin.shutdown(timeout);
    eprintln!("{}", report.message(binary, timeout));
    Ok(report.exit_code())
}
