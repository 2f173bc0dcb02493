//! Steady traffic (`burst URL --rate R --duration D`), shown: hundreds of requests are too many
//! rows, and an average would hide the queue growing — so the text view is one row per slice of
//! the schedule (how many were due, served and shed, and their latency from when they were due,
//! beside the model's), and the picture is latency over time: one dot per request at the time it
//! was due, the model's line through them. The pool's climbs above capacity; the event loop's
//! stays flat.

use std::fmt::Write as _;
use std::time::Duration;

use crate::client::{Burst, RequestResult};
use crate::model::steady::SteadyCheck;
use crate::print::text::tick_step;
use crate::stats::percentile;

/// How long a slice of the schedule each table row covers: about a dozen rows.
fn slice(duration: Duration) -> Duration {
    let step = tick_step(duration, 12);
    step.max(Duration::from_millis(100))
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

/// The table: a row per slice of the schedule.
pub fn table(burst: &Burst, check: Option<&SteadyCheck>, duration: Duration) -> String {
    let step = slice(duration);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>13}  {:>4}  {:>6}  {:>4}  {:>6}  {:>17}  {:>10}",
        "due (s)", "due", "served", "shed", "failed", "from due p50/max", "model max"
    );
    let mut from = Duration::ZERO;
    while from < duration {
        let to = from + step;
        let rows: Vec<&RequestResult> = burst
            .results
            .iter()
            .filter(|r| r.scheduled >= from && r.scheduled < to)
            .collect();
        if rows.is_empty() {
            // A slice with nothing due (sparse traffic, or a run stopped early): no row.
            from = to;
            continue;
        }
        let served: Vec<&&RequestResult> = rows.iter().filter(|r| r.is_ok()).collect();
        let shed = rows
            .iter()
            .filter(|r| r.outcome == crate::client::Outcome::Http(503))
            .count();
        let failed = rows.len() - served.len() - shed;
        let mut lat: Vec<Duration> = served.iter().filter_map(|r| r.from_schedule()).collect();
        lat.sort();
        let p50 = percentile(&lat, 50.0).map_or("-".into(), secs);
        let max = lat.last().copied().map_or("-".into(), secs);
        let model = check
            .and_then(|c| {
                served
                    .iter()
                    .filter_map(|r| {
                        Some(
                            c.predicted
                                .get(r.index)
                                .copied()??
                                .saturating_sub(r.scheduled),
                        )
                    })
                    .max()
            })
            .map_or("-".into(), secs);
        let _ = writeln!(
            s,
            "{:>6}–{:<6}  {:>4}  {:>6}  {:>4}  {:>6}  {:>17}  {:>10}",
            secs(from),
            secs(to.min(duration)),
            rows.len(),
            served.len(),
            shed,
            failed,
            format!("{p50} / {max}"),
            model
        );
        from = to;
    }
    s
}

/// The summary under it: latency three ways, the verdict (or `no_model`, why there is none), and
/// Little's law.
pub fn summary(burst: &Burst, check: Option<&SteadyCheck>, no_model: &str, color: bool) -> String {
    let mut s = String::new();
    let ok: Vec<&RequestResult> = burst.results.iter().filter(|r| r.is_ok()).collect();
    let stat = |v: &mut Vec<Duration>| {
        v.sort();
        let f = |p| {
            percentile(v, p).map_or("-".into(), |d: Duration| {
                format!("{:.0}", d.as_secs_f64() * 1000.0)
            })
        };
        format!(
            "p50 {}  p90 {}  p99 {}  max {}",
            f(50.0),
            f(90.0),
            f(99.0),
            f(100.0)
        )
    };
    let mut due: Vec<Duration> = ok.iter().filter_map(|r| r.from_schedule()).collect();
    let mut sent: Vec<Duration> = ok.iter().filter_map(|r| r.latency()).collect();
    let mut served: Vec<Duration> = ok.iter().filter_map(|r| r.served()).collect();
    let late = burst.release_spread;
    let _ = writeln!(
        s,
        "{} requests due over {:.1} s; each sent at most {:.1} ms after it was due",
        burst.results.len(),
        burst
            .results
            .last()
            .map_or(0.0, |r| r.scheduled.as_secs_f64()),
        late.as_secs_f64() * 1000.0
    );
    let _ = writeln!(s, "latency ms from when due: {}", stat(&mut due));
    let _ = writeln!(s, "latency ms from when sent: {}", stat(&mut sent));
    let _ = writeln!(s, "served ms (server's own):  {}", stat(&mut served));
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    for r in &burst.results {
        let key = match &r.outcome {
            crate::client::Outcome::Http(status) => status.to_string(),
            other => other.label().to_owned(),
        };
        *statuses.entry(key).or_default() += 1;
    }
    let statuses: Vec<String> = statuses.iter().map(|(k, n)| format!("{n} × {k}")).collect();
    let _ = writeln!(s, "status: {}", statuses.join(", "));
    match check {
        Some(c) => {
            s.push_str(&crate::print::text::model_line(
                &c.verdict,
                c.as_predicted,
                color,
            ));
            let _ = writeln!(s, "{}", c.little.line());
        }
        None => {
            let _ = writeln!(s, "model: {no_model}");
        }
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One run on the latency chart.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    pub label: &'a str,
    pub burst: &'a Burst,
    pub check: Option<&'a SteadyCheck>,
    pub color: &'static str,
}

/// Latency over time: a dot per request at (when it was due, latency from then), the model's
/// line through them, shed requests as crosses on the floor.
pub fn latency_chart(title: &str, subtitle: &str, runs: &[Run<'_>]) -> String {
    let (x0, y0, w, h) = (80.0, 70.0, 760.0, 380.0);
    let width = 880.0;
    let height = y0 + h + 80.0 + 22.0 * runs.len() as f64;
    let span = runs
        .iter()
        .flat_map(|r| r.burst.results.iter().map(|q| q.scheduled))
        .max()
        .unwrap_or_default()
        .as_secs_f64()
        .max(0.1)
        * 1.04;
    let top = runs
        .iter()
        .flat_map(|r| {
            let model = r
                .check
                .map(|c| c.predicted.iter().zip(&r.burst.results))
                .into_iter()
                .flatten()
                .filter_map(|(p, q)| Some(p.as_ref()?.saturating_sub(q.scheduled)));
            r.burst
                .results
                .iter()
                .filter_map(RequestResult::from_schedule)
                .chain(model)
                .collect::<Vec<_>>()
        })
        .max()
        .unwrap_or_default()
        .as_secs_f64()
        .max(0.1)
        * 1.1;
    let px = |t: f64| x0 + t / span * w;
    let py = |t: f64| y0 + h - t / top * h;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="100%" viewBox="0 0 {width} {height:.0}" font-family="sans-serif">"##
    );
    let _ = writeln!(
        s,
        r##"<rect width="100%" height="100%" fill="#fff"/><text x="{x0}" y="28" font-size="18" font-weight="bold">{}</text><text x="{x0}" y="50" font-size="13" fill="#444">{}</text>"##,
        esc(title),
        esc(subtitle)
    );
    let _ = writeln!(
        s,
        r##"<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="#fff" stroke="#333"/>"##
    );
    let xs = tick_step(Duration::from_secs_f64(span), 10).as_secs_f64();
    let mut v = 0.0;
    while v <= span + 1e-9 {
        let x = px(v);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{}" stroke="#eee"/><text x="{x:.1}" y="{}" text-anchor="middle" font-size="11">{}</text>"##,
            y0 + h,
            y0 + h + 15.0,
            trim(v)
        );
        v += xs;
    }
    let ys = tick_step(Duration::from_secs_f64(top), 8).as_secs_f64();
    let mut v = 0.0;
    while v <= top + 1e-9 {
        let y = py(v);
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"##,
            x0 + w,
            x0 - 6.0,
            y + 4.0,
            trim(v)
        );
        v += ys;
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12">seconds: when each request was due</text><text transform="translate(28,{:.1}) rotate(-90)" text-anchor="middle" font-size="12">latency from when it was due (s)</text>"##,
        x0 + w / 2.0,
        y0 + h + 34.0,
        y0 + h / 2.0
    );
    for (k, run) in runs.iter().enumerate() {
        for q in &run.burst.results {
            let x = px(q.scheduled.as_secs_f64());
            match (
                q.is_ok(),
                q.outcome == crate::client::Outcome::Http(503),
                q.from_schedule(),
            ) {
                (true, _, Some(l)) => {
                    let _ = writeln!(
                        s,
                        r##"<circle cx="{x:.1}" cy="{:.1}" r="2.6" fill="{}"><title>request {}: due {:.3} s, answered {:.3} s later</title></circle>"##,
                        py(l.as_secs_f64()),
                        run.color,
                        q.index,
                        q.scheduled.as_secs_f64(),
                        l.as_secs_f64()
                    );
                }
                (_, true, _) => {
                    let y = y0 + h - 6.0 - 8.0 * k as f64;
                    let _ = writeln!(
                        s,
                        r##"<path d="M{:.1},{:.1}l6,6m0,-6l-6,6" stroke="#c00" stroke-width="1.5"><title>request {}: shed (503)</title></path>"##,
                        x - 3.0,
                        y - 3.0,
                        q.index
                    );
                }
                _ => {
                    let _ = writeln!(
                        s,
                        r##"<rect x="{:.1}" y="{y0}" width="2" height="8" fill="#c00"><title>request {}: {}</title></rect>"##,
                        x - 1.0,
                        q.index,
                        esc(q.outcome.label())
                    );
                }
            }
        }
        // The model's line over the dots, so it stays visible where they agree.
        if let Some(c) = run.check {
            let mut points: Vec<(f64, f64)> = c
                .predicted
                .iter()
                .zip(&run.burst.results)
                .filter_map(|(p, q)| {
                    Some((
                        q.scheduled.as_secs_f64(),
                        p.as_ref()?.saturating_sub(q.scheduled).as_secs_f64(),
                    ))
                })
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let path: Vec<String> = points
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
                .collect();
            if !path.is_empty() {
                let _ = writeln!(
                    s,
                    r##"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.6" stroke-dasharray="6 4" opacity="0.9"/>"##,
                    path.join(" "),
                    run.color
                );
            }
        }
        let ly = y0 + h + 58.0 + 22.0 * k as f64;
        let verdict = run.check.map_or("no model".to_owned(), |c| {
            let mark = if c.as_predicted {
                "✓"
            } else {
                "✗ NOT as predicted"
            };
            let mu = c
                .capacity
                .map_or("μ: CPU and memory".to_owned(), |m| format!("μ = {m:.1}/s"));
            format!(
                "{mark} · {mu} · L = λ·W = {:.1} × {:.2} s = {:.1}",
                c.little.lambda, c.little.w_s, c.little.l
            )
        });
        let shed = run
            .burst
            .results
            .iter()
            .filter(|q| q.outcome == crate::client::Outcome::Http(503))
            .count();
        let shed = if shed > 0 {
            format!(" · {shed} shed (✕)")
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            r##"<circle cx="{x0}" cy="{:.1}" r="5" fill="{}"/><text x="{}" y="{:.1}" font-size="13">{} — {}{}; dashed: the model</text>"##,
            ly - 4.0,
            run.color,
            x0 + 12.0,
            ly,
            esc(run.label),
            esc(&verdict),
            shed
        );
    }
    s.push_str("</svg>\n");
    s
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}
