//! The access log, in the reference format, and the diagnostics log beside it.
//!
//! One line goes to stdout the moment a worker (or event loop) *picks a request up*:
//!
//! ```text
//! [2024-10-29 17:04:15] [4242-worker0] GET /io
//! ```
//!
//! That moment is the point of the lesson: on the pool twin the lines of a burst arrive in waves of
//! `--workers`; on the event-loop twin they all arrive at once. `--log-finish` adds a line when the
//! response is done (`… [4242-worker0] 200 GET /io 1001.3ms`). Diagnostics and errors go to stderr,
//! filtered by `RUST_LOG` (default `info`), so piping stdout keeps only the access log.

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::config::Config;
use crate::reply::millis;
use crate::request::{split_target, FAVICON};
use crate::timefmt::{self, unix_micros};

/// The tracing target of access-log events.
pub const TARGET: &str = "twins::access";

/// A request a worker has just picked up; its start line is already written.
#[derive(Debug, Clone, Copy)]
pub struct PickUp {
    /// The wall-clock time of pick-up, as logged and as the body's `started`.
    pub at: SystemTime,
    clock: Instant,
    worker: usize,
    logged: bool,
}

/// Record that `worker` picked up a request: writes the access-log line (unless it is `/healthz`
/// and `--log-healthz` is off) and starts the request's clock.
pub fn pick_up(config: &Config, worker: usize, method: &str, target: &str) -> PickUp {
    let at = SystemTime::now();
    let logged = logged(config, split_target(target).0);
    if logged {
        tracing::info!(target: TARGET, at_us = unix_micros(at), worker, method, uri = target);
    }
    PickUp {
        at,
        clock: Instant::now(),
        worker,
        logged,
    }
}

/// Is a request for `path` in the access log (and so in `/events`)? Not the browser's favicon
/// nor the stream itself; `/healthz` only with `--log-healthz` (scripts poll it).
pub fn logged(config: &Config, path: &str) -> bool {
    path != FAVICON && path != crate::events::PATH && (config.log_healthz || path != "/healthz")
}

impl PickUp {
    /// Whether this request's line was written.
    pub fn logged(&self) -> bool {
        self.logged
    }

    /// Time since pick-up.
    pub fn elapsed(&self) -> Duration {
        self.clock.elapsed()
    }

    /// With `--log-finish`: the line that says the response was sent, its status and duration.
    pub fn finish(&self, config: &Config, method: &str, target: &str, status: u16) {
        if self.logged && config.log_finish {
            let elapsed_us = u64::try_from(self.elapsed().as_micros()).unwrap_or(u64::MAX);
            tracing::info!(
                target: TARGET,
                at_us = unix_micros(SystemTime::now()),
                worker = self.worker,
                method,
                uri = target,
                status,
                elapsed_us
            );
        }
    }
}

/// A request whose client reset its connection before a worker picked it up (it gave up: Ctrl-C,
/// Esc on the stage): not served. One line, as nginx logs a 499, so the log says where the
/// request went: `[…] [4242-worker0] 499 GET /io client gone before pick-up: skipped`.
pub fn skipped(config: &Config, worker: usize, method: &str, target: &str) {
    gone(
        config,
        worker,
        method,
        target,
        "client gone before pick-up: skipped",
    );
}

/// A request picked up, then dropped because its client went away before its answer: on the
/// event loop, hyper drops the handler (an `/io` still waiting for a thread-pool slot never
/// runs): `… 499 GET /io client gone: dropped`.
pub fn dropped(config: &Config, worker: usize, method: &str, target: &str) {
    gone(config, worker, method, target, "client gone: dropped");
}

/// A request turned away at once because the server already holds `limit` (`flag`:
/// `--limit-concurrency`, or the pool's `--max-queue`): no worker picked it up, so the line names
/// none — `[…] [4242] 503 GET /io shed: --limit-concurrency 8 reached`.
pub fn shed(config: &Config, method: &str, target: &str, flag: &str, limit: usize) {
    if logged(config, split_target(target).0) {
        tracing::info!(
            target: TARGET,
            at_us = unix_micros(SystemTime::now()),
            method,
            uri = target,
            status = 503u16,
            shed = format!("shed: {flag} {limit} reached").as_str()
        );
    }
}

fn gone(config: &Config, worker: usize, method: &str, target: &str, why: &'static str) {
    if logged(config, split_target(target).0) {
        tracing::info!(
            target: TARGET,
            at_us = unix_micros(SystemTime::now()),
            worker,
            method,
            uri = target,
            status = 499u16,
            gone = why
        );
    }
}

/// Keeps the access log's writer thread; dropping it writes out what is still queued.
#[derive(Debug)]
pub struct Flush {
    _guard: Option<WorkerGuard>,
}

/// Install the two logs: the access log on stdout, diagnostics on stderr. Hold the returned
/// [`Flush`] until the process ends. Calling it twice (as tests may) keeps the first.
///
/// Access lines are handed to a writer thread that writes whatever has queued up in one `write`:
/// one line at a time when the server is quiet — so a line appears the moment a request is picked
/// up — and many per system call under load, instead of one each (measured: about 15 % of a
/// zero-wait request's cost). Lines are never dropped: a full queue makes the worker wait.
pub fn init(config: &Config) -> Flush {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        // The queue is allocated up front; 8192 lines is plenty for a writer that drains in bulk.
        .buffered_lines_limit(8192)
        .thread_name("access-log")
        .finish(std::io::BufWriter::new(std::io::stdout()));
    let access = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .event_format(AccessFormat {
            pid: config.pid,
            millis: config.log_ms,
        })
        .with_filter(filter_fn(|m| m.target() == TARGET));
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let diagnostics = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(env.and(filter_fn(|m| m.target() != TARGET)));
    match tracing_subscriber::registry()
        .with(access)
        .with(diagnostics)
        .try_init()
    {
        Ok(()) => Flush {
            _guard: Some(guard),
        },
        Err(_) => Flush { _guard: None },
    }
}

/// Longest target the log shows whole; a longer one is cut, with its length said.
const LOG_TARGET_MAX: usize = 512;

/// A target as the log shows it: control characters escaped (a request must not be able to
/// forge log lines or colour a terminal), long ones cut.
fn printable(target: &str) -> String {
    let mut out = String::new();
    for (i, c) in target.char_indices() {
        if i >= LOG_TARGET_MAX {
            out.push_str(&format!("…({} bytes)", target.len()));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The reference line format.
struct AccessFormat {
    pid: u32,
    millis: bool,
}

#[derive(Default)]
struct AccessFields {
    at_us: u64,
    worker: Option<u64>,
    method: String,
    uri: String,
    status: Option<u64>,
    elapsed_us: u64,
    gone: Option<String>,
}

impl Visit for AccessFields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "at_us" => self.at_us = value,
            "worker" => self.worker = Some(value),
            "status" => self.status = Some(value),
            "elapsed_us" => self.elapsed_us = value,
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "method" => self.method = value.to_owned(),
            "uri" => self.uri = value.to_owned(),
            "gone" | "shed" => self.gone = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn fmt::Debug) {}
}

impl<S, N> FormatEvent<S, N> for AccessFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut f = AccessFields::default();
        event.record(&mut f);
        let at = UNIX_EPOCH + Duration::from_micros(f.at_us);
        let stamp = timefmt::log_stamp(at, self.millis);
        let who = match f.worker {
            Some(k) => format!("{}-worker{k}", self.pid),
            None => self.pid.to_string(),
        };
        let uri = printable(&f.uri);
        match f.status {
            None => writeln!(writer, "[{stamp}] [{who}] {} {uri}", f.method),
            Some(status) if f.gone.is_some() => writeln!(
                writer,
                "[{stamp}] [{who}] {status} {} {uri} {}",
                f.method,
                f.gone.as_deref().unwrap_or_default()
            ),
            Some(status) => writeln!(
                writer,
                "[{stamp}] [{who}] {status} {} {uri} {:.1}ms",
                f.method,
                millis(Duration::from_micros(f.elapsed_us))
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_cannot_forge_lines_or_flood_the_log() {
        assert_eq!(printable("/io?ms=5"), "/io?ms=5");
        assert_eq!(printable("/a\nb\x1b[31m"), "/a\\nb\\u{1b}[31m");
        let long = format!("/{}", "a".repeat(10_000));
        let shown = printable(&long);
        assert!(
            shown.len() < 600 && shown.ends_with("…(10001 bytes)"),
            "{shown}"
        );
    }
}
