//! Command-line arguments shared by both twins, and the effective configuration they turn into.
//!
//! Each binary flattens [`ServerArgs`] into its own clap parser, so a flag means the same thing on
//! both servers and is defined once. [`Config`] is what the servers actually run with: the banner
//! prints it and `GET /` returns it, so `burst` can read the model's inputs from the server itself.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use crate::route::ServerKind;

/// The largest `?tasks=` (and `--multi-tasks`) accepted.
pub const MAX_TASKS: u32 = 1000;

/// Blocking-pool slots per event loop (async-server `--threadpool`), as FastAPI's (anyio's)
/// default thread limiter.
pub const DEFAULT_THREADPOOL: u32 = 40;

/// Events a watcher may fall behind by before it loses some: about 1,300 requests' worth on the
/// pool (three events each), a few hundred kilobytes at most.
pub const WATCHER_BUFFER: usize = 4096;

/// Watchers a twin serves at once unless `--max-watchers` says otherwise: the stage takes one,
/// a few terminals `curl -N` more. Each costs a thread and a buffer of [`WATCHER_BUFFER`] events.
pub const MAX_WATCHERS: usize = 16;

/// How long one write to a watcher may take before it is let go: a watcher that stops reading
/// must not keep its thread, buffer and place for long.
pub const WATCHER_WRITE_STALL: Duration = Duration::from_secs(10);

/// Flags both twins take. `DEFAULT_PORT` differs so the twins can run side by side.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs<const DEFAULT_PORT: u16> {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    pub host: IpAddr,

    /// Port to listen on; 0 picks a free port (the banner prints the real one).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,

    /// Number of workers: pool threads (pool-server) or event loops (async-server).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: u16,

    /// The wait T of every work route, in milliseconds (`?ms=` overrides it per request).
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub task_ms: u64,

    /// K, the number of concurrent waits of T/K on /async-io-multi (`?tasks=` overrides it).
    #[arg(long, default_value_t = 2, value_name = "K",
          value_parser = clap::value_parser!(u32).range(1..=MAX_TASKS as i64))]
    pub multi_tasks: u32,

    /// The largest `?ms=` a request may ask for; larger values get a 400, never a silent clamp.
    #[arg(long, default_value_t = 60_000, value_name = "MS")]
    pub max_ms: u64,

    /// Length of the listen queue of connections not yet accepted.
    #[arg(long, default_value_t = 2048, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub backlog: u32,

    /// Add milliseconds to access-log timestamps.
    #[arg(long)]
    pub log_ms: bool,

    /// Add a second access-log line when each response is sent, with status and duration.
    #[arg(long)]
    pub log_finish: bool,

    /// Log /healthz requests too (they are left out by default to keep the log about the lesson).
    #[arg(long)]
    pub log_healthz: bool,

    /// At most this many `/events` watchers at once; one more gets a JSON 503.
    #[arg(long, default_value_t = MAX_WATCHERS, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub max_watchers: usize,

    /// Close a connection that sends nothing more this many seconds after its last answer, as
    /// uvicorn's `--timeout-keep-alive` does (5).
    #[arg(long, default_value = "5", value_name = "SECONDS", value_parser = seconds)]
    pub timeout_keep_alive: Duration,

    /// Close a connection whose request head has not all arrived this many seconds after the
    /// server began waiting for it (a slowloris), as hyper's header-read timeout does (30).
    #[arg(long, default_value = "30", value_name = "SECONDS", value_parser = seconds)]
    pub timeout_header: Duration,

    /// Answer a JSON 503 at once to a request that finds this many already in the server (waiting
    /// or being served), as uvicorn's `--limit-concurrency` does: a bounded queue, so that what
    /// is over capacity fails fast instead of waiting ever longer. Off by default.
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub limit_concurrency: Option<usize>,

    /// On Ctrl-C or SIGTERM, how long to let in-flight requests finish, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub graceful_timeout: u64,
}

/// The configuration a twin runs with, as printed in the banner and returned by `GET /`.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub kind: ServerKind,
    /// Where the server listens, e.g. `http://127.0.0.1:8000` (set once the socket is bound).
    pub url: String,
    pub version: &'static str,
    pub pid: u32,
    pub workers: u16,
    pub task_ms: u64,
    pub multi_tasks: u32,
    pub max_ms: u64,
    pub max_tasks: u32,
    /// CPU cores this process may run on: CPU-bound work runs at most this many at a time.
    pub cores: u32,
    /// How much CPU work `/cpu` does per millisecond of T: measured at start on one core, so
    /// that `/cpu?ms=T` is a fixed amount of work that takes about T on a free core.
    pub cpu_units_per_ms: u64,
    /// Blocking-pool slots per event loop (async-server only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threadpool: Option<u32>,
    /// pool-server `--threads`: threads per worker, as gunicorn's gthread worker has; the pool
    /// serves `workers × threads` requests at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    /// pool-server `--max-queue`: requests beyond this many waiting for a worker get a 503.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queue: Option<usize>,
    /// `--limit-concurrency`: a request that finds this many in the server gets a 503.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_concurrency: Option<usize>,
    /// The open-files limit the process runs with (raised to the hard limit at start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_files: Option<u64>,
    pub backlog: u32,
    pub log_ms: bool,
    pub log_finish: bool,
    pub log_healthz: bool,
    pub graceful_timeout_s: u64,
    /// `--timeout-keep-alive` and `--timeout-header`, in seconds.
    pub timeout_keep_alive_s: f64,
    pub timeout_header_s: f64,
    /// `/events` watchers served at once (`--max-watchers`).
    pub max_watchers: usize,
    /// Events each `/events` watcher may fall behind by before it loses some.
    #[serde(skip)]
    pub events_buffer: usize,
    /// How long one write to an `/events` watcher may take before it is let go.
    #[serde(skip)]
    pub events_stall: Duration,
}

/// A configuration that cannot work, said in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl<const P: u16> ServerArgs<P> {
    /// The address to bind.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// Check the flags against each other and build the effective configuration, with `/cpu`
    /// calibrated on this machine now; each binary then sets its own fields (`threadpool`,
    /// `threads`, `max_queue`).
    pub fn config(&self, kind: ServerKind) -> Result<Config, ConfigError> {
        self.config_with_cpu(kind, crate::work::calibrate_cpu())
    }

    fn config_with_cpu(
        &self,
        kind: ServerKind,
        cpu_units_per_ms: u64,
    ) -> Result<Config, ConfigError> {
        if self.task_ms > self.max_ms {
            return Err(ConfigError(format!(
                "--task-ms {} is above --max-ms {}; raise --max-ms or lower --task-ms",
                self.task_ms, self.max_ms
            )));
        }
        Ok(Config {
            kind,
            url: String::new(),
            version: env!("CARGO_PKG_VERSION"),
            pid: std::process::id(),
            workers: self.workers,
            task_ms: self.task_ms,
            multi_tasks: self.multi_tasks,
            max_ms: self.max_ms,
            max_tasks: MAX_TASKS,
            cores: crate::work::cores(),
            cpu_units_per_ms,
            threadpool: None,
            threads: None,
            max_queue: None,
            limit_concurrency: self.limit_concurrency,
            open_files: None,
            backlog: self.backlog,
            log_ms: self.log_ms,
            log_finish: self.log_finish,
            log_healthz: self.log_healthz,
            graceful_timeout_s: self.graceful_timeout,
            timeout_keep_alive_s: self.timeout_keep_alive.as_secs_f64(),
            timeout_header_s: self.timeout_header.as_secs_f64(),
            max_watchers: self.max_watchers,
            events_buffer: WATCHER_BUFFER,
            events_stall: WATCHER_WRITE_STALL,
        })
    }
}

impl Config {
    /// A configuration for tests and benchmarks: `workers` workers, T = `task_ms`, K = 2, and a
    /// fixed `/cpu` calibration of 100 units/ms (about a millisecond on a laptop core).
    pub fn for_tests(kind: ServerKind, workers: u16, task_ms: u64) -> Config {
        /// The flags' defaults, as the binaries get them: written once, in [`ServerArgs`].
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            args: ServerArgs<0>,
        }
        let mut args = match <Defaults as clap::Parser>::try_parse_from(["twin"]) {
            Ok(defaults) => defaults.args,
            Err(e) => panic!("the flags' defaults: {e}"),
        };
        args.workers = workers;
        args.task_ms = task_ms;
        // Fixed, not measured: tests build many configurations, and calibrating takes 50 ms.
        let mut config = match args.config_with_cpu(kind, 100) {
            Ok(config) => config,
            Err(e) => panic!("a test configuration: {e}"),
        };
        config.threadpool = (kind == ServerKind::EventLoop).then_some(DEFAULT_THREADPOOL);
        config.threads = (kind == ServerKind::Pool).then_some(1);
        config
    }

    /// Threads per pool worker (1 unless `--threads`; none on an event loop).
    pub fn threads(&self) -> u32 {
        self.threads.unwrap_or(1).max(1)
    }

    /// How many requests the pool serves at once: `workers × threads` worker threads.
    pub fn pool_slots(&self) -> usize {
        usize::from(self.workers) * self.threads() as usize
    }

    pub fn graceful_timeout(&self) -> Duration {
        Duration::from_secs(self.graceful_timeout_s)
    }

    /// After an answer, how long a connection may send nothing before it is closed.
    pub fn keep_alive(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_keep_alive_s)
    }

    /// How long a request head may take to arrive, from when the server waits for it.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_header_s)
    }
}

/// A timeout flag: seconds, decimals allowed (`0.5`), from 0.01 to 3600.
fn seconds(s: &str) -> Result<Duration, String> {
    let n: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.01..=3600.0).contains(&n) {
        return Err(format!("{n} s is out of range: 0.01 to 3600 seconds"));
    }
    Ok(Duration::from_secs_f64(n))
}
