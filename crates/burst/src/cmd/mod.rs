//! `burst`'s commands, one file each — the binary's `main` parses the flags and runs one:
//! [`one`] (a burst at one URL), [`compare`] (the reference experiment), [`stage`] (the live
//! page). What they share — the flags of a burst, the runtime, Ctrl-C, the failure that ends a
//! run — is here.

use std::time::Duration;

use burst::client::Cancel;
use burst::experiment::{self, Settings};
use burst::model::{ServerInfo, ServerKind};
use burst::Target;
use clap::Args;

pub(crate) mod compare;
pub(crate) mod one;
pub(crate) mod stage;
pub(crate) mod steady;

#[derive(Debug, Args)]
pub(crate) struct CommonArgs {
    /// Seconds before a request counts as timed out (default: longer than the longest wait the
    /// server allows, and than twice the model's time for the last request).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) timeout: Option<f64>,

    /// The server's model, for a server that does not describe itself at GET / (any HTTP
    /// server): a pool of blocking workers, or event loops. Given, it wins over GET /.
    #[arg(long, value_enum, value_name = "KIND")]
    pub(crate) model: Option<ServerKind>,

    /// With --model: how many workers (pool threads or processes, or event loops).
    #[arg(long, value_name = "N", requires = "model", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) workers: u32,

    /// With --model: T, the route's wait when the URL gives no ?ms=.
    #[arg(long, value_name = "MS", requires = "model", default_value_t = 1000)]
    pub(crate) task_ms: u64,

    /// With --model event-loop: thread-pool slots per loop for blocking routes (FastAPI: 40).
    #[arg(long, value_name = "N", requires = "model", default_value_t = 40,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) threadpool: u32,

    /// With --model: K, the concurrent waits of /async-io-multi when the URL gives no ?tasks=.
    #[arg(long, value_name = "K", requires = "model", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) multi_tasks: u32,

    /// With --model pool: threads per worker (gunicorn's --threads): workers × threads at once.
    #[arg(long, value_name = "K", requires = "model", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) threads: u32,

    /// With --model: the server's --limit-concurrency (a request that finds N in the server
    /// gets a 503 at once), so the model predicts what is shed.
    #[arg(long, value_name = "N", requires = "model",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) limit_concurrency: Option<u32>,

    /// The response header that names the worker that served a request.
    #[arg(long, value_name = "NAME", default_value = "X-Worker")]
    pub(crate) worker_header: String,
}

/// A failure that ends the run: the line to print and the exit status.
pub(crate) struct Fatal(pub(crate) String, pub(crate) u8);

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Fatal> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Fatal(format!("cannot start a runtime: {e}"), 2))
}

/// Raise the open-files soft limit to the hard limit; refuse a burst that still cannot fit.
pub(crate) fn ensure_open_files(n: usize) -> Result<(), Fatal> {
    let limit = rlimit::increase_nofile_limit(u64::MAX)
        .map_err(|e| Fatal(format!("cannot read the open-files limit: {e}"), 2))?;
    // Each request needs one socket; leave room for stdio, the runtime and the server's own
    // connection for GET /.
    let need = n as u64 + 64;
    if limit < need {
        return Err(Fatal(
            format!(
                "cannot open {n} connections at once: the open-files limit is {limit} (hard limit \
                 reached); raise it with `ulimit -Hn {need}` as root, or fire at most {}",
                limit.saturating_sub(64)
            ),
            2,
        ));
    }
    Ok(())
}

pub(crate) fn settings(common: &CommonArgs) -> Result<Settings, Fatal> {
    let timeout = match common.timeout {
        None => None,
        Some(t) if t.is_finite() && t > 0.0 && t <= 86_400.0 => Some(Duration::from_secs_f64(t)),
        Some(t) => {
            return Err(Fatal(
                format!("--timeout must be 0 < seconds <= 86400, got {t}"),
                2,
            ))
        }
    };
    let model = common.model.map(|kind| ServerInfo {
        server: None,
        kind,
        workers: common.workers,
        task_ms: common.task_ms,
        multi_tasks: common.multi_tasks,
        threadpool: (kind == ServerKind::EventLoop).then_some(common.threadpool),
        threads: (kind == ServerKind::Pool).then_some(common.threads),
        limit_concurrency: common.limit_concurrency,
        max_queue: None,
        max_ms: common.task_ms,
        cores: None,
        told: true,
        routes: Vec::new(),
    });
    let header = &common.worker_header;
    if hyper::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
        return Err(Fatal(
            format!("--worker-header {header:?} is not a header name"),
            2,
        ));
    }
    Ok(Settings {
        timeout,
        model,
        worker_header: header.to_ascii_lowercase().into(),
        cancel: None,
    })
}

/// The first Ctrl-C gives up on the requests still waiting (their connections are reset, so a
/// twin skips what it had not picked up) and lets `burst` show what it saw; a second quits now.
pub(crate) fn on_interrupt(cancel: &Cancel) -> Result<(), Fatal> {
    let cancel = cancel.clone();
    ctrlc::set_handler(move || {
        if cancel.is_cancelled() {
            eprintln!("burst: quit");
            std::process::exit(130);
        }
        cancel.cancel();
        eprintln!(
            "\nburst: Ctrl-C: giving up on the requests still waiting; here is what came back \
             (Ctrl-C again quits at once)"
        );
    })
    .map_err(|e| Fatal(format!("cannot catch Ctrl-C: {e}"), 2))
}

/// Exit status after Ctrl-C, as a shell reports it.
pub(crate) const INTERRUPTED: u8 = 130;

/// The servers a command works on, as `burst compare` and `burst stage` name them alike.
#[derive(Debug, clap::Args)]
pub(crate) struct ServerArgs {
    /// A server by name and base URL (repeatable, in order; its kind is read from its hello), e.g.
    /// --target 'gunicorn + Flask=http://127.0.0.1:9000'. A real stack's GET /events names its
    /// events relay.
    #[arg(long = "target", value_name = "NAME=URL")]
    pub(crate) targets: Vec<String>,

    /// Base URL of the pool twin (default http://127.0.0.1:8000 when no --target is given): the
    /// same as --target pool=URL.
    #[arg(long, value_name = "URL")]
    pub(crate) pool: Option<String>,

    /// Base URL of the event-loop twin (default http://127.0.0.1:8001 when no --target is
    /// given): the same as --target event-loop=URL.
    #[arg(long = "async", value_name = "URL")]
    pub(crate) async_url: Option<String>,
}

impl ServerArgs {
    /// Each server's name and URL, in order: the `--target`s, with `--pool` and `--async` first;
    /// with none of them, the two twins on their default ports.
    pub(crate) fn named(&self) -> Result<Vec<(String, String)>, Fatal> {
        named_targets(&self.targets, &self.pool, &self.async_url)
    }
}

fn named_targets(
    targets: &[String],
    pool: &Option<String>,
    async_url: &Option<String>,
) -> Result<Vec<(String, String)>, Fatal> {
    let mut named: Vec<(String, String)> = Vec::new();
    for t in targets {
        match t.split_once('=') {
            Some((name, url)) if !name.trim().is_empty() && !url.is_empty() => {
                let name = name.trim();
                if name.chars().count() > 40 || name.chars().any(char::is_control) {
                    return Err(Fatal(
                        format!("--target {t:?}: a name is 1 to 40 characters, none a control"),
                        2,
                    ));
                }
                if named.iter().any(|(n, _)| n == name) {
                    return Err(Fatal(format!("--target {name:?} is given twice"), 2));
                }
                named.push((name.to_owned(), url.to_owned()))
            }
            _ => {
                return Err(Fatal(
                    format!(
                        "--target {t:?}: give NAME=URL, e.g. --target pool=http://127.0.0.1:8000"
                    ),
                    2,
                ))
            }
        }
    }
    let defaults = named.is_empty();
    let shorthand = [
        ("pool", pool, "http://127.0.0.1:8000"),
        ("event-loop", async_url, "http://127.0.0.1:8001"),
    ];
    for (k, (name, url, default)) in shorthand.into_iter().enumerate() {
        match (url, defaults) {
            (Some(url), _) => named.insert(k.min(named.len()), (name.to_owned(), url.clone())),
            (None, true) => named.push((name.to_owned(), default.to_owned())),
            (None, false) => {}
        }
    }
    Ok(named)
}

/// Ask the server what it is; say so within a second if it keeps `burst` waiting (its workers
/// busy with earlier requests), and give up on Ctrl-C.
pub(crate) async fn plan_telling(
    target: &Target,
    n: usize,
    settings: &Settings,
) -> Result<Option<experiment::Plan>, burst::FireError> {
    let url = target.url.clone();
    let notice = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        eprintln!(
            "burst: waiting for the server to answer GET / (its configuration, for the model): \
             its workers may still be busy with earlier requests — {url}"
        );
    });
    let cancel = settings.cancel.as_ref().map(Cancel::watch);
    let planned = tokio::select! {
        plan = experiment::plan(target, n, settings) => Some(plan),
        () = async move {
            match cancel {
                Some(mut c) => { let _ = c.wait_for(|c| *c).await; }
                None => std::future::pending().await,
            }
        } => None,
    };
    notice.abort();
    planned.transpose()
}
