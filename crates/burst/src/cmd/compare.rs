//! `burst compare`: the reference experiment — each server × route × N, one after another, as a
//! table (and a chart), each cell held against its model.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use burst::client::Cancel;
use burst::experiment::{self, Status, Step};
use burst::print::text::{self as render};
use burst::print::{json_csv as output, svg};
use burst::progress::Progress;
use burst::Target;
use clap::Args;

use super::{ensure_open_files, on_interrupt, runtime, settings, CommonArgs, Fatal, INTERRUPTED};

#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    #[command(flatten)]
    pub(crate) servers: super::ServerArgs,

    /// Burst sizes, comma-separated.
    #[arg(
        short = 'n',
        long = "requests",
        value_delimiter = ',',
        default_value = "16"
    )]
    pub(crate) sizes: Vec<u32>,

    /// Routes, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "/io,/async-io,/async-io-multi"
    )]
    pub(crate) routes: Vec<String>,

    #[command(flatten)]
    pub(crate) common: CommonArgs,

    /// Steady traffic instead of bursts: this many requests a second at each server × route,
    /// one after another (an open loop, as `burst URL --rate`).
    #[arg(long, value_name = "PER_SECOND", conflicts_with = "sizes")]
    pub(crate) rate: Option<f64>,

    /// With --rate: for how many seconds each.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, requires = "rate")]
    pub(crate) duration: f64,

    /// Write the comparison chart to this SVG file (with --rate: latency over time).
    #[arg(long, value_name = "FILE")]
    pub(crate) svg: Option<PathBuf>,

    /// Print the whole matrix as JSON (one object per cell, with every request).
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn compare(args: &CompareArgs) -> Result<ExitCode, Fatal> {
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
    let named = args.servers.named()?;
    if let Some(rate) = args.rate {
        return super::steady::compare(
            &named,
            &routes,
            super::steady::traffic(rate, args.duration)?,
            &settings,
            &cancel,
            args.svg.as_deref(),
            args.json,
        );
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
