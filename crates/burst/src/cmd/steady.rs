//! `burst URL --rate R --duration D`: steady, open-loop traffic at one URL — sent on schedule
//! whatever the server does, held against the queueing model (μ, the queue's growth, what a limit
//! sheds) and shown compressed: a row per slice of the schedule, a sample of the waterfall, the
//! latency-over-time chart, Little's law.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use burst::client::{self, Cancel, Outcome, SteadyOptions};
use burst::experiment::Status;
use burst::model::steady::{self, Traffic};
use burst::print::text::{self as render, WaterfallStyle};
use burst::print::{json_csv as output, steady as show};
use burst::progress::Progress;
use burst::Target;
use serde::Serialize;

use super::one::{OneArgs, PrintMode};
use super::{ensure_open_files, on_interrupt, plan_telling, runtime, settings, Fatal, INTERRUPTED};
use burst::experiment;

/// The most requests one run may schedule.
const MAX_REQUESTS: f64 = 1_000_000.0;

#[derive(Serialize)]
struct Report<'a> {
    url: &'a str,
    rate: f64,
    duration_ms: f64,
    requests: usize,
    /// What the server said at `GET /` (in `compare`, `info`: `server` is the target's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<&'a burst::model::ServerInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<&'a burst::model::ServerInfo>,
    model: Option<&'a steady::SteadyCheck>,
    rows: Vec<output::Row>,
}

/// One run of steady traffic: what came back, what the server said, the model's check (none
/// when interrupted).
pub(crate) struct Run {
    pub(crate) burst: burst::Burst,
    pub(crate) plan: experiment::Plan,
    pub(crate) check: Option<steady::SteadyCheck>,
}

/// Ask the server what it is, say what the model predicts, send the traffic with a progress
/// line, and hold it against the model. `None`: interrupted before anything was sent.
pub(crate) async fn run(
    target: &Target,
    traffic: Traffic,
    settings: &experiment::Settings,
    cancel: &Cancel,
) -> Result<Option<Run>, burst::FireError> {
    let (rate, d) = (traffic.rate, traffic.duration.as_secs_f64());
    let n = client::schedule(rate, traffic.duration).len();
    // Nothing listening is said at once, not after the whole schedule has failed to connect.
    if let Err(e) = tokio::net::TcpStream::connect(target.addr).await {
        return Err(burst::FireError(format!(
            "cannot connect to {} ({e}): nothing is listening there; start a twin first: {}",
            target.url,
            client::start_hint(target.addr.port())
        )));
    }
    let Some(plan) = plan_telling(target, 1, settings).await? else {
        return Ok(None);
    };
    let modelled = plan.prediction.as_ref().map(|p| steady::plan(p, &traffic));
    let worst = modelled.as_ref().map_or(Duration::ZERO, |m| m.1);
    // In flight at once: λ × the slowest latency (Little's law), a fifth more for the jitter of a
    // busy machine — or all of them.
    let in_flight = (rate * worst.as_secs_f64() * 1.2).ceil() as usize + 100;
    if let Err(Fatal(line, _)) = ensure_open_files(in_flight.min(n)) {
        return Err(burst::FireError(line));
    }
    let longest = plan
        .server
        .as_ref()
        .map_or(60_000, |s| s.max_ms.max(s.task_ms));
    let timeout = settings.timeout.unwrap_or(
        (worst * 2 + Duration::from_secs(10))
            .max(Duration::from_millis(longest) + Duration::from_secs(10)),
    );
    if let (Some(p), Some((fates, worst))) = (&plan.prediction, &modelled) {
        let shed = fates.iter().filter(|f| **f == steady::Fate::Shed).count();
        let mu = steady::capacity(p).map_or("bounded by CPU and memory".to_owned(), |m| {
            format!("{m:.1}/s")
        });
        let shed = if shed > 0 {
            format!(", {shed} shed (503)")
        } else {
            String::new()
        };
        eprintln!(
            "burst: {} at {rate}/s for {d} s at {}; capacity μ {mu}; the model: the \
             slowest answered {:.2} s after it was due{shed}",
            twin_core::reply::plural(n as u64, "request"),
            target.url,
            worst.as_secs_f64()
        );
    }
    let progress = Progress::start(std::io::stderr().is_terminal());
    progress.begin(
        &format!("{rate}/s × {d} s at {}", target.url),
        n,
        Some(traffic.duration + worst),
    );
    let burst = client::fire_steady(
        target,
        SteadyOptions {
            rate,
            duration: traffic.duration,
            timeout,
            ended: Some(progress.counter()),
            worker_header: settings.worker_header.clone(),
            run: None,
            cancel: Some(cancel.watch()),
        },
    )
    .await;
    progress.end();
    let burst = burst?;
    let check = plan
        .prediction
        .as_ref()
        .filter(|_| !cancel.is_cancelled())
        .map(|p| steady::check(&burst, p, traffic));
    Ok(Some(Run { burst, plan, check }))
}

/// Who a server is, in a few words: `pool-server, 4 workers × 2 threads, --limit-concurrency 8`.
pub(crate) fn who(server: Option<&burst::model::ServerInfo>) -> String {
    server.map_or("a server".to_owned(), |s| {
        let name = s.server.clone().unwrap_or_else(|| s.kind.to_string());
        let threads = s
            .threads
            .filter(|&k| k > 1)
            .map(|k| format!(" × {k} threads"))
            .unwrap_or_default();
        let limit = s
            .limit_concurrency
            .map(|l| format!(", --limit-concurrency {l}"))
            .unwrap_or_default();
        let workers = if s.workers == 1 { "worker" } else { "workers" };
        format!("{name}, {} {workers}{threads}{limit}", s.workers)
    })
}

/// How a run ends, as the exit status says: failed, not as predicted, or fine.
pub(crate) fn status(run: &Run) -> Status {
    let failed = run
        .burst
        .results
        .iter()
        .any(|r| !r.is_ok() && r.outcome != Outcome::Http(503));
    match &run.check {
        _ if failed => Status::Failed,
        Some(c) if !c.as_predicted => Status::NotAsPredicted,
        // 503s with no model to say they were expected: failures.
        None if run.burst.results.iter().any(|r| !r.is_ok()) => Status::Failed,
        _ => Status::Ok,
    }
}

/// Check `--rate` and `--duration`; the traffic they make.
pub(crate) fn traffic(rate: f64, d: f64) -> Result<Traffic, Fatal> {
    if !(rate.is_finite() && rate > 0.0 && rate <= 100_000.0) {
        return Err(Fatal(
            format!("--rate must be 0 < requests a second <= 100000, got {rate}"),
            2,
        ));
    }
    if !(d.is_finite() && d > 0.0 && d <= 3600.0) {
        return Err(Fatal(
            format!("--duration must be 0 < seconds <= 3600, got {d}"),
            2,
        ));
    }
    if rate * d > MAX_REQUESTS {
        return Err(Fatal(
            format!(
                "--rate {rate} for --duration {d} is {:.0} requests; at most {MAX_REQUESTS:.0} a run",
                rate * d
            ),
            2,
        ));
    }
    Ok(Traffic {
        rate,
        duration: Duration::from_secs_f64(d),
    })
}

/// `burst URL --rate R` (main sends it here, `one` the bursts).
pub(crate) fn steady(args: &OneArgs) -> Result<ExitCode, Fatal> {
    let (Some(url), Some(rate)) = (args.url.as_deref(), args.rate) else {
        return Err(Fatal(
            "give a URL and a rate, e.g. `burst http://127.0.0.1:8000/io --rate 12 --duration 5`"
                .into(),
            2,
        ));
    };
    let d = args.duration;
    let traffic = traffic(rate, d)?;
    let n = client::schedule(rate, traffic.duration).len();
    let mut settings = settings(&args.common)?;
    let cancel = Cancel::default();
    settings.cancel = Some(cancel.clone());
    let rt = runtime()?;
    on_interrupt(&cancel)?;
    let fired = rt
        .block_on(async {
            let target = Target::parse(url).await?;
            run(&target, traffic, &settings, &cancel).await
        })
        .map_err(|e: burst::FireError| Fatal(e.0, 2))?;
    let Some(Run { burst, plan, check }) = fired else {
        eprintln!("burst: interrupted before anything was sent");
        return Ok(ExitCode::from(INTERRUPTED));
    };
    let interrupted = cancel.is_cancelled();
    let who = who(plan.server.as_ref());
    if let Some(path) = &args.svg {
        let route = burst
            .url
            .split_once("://")
            .map_or(burst.url.as_str(), |(_, rest)| {
                rest.find('/').map_or("/", |i| &rest[i..])
            });
        let title = format!("{rate}/s × {d} s of GET {route}: latency from when each was due");
        let chart = show::latency_chart(
            &title,
            &who,
            &[show::Run {
                label: &who,
                burst: &burst,
                check: check.as_ref(),
                color: "#0072B2",
            }],
        );
        std::fs::write(path, chart)
            .map_err(|err| Fatal(format!("cannot write {}: {err}", path.display()), 2))?;
    }
    let predicted = check.as_ref().map(|c| c.predicted.as_slice());
    match args.print_mode() {
        PrintMode::Json => {
            let report = Report {
                url: &burst.url,
                rate,
                duration_ms: d * 1000.0,
                requests: n,
                server: plan.server.as_ref(),
                info: None,
                model: check.as_ref(),
                rows: output::rows_predicted(&burst, predicted),
            };
            let text = serde_json::to_string_pretty(&report)
                .map_err(|err| Fatal(format!("cannot write JSON: {err}"), 2))?;
            println!("{text}");
        }
        PrintMode::Csv => print!(
            "{}",
            output::csv(&output::rows_predicted(&burst, predicted))
        ),
        mode @ (PrintMode::Text | PrintMode::Quiet) => {
            let color = !args.no_color
                && std::env::var_os("NO_COLOR").is_none()
                && std::io::stdout().is_terminal();
            // Interrupted: what came back, not a row for each request given up or never sent.
            let mut seen = burst.clone();
            seen.results.retain(|r| r.outcome != Outcome::Cancelled);
            if mode == PrintMode::Text {
                println!(
                    "burst: {rate}/s for {d} s, open loop, at GET {} ({who})\n",
                    burst.url
                );
                print!("{}", show::table(&seen, check.as_ref(), traffic.duration));
                println!();
                if !seen.results.is_empty() {
                    let width =
                        terminal_size::terminal_size().map_or(100, |(w, _)| usize::from(w.0));
                    let style = WaterfallStyle {
                        width,
                        max_rows: args.rows.min(24),
                        color,
                    };
                    print!("{}", render::waterfall(&seen, style));
                    println!();
                }
            }
            let no_model = if interrupted {
                "no verdict: interrupted (Ctrl-C) before every request was sent and answered"
            } else {
                "no prediction (the server publishes no queueing rule for this route; give one \
                 with --model pool|event-loop)"
            };
            print!("{}", show::summary(&seen, check.as_ref(), no_model, color));
            if let Some(path) = &args.svg {
                println!("latency chart: {}", path.display());
            }
        }
    }
    if interrupted {
        let unsent = burst
            .results
            .iter()
            .filter(|r| r.outcome == Outcome::Cancelled)
            .count();
        eprintln!(
            "burst: interrupted: {} of {n} given up or never sent; no verdict",
            unsent
        );
        return Ok(ExitCode::from(INTERRUPTED));
    }
    let status = status(&Run { burst, plan, check });
    Ok(ExitCode::from(status.exit_code()))
}

/// Colours of the runs on one latency chart (Okabe & Ito, as the other charts).
const COLORS: [&str; 6] = [
    "#D55E00", "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
];

/// `burst compare --rate R --duration D`: the same steady traffic at each server × route, one
/// after another; a row each, every verdict, and one latency chart with a line per run. Ctrl-C
/// (`cancel`) is caught by `compare`.
pub(crate) fn compare(
    named: &[(String, String)],
    routes: &[String],
    traffic: Traffic,
    settings: &experiment::Settings,
    cancel: &Cancel,
    svg: Option<&std::path::Path>,
    json: bool,
) -> Result<ExitCode, Fatal> {
    let (rate, d) = (traffic.rate, traffic.duration.as_secs_f64());
    let rt = runtime()?;
    let runs = rt
        .block_on(async {
            let mut targets = Vec::new();
            for (name, url) in named {
                let base = Target::parse(url).await?;
                // Every server must be there before the first run, not when its turn comes.
                if let Err(e) = client::get(&base.with_path("/")?, Duration::from_secs(5)).await {
                    return Err(burst::FireError(format!(
                        "{name} at {url}: {e}; start it first (nothing was sent)"
                    )));
                }
                targets.push((name.as_str(), base));
            }
            let mut runs = Vec::new();
            for route in routes {
                for (name, base) in &targets {
                    let target = base.with_path(route)?;
                    match run(&target, traffic, settings, cancel).await? {
                        Some(r) if !cancel.is_cancelled() => {
                            runs.push(((*name).to_owned(), route.clone(), r))
                        }
                        _ => return Ok(runs),
                    }
                }
            }
            Ok(runs)
        })
        .map_err(|e: burst::FireError| Fatal(e.0, 2))?;
    if let Some(path) = svg {
        let labels: Vec<String> = runs
            .iter()
            .map(|(name, route, r)| format!("{name} {route} ({})", who(r.plan.server.as_ref())))
            .collect();
        let lines: Vec<show::Run<'_>> = runs
            .iter()
            .zip(&labels)
            .enumerate()
            .map(|(k, ((_, _, r), label))| show::Run {
                label,
                burst: &r.burst,
                check: r.check.as_ref(),
                color: COLORS[k % COLORS.len()],
            })
            .collect();
        let title =
            format!("{rate}/s for {d} s, open loop: latency from when each request was due");
        let chart = show::latency_chart(
            &title,
            "each dot a request; dashed, the queueing model",
            &lines,
        );
        std::fs::write(path, chart)
            .map_err(|err| Fatal(format!("cannot write {}: {err}", path.display()), 2))?;
    }
    if json {
        #[derive(Serialize)]
        struct Cell<'a> {
            server: &'a str,
            route: &'a str,
            #[serde(flatten)]
            report: Report<'a>,
        }
        let cells: Vec<Cell<'_>> = runs
            .iter()
            .map(|(name, route, r)| Cell {
                server: name,
                route,
                report: Report {
                    url: &r.burst.url,
                    rate,
                    duration_ms: d * 1000.0,
                    requests: r.burst.results.len(),
                    server: None,
                    info: r.plan.server.as_ref(),
                    model: r.check.as_ref(),
                    rows: output::rows_predicted(
                        &r.burst,
                        r.check.as_ref().map(|c| c.predicted.as_slice()),
                    ),
                },
            })
            .collect();
        let text = serde_json::to_string_pretty(&cells)
            .map_err(|err| Fatal(format!("cannot write JSON: {err}"), 2))?;
        println!("{text}");
    } else {
        println!("burst compare: {rate}/s for {d} s, open loop, at each server × route\n");
        // Columns as wide as their longest name ("gunicorn gthread 2×4"), so rows stay aligned.
        let wide = |names: &mut dyn Iterator<Item = usize>| names.max().unwrap_or(0).max(16);
        let sw = wide(&mut runs.iter().map(|(name, _, _)| name.chars().count()));
        let rw = wide(&mut runs.iter().map(|(_, route, _)| route.chars().count()));
        println!(
            "{:<sw$} {:<rw$} {:>5} {:>6} {:>5} {:>6}  {:>16}  {:>11}  model",
            "server", "route", "due", "served", "shed", "failed", "from due p50/max", "model max"
        );
        for (name, route, r) in &runs {
            let ok: Vec<Duration> = {
                let mut v: Vec<Duration> = r
                    .burst
                    .results
                    .iter()
                    .filter(|q| q.is_ok())
                    .filter_map(|q| q.from_schedule())
                    .collect();
                v.sort();
                v
            };
            let shed = r
                .burst
                .results
                .iter()
                .filter(|q| q.outcome == Outcome::Http(503))
                .count();
            let failed = r.burst.results.len() - ok.len() - shed;
            let p50 = burst::stats::percentile(&ok, 50.0)
                .map_or("-".to_owned(), |d| format!("{:.2}", d.as_secs_f64()));
            let max = ok
                .last()
                .map_or("-".to_owned(), |d| format!("{:.2}", d.as_secs_f64()));
            let (model_max, mark) = match &r.check {
                Some(c) => {
                    let m = c
                        .predicted
                        .iter()
                        .zip(&r.burst.results)
                        .filter_map(|(p, q)| Some(p.as_ref()?.saturating_sub(q.scheduled)))
                        .max()
                        .map_or("-".to_owned(), |d| format!("{:.2}", d.as_secs_f64()));
                    (m, if c.as_predicted { "✓" } else { "✗" })
                }
                None => ("-".to_owned(), "-"),
            };
            println!(
                "{name:<sw$} {route:<rw$} {:>5} {:>6} {shed:>5} {failed:>6}  {:>16}  {model_max:>11}  {mark}",
                r.burst.results.len(),
                ok.len(),
                format!("{p50} / {max}")
            );
        }
        println!();
        for (name, route, r) in &runs {
            if let Some(c) = &r.check {
                println!("{name} {route}: {}", c.verdict);
                println!("  {}", c.little.line());
            }
        }
        if let Some(path) = svg {
            println!("latency chart: {}", path.display());
        }
    }
    if cancel.is_cancelled() {
        eprintln!("burst: interrupted: the runs before it are shown; no verdict for the rest");
        return Ok(ExitCode::from(INTERRUPTED));
    }
    let worst = runs
        .iter()
        .map(|(_, _, r)| status(r))
        .min()
        .unwrap_or(Status::Ok);
    Ok(ExitCode::from(worst.exit_code()))
}
