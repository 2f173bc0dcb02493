//! Firing from the stage: `POST /fire`, `POST /cancel`, `GET /plan`.
//!
//! A burst is fired with burst's own client — every connection opened first, then every request
//! released at the same instant — at one twin or both, and each burst is checked against the
//! model read from that twin's `hello`. CPU-bound bursts at both twins go one after the other:
//! fired together they would share this machine's cores, and each would take about twice what
//! its model (which gives it the cores) says. A burst can be given up at any time: its
//! connections are reset, and each twin skips what it has not picked up yet.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, Response, StatusCode};
use serde_json::{json, Value};

use super::request::{plans, read, FireRequest, Planned, ROUTES};
use super::{json_response, lock, refused, relay, replay, ForLater, Stage, Stored, KEEP};
use crate::client::{self, Cancel, Outcome};
use crate::experiment::{self, Cell, Experiment, Settings, Status};
use crate::model;
use crate::print::json_csv as output;
use crate::units::whole_ms;

/// A burst the model says takes longer than this is one the page asks about first.
const ASK_FIRST: Duration = Duration::from_secs(30);
/// CPU-bound work at both twins at once would share the cores: one after the other instead.
fn one_after_the_other(planned: &[Planned]) -> bool {
    planned.len() > 1
        && planned
            .iter()
            .any(|p| p.plan.prediction.as_ref().is_some_and(|m| m.cpu_bound))
}

/// How long the model says the whole press takes: the longest burst, or their sum when they go
/// one after the other.
fn predicted_total(planned: &[Planned]) -> Option<Duration> {
    let each: Option<Vec<Duration>> = planned.iter().map(|p| p.plan.predicted_end()).collect();
    let each = each.filter(|each| !each.is_empty())?;
    Some(if one_after_the_other(planned) {
        each.iter().sum()
    } else {
        each.into_iter().max().unwrap_or_default()
    })
}

/// `GET /plan?route=/io&n=16&at=both`: what the model predicts before anything is fired, for the
/// page's buttons ("~4.0 s") and its question before a long burst.
pub(super) async fn plan(State(stage): State<Stage>, RawQuery(query): RawQuery) -> Response<Body> {
    let request = match read(&stage, query.as_deref().unwrap_or("")) {
        Ok(r) => r,
        Err(body) => return json_response(StatusCode::BAD_REQUEST, &body),
    };
    if replay::offered(&stage) {
        return json_response(StatusCode::OK, &replay::plan(&stage, &request));
    }
    let (planned, refused) = match plans(&stage, &request) {
        Ok(p) => p,
        Err(body) => return json_response(StatusCode::BAD_REQUEST, &body),
    };
    if let Some(rate) = request.rate {
        return json_response(
            StatusCode::OK,
            &super::steady::plan(&request, rate, &planned, refused),
        );
    }
    let total = predicted_total(&planned);
    let twins: Vec<Value> = planned
        .iter()
        .map(|p| {
            json!({"twin": p.twin,
                   "predicted_ms": p.plan.predicted_end().map(whole_ms),
                   "model": p.plan.prediction.as_ref().map(|m| model::describe(m, p.plan.n))})
        })
        .chain(refused)
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "route": request.path(), "n": request.n,
            "predicted_ms": total.map(whole_ms),
            "one_after_the_other": one_after_the_other(&planned),
            "ask_first": total.is_some_and(|t| t > ASK_FIRST),
            "twins": twins,
        }),
    )
}

/// `POST /fire`: fire, check, keep the files, tell the pages; answer with the same result.
pub(super) async fn fire(
    State(stage): State<Stage>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response<Body> {
    if let Some(refusal) = refused(&stage, peer, &headers) {
        return refusal;
    }
    let request = match read(&stage, query.as_deref().unwrap_or("")) {
        Ok(r) => r,
        Err(body) => return json_response(StatusCode::BAD_REQUEST, &body),
    };
    let Ok(one_at_a_time) = stage.firing.clone().try_lock_owned() else {
        return json_response(
            StatusCode::CONFLICT,
            &json!({"error": "a burst is running",
                    "detail": "wait for its result, or give it up: Esc on the page, or \
                               curl -s -X POST http://127.0.0.1:8080/cancel"}),
        );
    };
    if replay::offered(&stage) {
        if request.rate.is_some() {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": "steady traffic needs the twins running",
                        "detail": "a replay plays recorded bursts; start the twins and \
                                   `burst stage` without --replay"}),
            );
        }
        return replay::play(&stage, &request, one_at_a_time).await;
    }
    let (planned, refused) = match plans(&stage, &request) {
        Ok(p) => p,
        Err(body) => return json_response(StatusCode::BAD_REQUEST, &body),
    };
    let k = stage.next_burst.fetch_add(1, Ordering::Relaxed);
    let cancel = Cancel::default();
    if let Some(rate) = request.rate {
        let traffic = {
            let (stage, cancel) = (stage.clone(), cancel.clone());
            async move {
                super::steady::fire(&stage, k, &request, rate, planned, refused, &cancel).await
            }
        };
        return super::to_the_end(&stage, k, cancel, one_at_a_time, traffic).await;
    }
    let burst = {
        let (stage, cancel) = (stage.clone(), cancel.clone());
        async move { fire_burst(&stage, k, &request, planned, refused, &cancel).await }
    };
    super::to_the_end(&stage, k, cancel, one_at_a_time, burst).await
}

/// `POST /cancel`: give the running burst up (Esc on the page). Its connections are reset, so
/// each twin skips the requests it has not picked up: both are free again within about T.
pub(super) async fn cancel(
    State(stage): State<Stage>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
) -> Response<Body> {
    if let Some(refusal) = refused(&stage, peer, &headers) {
        return refusal;
    }
    let running = lock(&stage.cancel).clone();
    match running {
        Some((k, cancel)) => {
            stage.narrate(format!("burst {k}: cancelled"));
            cancel.cancel();
            stage.say(&json!({"type": "cancelling", "burst": k}), ForLater::Keep);
            json_response(
                StatusCode::ACCEPTED,
                &json!({"cancelling": k,
                        "detail": "its connections are reset: each twin skips what it had not \
                                   picked up, and finishes what it had"}),
            )
        }
        None => json_response(
            StatusCode::CONFLICT,
            &json!({"error": "no burst is running", "detail": "nothing to cancel"}),
        ),
    }
}

/// `GET /fire`: a link or a curl without `-X POST` fires nothing, and says so.
pub(super) async fn fire_is_a_post() -> Response<Body> {
    let mut response = json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({"error": "method not allowed", "allowed": "POST",
                "detail": "fire with POST, e.g. curl -s -X POST \
                           'http://127.0.0.1:8080/fire?route=/io&n=16&at=both'"}),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    response
}

async fn fire_burst(
    stage: &Stage,
    k: usize,
    request: &FireRequest,
    planned: Vec<Planned>,
    mut refused: Vec<Value>,
    cancel: &Cancel,
) -> Value {
    let path = request.path();
    if planned.is_empty() {
        // Nothing to fire at: the page says why, as the answer does.
        let result = json!({"type": "result", "burst": k, "route": path, "n": request.n,
                            "final": true, "twins": refused, "chart": null});
        stage.narrate(format!("burst {k}: nothing fired ({} × {path})", request.n));
        stage.say(&result, ForLater::Keep);
        return result;
    }
    let sequential = one_after_the_other(&planned);
    let mut twins = Vec::new();
    // Each twin's requests carry a run id of their own: the page lines each panel up with its
    // own release, together or one after the other.
    let runs: Vec<String> = planned.iter().map(|_| client::run_id()).collect();
    let firing: Vec<Value> = planned
        .iter()
        .zip(&runs)
        .map(|(p, run)| {
            json!({
                "twin": p.twin,
                "run": run,
                "predicted_ms": p.plan.predicted_end().map(whole_ms),
                "model": p.plan.prediction.as_ref().map(|m| model::describe(m, p.plan.n)),
            })
        })
        .collect();
    let note = sequential.then_some(
        "CPU-bound: one server after the other, in the panels' order — at once, they would \
         share this machine's cores and each take about twice its model's time",
    );
    if !firing.is_empty() {
        stage.narrate(format!(
            "burst {k}: {} × {path} at {}{}",
            request.n,
            planned
                .iter()
                .map(|p| p.twin)
                .collect::<Vec<_>>()
                .join(" and "),
            if sequential {
                ", one after the other"
            } else {
                ""
            }
        ));
        stage.say(
            &json!({"type": "firing", "burst": k, "route": path, "n": request.n,
                    "sequential": sequential, "note": note, "twins": firing}),
            ForLater::Restart,
        );
    }
    let settings = Settings {
        cancel: Some(cancel.clone()),
        ..Settings::default()
    };
    let groups: Vec<Vec<(Planned, String)>> = {
        let pairs = planned.into_iter().zip(runs);
        if sequential {
            pairs.map(|pair| vec![pair]).collect()
        } else {
            vec![pairs.collect()]
        }
    };
    let last_group = groups.len().saturating_sub(1);
    let mut cells = Vec::new();
    let mut files = Vec::new();
    for (g, group) in groups.into_iter().enumerate() {
        if cancel.is_cancelled() {
            let left: Vec<Value> = group
                .iter()
                .map(|(p, _)| {
                    json!({"twin": p.twin, "status": "cancelled",
                                     "verdict": "cancelled before it was fired"})
                })
                .collect();
            twins.extend(left.iter().cloned());
            stage.say(
                &json!({"type": "result", "burst": k, "route": path, "n": request.n,
                        "final": g == last_group, "twins": left, "chart": null}),
                ForLater::Keep,
            );
            continue;
        }
        for (_, run) in &group {
            relay::count_ends(stage, run);
        }
        let names: Vec<(&'static str, String)> =
            group.iter().map(|(p, run)| (p.twin, run.clone())).collect();
        let fired = experiment::fire_each(
            group
                .into_iter()
                .map(|(p, run)| (p.target, p.plan, run))
                .collect(),
            &settings,
        )
        .await;
        // Each result follows its requests' ends, as on a page that watched: those answered — or,
        // given up, every one (skipped at once, or finished within about T by the worker that
        // had it). The twins are waited for together.
        let waits: Vec<_> = names
            .iter()
            .zip(&fired)
            .map(|((_, run), outcome)| {
                let (expected, limit) = match outcome {
                    Ok(e) => ends_to_wait_for(e),
                    Err(_) => (0, Duration::ZERO),
                };
                let (stage, run) = (stage.clone(), run.clone());
                tokio::spawn(
                    async move { relay::wait_for_ends(&stage, &run, expected, limit).await },
                )
            })
            .collect();
        // A twin that could not be fired at says so on its panel with the first result.
        let mut step: Vec<Value> = std::mem::take(&mut refused);
        for (((name, _), outcome), wait) in names.into_iter().zip(fired).zip(waits) {
            let ends = wait.await.unwrap_or_default();
            match outcome {
                Ok(e) => {
                    let slug = stage.twin(name).map_or("server", |t| t.slug.as_str());
                    files.push((format!("{slug}.json"), "application/json", report_json(&e)));
                    let rows = output::rows(&e.burst, e.check.as_ref());
                    files.push((
                        format!("{slug}.csv"),
                        "text/csv; charset=utf-8",
                        output::csv(&rows),
                    ));
                    let result = twin_result(k, (name, slug), &e, &ends);
                    stage.narrate(format!(
                        "burst {k}: {name}: {} {}",
                        match result["status"].as_str() {
                            Some("ok") => "✓",
                            Some("cancelled") => "■",
                            _ => "✗",
                        },
                        result["verdict"].as_str().unwrap_or("")
                    ));
                    step.push(result);
                    cells.push(Cell {
                        server: name.to_owned(),
                        kind: e.server.as_ref().map(|s| s.kind),
                        route: path.clone(),
                        n: request.n,
                        experiment: e,
                    });
                }
                Err(e) => step.push(json!({"twin": name, "error": e.0})),
            }
        }
        let chart = (g == last_group)
            .then(|| chart(stage, k, request, &cells, &mut files))
            .flatten();
        let recording =
            (g == last_group && !cells.is_empty()).then(|| format!("/bursts/{k}/replay.json"));
        stage.say(
            &json!({"type": "result", "burst": k, "route": path, "n": request.n,
                    "final": g == last_group, "twins": step, "chart": chart,
                    "recording": recording}),
            ForLater::Keep,
        );
        twins.extend(step);
    }
    if !cells.is_empty() {
        files.push((
            "replay.json".to_owned(),
            "application/json",
            replay::record(stage, request),
        ));
    }
    {
        let mut kept = lock(&stage.bursts);
        kept.push_back(Stored { k, files });
        while kept.len() > KEEP {
            kept.pop_front();
        }
    }
    let chart_url = lock(&stage.bursts)
        .back()
        .filter(|s| s.k == k && s.files.iter().any(|(f, _, _)| f == "chart.svg"))
        .map(|_| format!("/bursts/{k}/chart.svg"));
    json!({"type": "result", "burst": k, "route": path, "n": request.n, "final": true,
           "sequential": sequential, "twins": twins, "chart": chart_url,
           "recording": (!cells.is_empty()).then(|| format!("/bursts/{k}/replay.json"))})
}

/// The completion chart: every twin × route kept for this N (the latest of each), so that /io,
/// /async-io and /async-io-multi fired one after another make the reference chart.
fn chart(
    stage: &Stage,
    k: usize,
    request: &FireRequest,
    cells: &[Cell],
    files: &mut Vec<(String, &'static str, String)>,
) -> Option<String> {
    if cells.is_empty() {
        return None;
    }
    let io_bound = |c: &Cell| {
        let path = c.route.split('?').next().unwrap_or("");
        ["/io", "/async-io", "/async-io-multi"].contains(&path)
    };
    // A burst that failed or was cancelled is no completion curve: it neither joins the chart
    // nor pushes out the finished burst of the same route it would have replaced.
    let done: Vec<&Cell> = cells
        .iter()
        .filter(|c| c.experiment.status() != Status::Failed)
        .collect();
    let mut kept = lock(&stage.cells);
    // Earlier bursts stay only as the reference chart has them: IO-bound, every request ok.
    kept.retain(|old| {
        io_bound(old)
            && old.experiment.status() != Status::Failed
            && !done
                .iter()
                .any(|c| c.server == old.server && c.route == old.route && c.n == old.n)
    });
    kept.extend(done.into_iter().cloned());
    while kept.len() > 2 * stage.twins.len() * ROUTES.len() {
        kept.remove(0);
    }
    let mut shown: Vec<Cell> = kept.iter().filter(|c| c.n == request.n).cloned().collect();
    drop(kept);
    if shown.is_empty() {
        return None;
    }
    let rank = |c: &Cell| {
        let path = c.route.split('?').next().unwrap_or("");
        let panel = stage.twins.iter().position(|t| t.name == c.server);
        (!is_pool(c), ROUTES.iter().position(|r| *r == path), panel)
    };
    shown.sort_by_key(rank);
    let pool = shown.iter().any(is_pool);
    let event_loop = shown.iter().any(|c| !is_pool(c));
    let title = match (shown.iter().all(io_bound), pool, event_loop) {
        (true, true, true) => "IO-bound bursts: a pool of blocking workers vs event loops",
        (false, true, true) => "Bursts at the stage: a pool of blocking workers vs event loops",
        (_, true, false) => "Bursts at the stage: a pool of blocking workers",
        _ => "Bursts at the stage: event loops",
    };
    let subtitle = format!(
        "{} at once; the latest burst of each route, fired by the stage",
        request.n
    );
    files.push((
        "chart.svg".to_owned(),
        "image/svg+xml",
        crate::print::svg::completion_svg(&shown, title, &subtitle),
    ));
    Some(format!("/bursts/{k}/chart.svg"))
}

/// How many of a burst's ends to wait for, and for how long: the answered ones; or, given up,
/// all of them, for about T more (those a worker had end when it is done with them).
fn ends_to_wait_for(e: &Experiment) -> (usize, Duration) {
    let given_up = e
        .burst
        .results
        .iter()
        .any(|r| r.outcome == Outcome::Cancelled);
    if given_up {
        let t = e.check.as_ref().map_or(Duration::from_secs(1), |c| {
            c.prediction.service.min(Duration::from_secs(2))
        });
        return (e.burst.n, t + Duration::from_millis(300));
    }
    let answered = e
        .burst
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Http(_)))
        .count();
    (answered, relay::ENDS_GRACE)
}

/// Is this cell a pool's (as its server said)?
fn is_pool(c: &Cell) -> bool {
    c.kind == Some(twin_core::ServerKind::Pool)
}

fn twin_result(k: usize, (name, slug): (&str, &str), e: &Experiment, ends: &relay::Ends) -> Value {
    let given_up = e
        .burst
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::Cancelled)
        .count();
    let (status, verdict) = if given_up > 0 {
        // What became of the given up, as the twin tells it: ended unserved (499: skipped
        // before a worker had it, or dropped while it waited), or finished by the worker that
        // had it, for nobody.
        let answered = e.summary.ok;
        let finished = ends.ended.saturating_sub(ends.skipped + answered);
        (
            "cancelled",
            format!(
                "cancelled after {:.2} s: {answered} answered; of the {given_up} given up, the \
                 twin finished {finished} (for nobody) and left {} unserved (499)",
                e.summary.wall_ms / 1000.0,
                ends.skipped
            ),
        )
    } else {
        let status = match e.status() {
            Status::Ok => "ok",
            Status::NotAsPredicted => "not-as-predicted",
            Status::Failed => "failed",
        };
        // The model's verdict already says how many failed.
        let verdict = match &e.check {
            Some(c) => c.verdict.clone(),
            None => format!(
                "{} of {} answered; no model to check",
                e.summary.ok, e.burst.n
            ),
        };
        (status, verdict)
    };
    json!({
        "twin": name,
        "status": status,
        "verdict": verdict,
        "waves": e.check.as_ref().map(|c| c.waves.iter().map(|w| w.size).collect::<Vec<_>>()),
        "expected_waves": e.check.as_ref().map(|c| c.expected_wave_sizes.clone()),
        // The model the verdict used (for CPU work, from the CPU time the server measured): the
        // panel's model line and words move to it, so they never contradict the verdict.
        "predicted_last_ms": e.check.as_ref().map(|c| whole_ms(c.predicted_last)),
        "model": e.check.as_ref().map(|c| c.shape.clone()),
        "wall_ms": e.summary.wall_ms,
        "ok": e.summary.ok,
        "json": format!("/bursts/{k}/{slug}.json"),
        "csv": format!("/bursts/{k}/{slug}.csv"),
    })
}

fn report_json(e: &Experiment) -> String {
    let report = output::Report {
        url: &e.burst.url,
        n: e.burst.n,
        release_spread_ms: e.summary.release_spread_ms,
        wall_ms: e.summary.wall_ms,
        server: e.server.as_ref(),
        model: e.check.as_ref(),
        summary: &e.summary,
        requests: output::rows(&e.burst, e.check.as_ref()),
    };
    serde_json::to_string_pretty(&report).unwrap_or_else(|_| "{}".to_owned())
}
