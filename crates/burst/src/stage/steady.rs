//! Steady traffic from the stage (`POST /fire?rate=12&duration=5`): the same open loop as
//! `burst URL --rate`, at one twin or both at once, each held against its model. The page draws
//! every request as it comes — the pool's queue growing beside an event loop that keeps up — with
//! λ, μ and the requests in the server (L) as numbers; the result adds Little's law and what a
//! limit shed.

use std::time::Duration;

use serde_json::{json, Value};

use super::relay::ENDS_GRACE;
use super::request::{FireRequest, Planned};
use super::{lock, relay, ForLater, Stage, Stored, KEEP};
use crate::client::{self, Cancel, Outcome, SteadyOptions};
use crate::model::steady::{self, Traffic};
use crate::print::json_csv as output;
use crate::units::whole_ms;

/// What the model says of one twin before anything is sent.
struct Told {
    predicted: Duration,
    capacity: Option<f64>,
    shed: usize,
    words: String,
}

fn told(p: &Planned, traffic: &Traffic) -> Option<Told> {
    let prediction = p.plan.prediction.as_ref()?;
    let (fates, worst) = steady::plan(prediction, traffic);
    let shed = fates.iter().filter(|f| **f == steady::Fate::Shed).count();
    let capacity = steady::capacity(prediction);
    let words = match capacity {
        Some(mu) if traffic.rate > mu * 1.001 && prediction.limit.is_some() => format!(
            "μ = {mu:.1}/s: {shed} shed ({} {})",
            prediction.limit_flag,
            prediction.limit.unwrap_or_default()
        ),
        // How long the last waits is the dashed line's to show; the words stay one line.
        Some(mu) if traffic.rate > mu * 1.001 => format!(
            "μ = {mu:.1}/s: the queue grows {:.1} a second",
            traffic.rate - mu
        ),
        Some(mu) => format!(
            "μ = {mu:.1}/s: keeps up, each ≈ {:.2} s",
            worst.as_secs_f64()
        ),
        None => format!(
            "keeps up (holds {} while it waits), each ≈ {:.2} s",
            prediction.held_by,
            worst.as_secs_f64()
        ),
    };
    Some(Told {
        predicted: traffic.duration + worst,
        capacity,
        shed,
        words,
    })
}

fn traffic(request: &FireRequest, rate: f64) -> Traffic {
    Traffic {
        rate,
        duration: request.duration,
    }
}

/// `GET /plan?rate=…`: each twin's predicted time and what its model says, for the buttons.
pub(super) fn plan(
    request: &FireRequest,
    rate: f64,
    planned: &[Planned],
    refused: Vec<Value>,
) -> Value {
    let traffic = traffic(request, rate);
    let n = client::schedule(rate, traffic.duration).len();
    let mut total = None;
    let twins: Vec<Value> = planned
        .iter()
        .map(|p| {
            let t = told(p, &traffic);
            if let Some(t) = &t {
                total = Some(total.unwrap_or(Duration::ZERO).max(t.predicted));
            }
            json!({"twin": p.twin,
                   "predicted_ms": t.as_ref().map(|t| whole_ms(t.predicted)),
                   "model": t.as_ref().map(|t| t.words.clone()),
                   "mu": t.as_ref().and_then(|t| t.capacity)})
        })
        .chain(refused)
        .collect();
    json!({"route": request.path(), "n": n, "rate": rate,
           "duration_ms": whole_ms(traffic.duration),
           "predicted_ms": total.map(whole_ms), "one_after_the_other": false,
           "ask_first": false, "twins": twins})
}

/// Send the traffic at every planned twin at once, check each, keep the files, tell the pages.
pub(super) async fn fire(
    stage: &Stage,
    k: usize,
    request: &FireRequest,
    rate: f64,
    planned: Vec<Planned>,
    refused: Vec<Value>,
    cancel: &Cancel,
) -> Value {
    let path = request.path();
    let traffic = traffic(request, rate);
    let n = client::schedule(rate, traffic.duration).len();
    let d = traffic.duration.as_secs_f64();
    if planned.is_empty() {
        let result = json!({"type": "result", "burst": k, "route": path, "n": n, "final": true,
                            "mode": "steady", "twins": refused, "chart": null});
        stage.say(&result, ForLater::Keep);
        return result;
    }
    let runs: Vec<String> = planned.iter().map(|_| client::run_id()).collect();
    let firing: Vec<Value> = planned
        .iter()
        .zip(&runs)
        .map(|(p, run)| {
            let t = told(p, &traffic);
            json!({"twin": p.twin, "run": run,
                   "predicted_ms": t.as_ref().map(|t| whole_ms(t.predicted)),
                   "model": t.as_ref().map(|t| t.words.clone()),
                   "mu": t.as_ref().and_then(|t| t.capacity),
                   "shed_expected": t.as_ref().map(|t| t.shed)})
        })
        .collect();
    stage.narrate(format!(
        "burst {k}: {rate}/s for {d} s of {path} at {}",
        planned
            .iter()
            .map(|p| p.twin)
            .collect::<Vec<_>>()
            .join(" and ")
    ));
    stage.say(
        &json!({"type": "firing", "burst": k, "route": path, "n": n, "mode": "steady",
                "rate": rate, "duration_ms": whole_ms(traffic.duration),
                "sequential": false, "note": null, "twins": firing}),
        ForLater::Restart,
    );
    for run in &runs {
        relay::count_ends(stage, run);
    }
    // Every twin's traffic at once: IO-bound waits share nothing but this machine's clock.
    let tasks: Vec<_> = planned
        .iter()
        .zip(&runs)
        .map(|(p, run)| {
            let longest = p
                .plan
                .server
                .as_ref()
                .map_or(60_000, |s| s.max_ms.max(s.task_ms));
            let worst = p
                .plan
                .prediction
                .as_ref()
                .map_or(Duration::ZERO, |m| steady::plan(m, &traffic).1);
            let timeout = (worst * 2 + Duration::from_secs(10))
                .max(Duration::from_millis(longest) + Duration::from_secs(10));
            let target = p.target.clone();
            let opts = SteadyOptions {
                rate,
                duration: traffic.duration,
                timeout,
                ended: None,
                worker_header: client::WORKER_HEADER.into(),
                run: Some(run.as_str().into()),
                cancel: Some(cancel.watch()),
            };
            tokio::spawn(async move { client::fire_steady(&target, opts).await })
        })
        .collect();
    let mut sent = Vec::with_capacity(tasks.len());
    for task in tasks {
        sent.push(
            task.await.unwrap_or_else(|e| {
                Err(client::FireError(format!("the traffic's task failed: {e}")))
            }),
        );
    }
    let mut twins = refused;
    let mut files = Vec::new();
    for ((p, run), burst) in planned.iter().zip(&runs).zip(sent) {
        let burst = match burst {
            Ok(b) => b,
            Err(e) => {
                twins.push(json!({"twin": p.twin, "error": e.0}));
                continue;
            }
        };
        let given_up = burst
            .results
            .iter()
            .filter(|r| r.outcome == Outcome::Cancelled)
            .count();
        let answered = burst
            .results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Http(_)))
            .count();
        let (expected, limit) = if given_up > 0 {
            (burst.results.len(), Duration::from_secs(2))
        } else {
            (answered, ENDS_GRACE)
        };
        let ends = relay::wait_for_ends(stage, run, expected, limit).await;
        let check = p
            .plan
            .prediction
            .as_ref()
            .filter(|_| given_up == 0)
            .map(|m| steady::check(&burst, m, traffic));
        let shed = burst
            .results
            .iter()
            .filter(|r| r.outcome == Outcome::Http(503))
            .count();
        let ok = burst.results.iter().filter(|r| r.is_ok()).count();
        let failed = burst.results.len() - ok - shed - given_up;
        let (status, verdict) = match &check {
            _ if given_up > 0 => (
                "cancelled",
                format!(
                    "cancelled after {:.2} s: {ok} answered, {shed} shed; {given_up} given up or \
                     never sent (the twin left {} unserved, 499)",
                    burst.wall.as_secs_f64(),
                    ends.skipped
                ),
            ),
            _ if failed > 0 => (
                "failed",
                check.as_ref().map_or_else(
                    || format!("{failed} of {} failed", burst.results.len()),
                    |c| c.verdict.clone(),
                ),
            ),
            Some(c) if c.as_predicted => ("ok", c.verdict.clone()),
            Some(c) => ("not-as-predicted", c.verdict.clone()),
            None => (
                "ok",
                format!("{ok} answered, {shed} shed; no model to check"),
            ),
        };
        let predicted = check.as_ref().map(|c| c.predicted.as_slice());
        let rows = output::rows_predicted(&burst, predicted);
        let slug = stage.twin(p.twin).map_or("server", |t| t.slug.as_str());
        files.push((
            format!("{slug}.csv"),
            "text/csv; charset=utf-8",
            output::csv(&rows),
        ));
        let report = json!({"url": burst.url, "rate": rate, "duration_ms": whole_ms(traffic.duration),
                            "server": p.plan.server, "model": check, "rows": rows});
        files.push((
            format!("{slug}.json"),
            "application/json",
            serde_json::to_string_pretty(&report).unwrap_or_default(),
        ));
        let last_ms = check.as_ref().map(|c| {
            whole_ms(
                c.predicted
                    .iter()
                    .flatten()
                    .copied()
                    .max()
                    .unwrap_or(traffic.duration),
            )
        });
        stage.narrate(format!(
            "burst {k}: {}: {} {verdict}",
            p.twin,
            if status == "ok" { "✓" } else { "✗" }
        ));
        twins.push(json!({
            "twin": p.twin, "status": status, "verdict": verdict,
            "wall_ms": crate::units::round(crate::units::ms(burst.wall), 2),
            "ok": ok, "shed": shed,
            "predicted_last_ms": last_ms,
            "little": check.as_ref().map(|c| json!({"lambda": c.little.lambda, "w_s": c.little.w_s,
                                                   "l": c.little.l, "l_counted": c.little.l_counted,
                                                   "line": c.little.line()})),
            "mu": check.as_ref().and_then(|c| c.capacity),
            "json": format!("/bursts/{k}/{slug}.json"),
            "csv": format!("/bursts/{k}/{slug}.csv"),
        }));
    }
    let result = json!({"type": "result", "burst": k, "route": path, "n": n, "mode": "steady",
                        "final": true, "twins": twins, "chart": null});
    stage.say(&result, ForLater::Keep);
    {
        let mut kept = lock(&stage.bursts);
        kept.push_back(Stored { k, files });
        while kept.len() > KEEP {
            kept.pop_front();
        }
    }
    result
}
