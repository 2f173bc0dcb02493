//! `burst URL`: one burst at one URL — fired, held against the model, and shown as the flags say
//! (table, waterfall and summary; JSON; CSV; an SVG timeline).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use burst::client::Cancel;
use burst::experiment::{self};
use burst::model::describe;
use burst::print::text::{self as render, WaterfallStyle};
use burst::print::{json_csv as output, svg};
use burst::progress::Progress;
use burst::Target;
use clap::Args;

use super::{
    ensure_open_files, on_interrupt, plan_telling, runtime, settings, CommonArgs, Fatal,
    INTERRUPTED,
};

#[derive(Debug, Args)]
pub(crate) struct OneArgs {
    /// The URL to fire at, e.g. http://127.0.0.1:8000/io?ms=500
    pub(crate) url: Option<String>,

    /// How many requests to fire at once.
    #[arg(short = 'n', long = "requests", alias = "n", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) n: u32,

    /// Steady traffic instead of a burst: this many requests a second, each on its own
    /// connection, on a fixed schedule whatever the server does (an open loop, as wrk2 and
    /// vegeta); latency is measured from when each was due.
    #[arg(
        long,
        value_name = "PER_SECOND",
        conflicts_with = "n",
        allow_negative_numbers = true
    )]
    pub(crate) rate: Option<f64>,

    /// With --rate: for how many seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 5.0,
        requires = "rate",
        allow_negative_numbers = true
    )]
    pub(crate) duration: f64,

    #[command(flatten)]
    pub(crate) common: CommonArgs,

    /// Print one JSON document (requests, summary, model) instead of the text views.
    #[arg(long, conflicts_with = "csv")]
    pub(crate) json: bool,

    /// Print one CSV row per request instead of the text views.
    #[arg(long)]
    pub(crate) csv: bool,

    /// Print only the summary and the model's verdict.
    #[arg(long, short)]
    pub(crate) quiet: bool,

    /// Also write a chart to this SVG file: a per-request timeline (a burst), latency over
    /// time (--rate).
    #[arg(long, value_name = "FILE")]
    pub(crate) svg: Option<PathBuf>,

    /// At most this many waterfall rows; bigger bursts are sampled evenly.
    #[arg(long, default_value_t = 48)]
    pub(crate) rows: usize,

    /// No ANSI colours in the waterfall (also: NO_COLOR in the environment).
    #[arg(long)]
    pub(crate) no_color: bool,
}

/// How one burst is printed, chosen once from the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrintMode {
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
    pub(crate) fn print_mode(&self) -> PrintMode {
        match (self.json, self.csv, self.quiet) {
            (true, _, _) => PrintMode::Json,
            (_, true, _) => PrintMode::Csv,
            (_, _, true) => PrintMode::Quiet,
            _ => PrintMode::Text,
        }
    }
}

pub(crate) fn one(args: &OneArgs) -> Result<ExitCode, Fatal> {
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
            "burst: interrupted after {:.2} s: {} of {n} answered, {given_up} given up —\n\
             burst: their connections reset: a twin skips those it had not picked up yet, and\n\
             burst: finishes, for nobody, those a worker already had",
            e.summary.wall_ms / 1000.0,
            e.summary.ok
        );
        return Ok(ExitCode::from(INTERRUPTED));
    }
    Ok(ExitCode::from(e.status().exit_code()))
}
