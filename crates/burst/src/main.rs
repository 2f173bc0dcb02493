//! `burst` — fire N requests at once and show each one. Run with `cargo run --release -p burst`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use burst::client::Cancel;
use burst::experiment::{self, Settings, Status, Step};
use burst::model::describe;
use burst::model::{ServerInfo, ServerKind};
use burst::print::text::{self as render, WaterfallStyle};
use burst::print::{json_csv as output, svg};
use burst::progress::Progress;
use burst::Target;
use clap::{Args, Parser, Subcommand};

/// Fire N requests at once, each on its own connection, and show every request: when it was
/// sent, waited and served, by which worker — and whether that matches the queueing model.
#[derive(Debug, Parser)]
#[command(
    version,
    args_conflicts_with_subcommands = true,
    after_help = "\
Examples:
  burst http://127.0.0.1:8000/io                 # 16 at once at the pool twin: 4 waves
  burst http://127.0.0.1:8001/async-io -n 100    # 100 at once at the event-loop twin: 1 wave
  burst http://127.0.0.1:8000/io --csv > io.csv  # one row per request for a spreadsheet
  burst http://127.0.0.1:8000/io --svg io.svg    # a per-request timeline chart
  burst compare --pool http://127.0.0.1:8000 --async http://127.0.0.1:8001 -n 16,100 --svg cmp.svg
  burst stage                                    # the live page at http://127.0.0.1:8080

Exit status: 0 every request answered, as the model predicts (or no model to check);
1 some requests failed or timed out; 2 bad usage, bad URL or no server;
3 every request answered, but NOT as the model predicts (the lesson did not show);
130 stopped with Ctrl-C (after showing what came back)."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    one: OneArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The reference experiment: both twins × /io, /async-io, /async-io-multi × each N.
    Compare(CompareArgs),
    /// The live stage: a page (http://127.0.0.1:8080) that shows every worker's lane fill as
    /// it happens, both twins side by side, and fires bursts at them with one key.
    Stage(StageArgs),
}

#[derive(Debug, Args)]
struct StageArgs {
    /// The port the page is served on (0: any free port; the real one is printed). The
    /// scripts take it from STAGE_PORT too.
    #[arg(long, env = "STAGE_PORT", default_value_t = 8080)]
    port: u16,

    /// The address the page is served on. Loopback: only this machine's browser sees it; a
    /// room's network (0.0.0.0, or this machine's address): the room watches, and only this
    /// machine fires.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,

    /// Play recorded bursts instead of watching twins (a burst's "replay" link saves one):
    /// a rehearsal with no twins running. Repeat for several.
    #[arg(long, value_name = "FILE")]
    replay: Vec<PathBuf>,

    /// Base URL of the pool twin to watch.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8000")]
    pool: String,

    /// Base URL of the event-loop twin to watch.
    #[arg(
        long = "async",
        value_name = "URL",
        default_value = "http://127.0.0.1:8001"
    )]
    async_url: String,
}

#[derive(Debug, Args)]
struct OneArgs {
    /// The URL to fire at, e.g. http://127.0.0.1:8000/io?ms=500
    url: Option<String>,

    /// How many requests to fire at once.
    #[arg(short = 'n', long = "requests", alias = "n", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    n: u32,

    #[command(flatten)]
    common: CommonArgs,

    /// Print one JSON document (requests, summary, model) instead of the text views.
    #[arg(long, conflicts_with = "csv")]
    json: bool,

    /// Print one CSV row per request instead of the text views.
    #[arg(long)]
    csv: bool,

    /// Print only the summary and the model's verdict.
    #[arg(long, short)]
    quiet: bool,

    /// Also write a per-request timeline chart to this SVG file.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,

    /// At most this many waterfall rows; bigger bursts are sampled evenly.
    #[arg(long, default_value_t = 48)]
    rows: usize,

    /// No ANSI colours in the waterfall (also: NO_COLOR in the environment).
    #[arg(long)]
    no_color: bool,
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// Seconds before a request counts as timed out (default: longer than the longest wait the
    /// server allows, and than twice the model's time for the last request).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,

    /// The server's model, for a server that does not describe itself at GET / (any HTTP
    /// server): a pool of blocking workers, or event loops. Given, it wins over GET /.
    #[arg(long, value_enum, value_name = "KIND")]
    model: Option<ServerKind>,

    /// With --model: how many workers (pool threads or processes, or event loops).
    #[arg(long, value_name = "N", requires = "model", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    workers: u32,

    /// With --model: T, the route's wait when the URL gives no ?ms=.
    #[arg(long, value_name = "MS", requires = "model", default_value_t = 1000)]
    task_ms: u64,

    /// With --model event-loop: thread-pool slots per loop for blocking routes (FastAPI: 40).
    #[arg(long, value_name = "N", requires = "model", default_value_t = 40,
          value_parser = clap::value_parser!(u32).range(1..))]
    threadpool: u32,

    /// With --model: K, the concurrent waits of /async-io-multi when the URL gives no ?tasks=.
    #[arg(long, value_name = "K", requires = "model", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..))]
    multi_tasks: u32,

    /// The response header that names the worker that served a request.
    #[arg(long, value_name = "NAME", default_value = "X-Worker")]
    worker_header: String,
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// A server to include, by name and base URL (repeatable; its kind is read from its GET /),
    /// e.g. --target 'gunicorn+Flask=http://127.0.0.1:9000'.
    #[arg(long = "target", value_name = "NAME=URL")]
    targets: Vec<String>,

    /// Base URL of the pool twin (default http://127.0.0.1:8000 when no --target is given).
    #[arg(long, value_name = "URL")]
    pool: Option<String>,

    /// Base URL of the event-loop twin (default http://127.0.0.1:8001 when no --target is given).
    #[arg(long = "async", value_name = "URL")]
    async_url: Option<String>,

    /// Burst sizes, comma-separated.
    #[arg(
        short = 'n',
        long = "requests",
        value_delimiter = ',',
        default_value = "16"
    )]
    sizes: Vec<u32>,

    /// Routes, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "/io,/async-io,/async-io-multi"
    )]
    routes: Vec<String>,

    #[command(flatten)]
    common: CommonArgs,

    /// Write the comparison chart to this SVG file.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,

    /// Print the whole matrix as JSON (one object per cell, with every request).
    #[arg(long)]
    json: bool,
}

/// How one burst is printed, chosen once from the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PrintMode {
    /// The table, the waterfall and the summary.
    Text,
    /// The summary and the verdict only.
    Quiet,
    /// One JSON document.
    Json,
    /// One CSV row per request.
    Csv,
}

impl OneArgs {
    fn print_mode(&self) -> PrintMode {
        match (self.json, self.csv, self.quiet) {
            (true, _, _) => PrintMode::Json,
            (_, true, _) => PrintMode::Csv,
            (_, _, true) => PrintMode::Quiet,
            _ => PrintMode::Text,
        }
    }
}

/// A failure that ends the run: the line to print and the exit status.
struct Fatal(String, u8);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Compare(args)) => compare(&args),
        Some(Command::Stage(args)) => stage(&args),
        None => one(&cli.one),
    };
    match result {
        Ok(code) => code,
        Err(Fatal(line, code)) => {
            eprintln!("burst: {line}");
            ExitCode::from(code)
        }
    }
}

fn stage(args: &StageArgs) -> Result<ExitCode, Fatal> {
    let rt = runtime()?;
    rt.block_on(async {
        let pool = Target::parse(&args.pool).await.map_err(|e| Fatal(e.0, 2))?;
        let event_loop = Target::parse(&args.async_url)
            .await
            .map_err(|e| Fatal(e.0, 2))?;
        let addr = std::net::SocketAddr::new(args.host, args.port);
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                "; is a stage already running? or pick another port with --port"
            } else {
                ""
            };
            Fatal(format!("cannot listen on {addr}: {e}{hint}"), 2)
        })?;
        let bound = listener
            .local_addr()
            .map_err(|e| Fatal(format!("cannot read the bound address: {e}"), 2))?;
        let recordings = args
            .replay
            .iter()
            .map(|path| burst::stage::Recording::load(path))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Fatal(e, 2))?;
        let port = bound.port();
        // A URL a browser can open: 0.0.0.0 is where the stage listens, not an address.
        let presenter = if bound.ip().is_unspecified() {
            format!("http://127.0.0.1:{port}")
        } else {
            format!("http://{bound}")
        };
        if recordings.is_empty() {
            eprintln!(
                "burst stage: watching the pool twin at {} and the event-loop twin at {}",
                pool.url, event_loop.url
            );
        } else {
            eprintln!(
                "burst stage: REPLAY of {} recorded burst(s), no twins watched: {}",
                recordings.len(),
                recordings
                    .iter()
                    .map(|r| format!("{} × {} at {}", r.n, r.route, r.at.join(" and ")))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        eprintln!(
            "burst stage: keys 1–5 route · ↑/↓ N · P pool · A event loop · B both · Esc stop\n\
             burst stage: C chart · S save the panels · R reset · Ctrl-C here stops the stage"
        );
        eprintln!("burst stage: the presenter opens {presenter} (only this machine fires)");
        if bound.ip().is_unspecified() {
            eprintln!("burst stage: serving every address of this machine, port {port}");
            eprintln!(
                "burst stage: the room watches at http://<this machine's address>:{port}\n\
                 burst stage:   (its address: `hostname -I` on Linux, `ipconfig getifaddr en0` \
                 on macOS, `ipconfig` on Windows)"
            );
        } else if !bound.ip().is_loopback() {
            eprintln!("burst stage: the room watches at http://{bound}");
        }
        // The same last line as the twins' banners: scripts wait for it.
        eprintln!("listening on {presenter}");
        // Nothing to drain: a burst in flight is the stage's own, and the twins skip what it
        // gave up.
        let quit = ctrlc::set_handler(|| {
            eprintln!("burst stage: stopped");
            std::process::exit(0);
        });
        if let Err(e) = quit {
            return Err(Fatal(format!("cannot catch Ctrl-C: {e}"), 2));
        }
        let mut config = burst::stage::StageConfig::watching(pool, event_loop);
        config.recordings = recordings;
        config.narrate = true;
        burst::stage::serve(listener, config, std::future::pending())
            .await
            .map_err(|e| Fatal(format!("the stage stopped: {e}"), 1))?;
        Ok(ExitCode::SUCCESS)
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, Fatal> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Fatal(format!("cannot start a runtime: {e}"), 2))
}

/// Raise the open-files soft limit to the hard limit; refuse a burst that still cannot fit.
fn ensure_open_files(n: usize) -> Result<(), Fatal> {
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

fn settings(common: &CommonArgs) -> Result<Settings, Fatal> {
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
fn on_interrupt(cancel: &Cancel) -> Result<(), Fatal> {
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
const INTERRUPTED: u8 = 130;

/// Ask the server what it is; say so within a second if it keeps `burst` waiting (its workers
/// busy with earlier requests), and give up on Ctrl-C.
async fn plan_telling(
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

fn one(args: &OneArgs) -> Result<ExitCode, Fatal> {
    let Some(url) = args.url.as_deref() else {
        return Err(Fatal(
            "give a URL to fire at, e.g. `burst http://127.0.0.1:8000/io` (see --help)".into(),
            2,
        ));
    };
    let n = args.n as usize;
    let mut settings = settings(&args.common)?;
    let cancel = Cancel::default();
    settings.cancel = Some(cancel.clone());
    ensure_open_files(n)?;
    let rt = runtime()?;
    on_interrupt(&cancel)?;
    let e = rt
        .block_on(async {
            let target = Target::parse(url).await?;
            let Some(plan) = plan_telling(&target, n, &settings).await? else {
                return Ok(None);
            };
            if let (Some(p), Some(end)) = (&plan.prediction, plan.predicted_end()) {
                if end >= Duration::from_secs(3) {
                    // CPU work: this is from T; the verdict uses the CPU time the server measures.
                    let from = if p.cpu_bound {
                        " (from T, before the server says how much CPU \
                                                each request took)"
                    } else {
                        ""
                    };
                    eprintln!(
                        "burst: the model predicts {}: the last request at about {:.1} s{from}",
                        describe(p, n),
                        end.as_secs_f64()
                    );
                }
            }
            let progress = Progress::start(std::io::stderr().is_terminal());
            progress.begin(&format!("{n} × {}", target.url), n, plan.predicted_end());
            let e = experiment::fire_plan(&target, plan, &settings, Some(progress.counter())).await;
            progress.end();
            e.map(Some)
        })
        .map_err(|e| Fatal(e.0, 2))?;
    let Some(e) = e else {
        eprintln!("burst: interrupted before anything was fired");
        return Ok(ExitCode::from(INTERRUPTED));
    };
    if let Some(path) = &args.svg {
        let route = e
            .burst
            .url
            .split_once("://")
            .map_or(e.burst.url.as_str(), |(_, rest)| {
                rest.find('/').map_or("/", |i| &rest[i..])
            });
        let who = e.server.as_ref().map_or("a server".to_owned(), |s| {
            let name = s.server.clone().unwrap_or_else(|| s.kind.to_string());
            let workers = if s.workers == 1 { "worker" } else { "workers" };
            format!("{name} ({} {workers})", s.workers)
        });
        let title = format!("{n} × GET {route} at once on {who}");
        std::fs::write(path, svg::timeline(&e.burst, &title))
            .map_err(|err| Fatal(format!("cannot write {}: {err}", path.display()), 2))?;
    }
    let check = e.check.as_ref();
    match args.print_mode() {
        PrintMode::Json => {
            let report = output::Report {
                url: &e.burst.url,
                n,
                release_spread_ms: e.summary.release_spread_ms,
                wall_ms: e.summary.wall_ms,
                server: e.server.as_ref(),
                model: check,
                summary: &e.summary,
                requests: output::rows(&e.burst, check),
            };
            let text = serde_json::to_string_pretty(&report)
                .map_err(|err| Fatal(format!("cannot write JSON: {err}"), 2))?;
            println!("{text}");
        }
        PrintMode::Csv => print!("{}", output::csv(&output::rows(&e.burst, check))),
        mode @ (PrintMode::Text | PrintMode::Quiet) => {
            // Interrupted: what came back, not a row for each request given up.
            let interrupted = cancel.is_cancelled();
            let mut seen = e.burst.clone();
            if interrupted {
                seen.results
                    .retain(|r| r.outcome != burst::client::Outcome::Cancelled);
            }
            let color = !args.no_color
                && std::env::var_os("NO_COLOR").is_none()
                && std::io::stdout().is_terminal();
            if mode == PrintMode::Text {
                let kind =
                    e.server
                        .as_ref()
                        .map_or("an unknown server: no model".to_owned(), |s| {
                            let workers = if s.workers == 1 { "worker" } else { "workers" };
                            let who = match (&s.server, s.told) {
                                (_, true) => "model told by flags".to_owned(),
                                (Some(name), false) => name.clone(),
                                (None, false) => "as it says at GET /".to_owned(),
                            };
                            format!("{who}: {}, {} {workers}", s.kind, s.workers)
                        });
                println!("burst: {n} × GET {} ({kind})\n", e.burst.url);
                let width = terminal_size::terminal_size().map_or(100, |(w, _)| usize::from(w.0));
                // Given up, the model's times are no longer the burst's: no model column.
                let model = if interrupted { None } else { check };
                print!("{}", render::table_fit(&seen, model, width));
                println!();
                let style = WaterfallStyle {
                    width,
                    max_rows: args.rows,
                    color,
                };
                if !seen.results.is_empty() {
                    print!("{}", render::waterfall(&seen, style));
                    println!();
                }
            }
            if !interrupted {
                print!(
                    "{}",
                    render::summary_text(&e.summary, check, e.unknown.as_deref(), color)
                );
            }
            if let Some(path) = &args.svg {
                println!("timeline chart: {}", path.display());
            }
        }
    }
    if cancel.is_cancelled() {
        let given_up = e
            .burst
            .results
            .iter()
            .filter(|r| r.outcome == burst::client::Outcome::Cancelled)
            .count();
        eprintln!(
            "burst: interrupted after {:.2} s: {} of {n} answered (shown), {given_up} given up —\n\
             burst: their connections reset: a twin skips those it had not picked up yet, and\n\
             burst: finishes, for nobody, those a worker already had",
            e.summary.wall_ms / 1000.0,
            e.summary.ok
        );
        return Ok(ExitCode::from(INTERRUPTED));
    }
    Ok(ExitCode::from(e.status().exit_code()))
}

fn compare(args: &CompareArgs) -> Result<ExitCode, Fatal> {
    let sizes: Vec<usize> = args.sizes.iter().map(|&n| n as usize).collect();
    if sizes.iter().any(|&n| n == 0 || n > 100_000) {
        return Err(Fatal("every -n must be 1..=100000".into(), 2));
    }
    let routes: Vec<String> = args
        .routes
        .iter()
        .map(|r| {
            if r.starts_with('/') {
                r.clone()
            } else {
                format!("/{r}")
            }
        })
        .collect();
    let mut settings = settings(&args.common)?;
    let cancel = Cancel::default();
    settings.cancel = Some(cancel.clone());
    on_interrupt(&cancel)?;
    let mut named: Vec<(String, String)> = Vec::new();
    for t in &args.targets {
        match t.split_once('=') {
            Some((name, url)) if !name.is_empty() && !url.is_empty() => {
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
        ("pool", &args.pool, "http://127.0.0.1:8000"),
        ("event-loop", &args.async_url, "http://127.0.0.1:8001"),
    ];
    for (k, (name, url, default)) in shorthand.into_iter().enumerate() {
        match (url, defaults) {
            (Some(url), _) => named.insert(k.min(named.len()), (name.to_owned(), url.clone())),
            (None, true) => named.push((name.to_owned(), default.to_owned())),
            (None, false) => {}
        }
    }
    ensure_open_files(sizes.iter().copied().max().unwrap_or(1))?;
    let rt = runtime()?;
    let cells = rt
        .block_on(async {
            let mut parsed = Vec::new();
            for (name, url) in &named {
                parsed.push((name.as_str(), Target::parse(url).await?));
            }
            let servers: Vec<(&str, &Target)> = parsed.iter().map(|(n, t)| (*n, t)).collect();
            // On a terminal the progress line is rewritten in place; in a log, one line a cell.
            let tty = std::io::stderr().is_terminal();
            let progress = Progress::start(tty);
            experiment::compare(
                &servers,
                &routes,
                &sizes,
                &settings,
                Some(progress.counter()),
                |done, total, label, step| match step {
                    Step::Firing(plan) => {
                        if tty {
                            eprint!("\r\x1b[2K[{done}/{total}] {label} …");
                        }
                        let cell = format!("[{}/{total}] {label}", done + 1);
                        progress.begin(&cell, plan.n, plan.predicted_end());
                    }
                    Step::Done(e) => {
                        progress.end();
                        eprintln!(
                            "{}[{done}/{total}] {label}: {:.2} s, {}/{} ok — {}",
                            if tty { "\r\x1b[2K" } else { "" },
                            e.summary.wall_ms / 1000.0,
                            e.summary.ok,
                            e.burst.n,
                            e.check.as_ref().map_or("no model", |c| c.verdict.as_str())
                        )
                    }
                },
            )
            .await
        })
        .map_err(|e| Fatal(e.0, 2))?;
    if args.json {
        let all: Vec<output::CellReport> = cells
            .iter()
            .map(|c| {
                let e = &c.experiment;
                output::CellReport {
                    server: &c.server,
                    kind: c.kind,
                    route: &c.route,
                    n: c.n,
                    summary: &e.summary,
                    model: e.check.as_ref(),
                    requests: output::rows(&e.burst, e.check.as_ref()),
                }
            })
            .collect();
        let text = serde_json::to_string_pretty(&all)
            .map_err(|err| Fatal(format!("cannot write JSON: {err}"), 2))?;
        println!("{text}");
    } else {
        println!();
        print!("{}", render::compare_table(&cells));
    }
    if let Some(path) = &args.svg {
        let workers = cells
            .first()
            .and_then(|c| c.experiment.server.as_ref())
            .map_or(String::new(), |s| {
                format!("{} workers each, T = {} ms; ", s.workers, s.task_ms)
            });
        let subtitle = if named.len() > 2 {
            format!(
                "{workers}pool: solid, event loop: dashed; the first server of a kind wide and \
                 light, the next thin on top: where they overlap, they behaved alike"
            )
        } else {
            format!(
                "{workers}pool: solid, event loop: dashed; where /async-io hides /io, it took as long"
            )
        };
        std::fs::write(path, svg::compare_svg(&cells, &subtitle))
            .map_err(|err| Fatal(format!("cannot write {}: {err}", path.display()), 2))?;
        if !args.json {
            println!("chart: {}", path.display());
        }
    }
    if cancel.is_cancelled() {
        eprintln!(
            "burst: interrupted: {} cells shown; the cell under way gave up its waiting requests",
            cells.len()
        );
        return Ok(ExitCode::from(INTERRUPTED));
    }
    let status = cells
        .iter()
        .map(|c| c.experiment.status())
        .min()
        .unwrap_or(Status::Ok);
    if status == Status::NotAsPredicted {
        eprintln!("burst: NOT as predicted: at least one cell did not show what the model says");
    }
    Ok(ExitCode::from(status.exit_code()))
}
