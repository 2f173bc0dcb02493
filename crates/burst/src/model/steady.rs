//! Steady (open-loop) traffic held against the model: λ requests a second at a server that serves
//! μ a second.
//!
//! A route that holds one of `c` slots for S serves at most μ = c/S a second (a pool of W workers
//! with T: μ = W/T). Below μ every request takes ≈ S. Above it the queue grows by (λ − μ) a second,
//! and each request waits for all those before it: request i, sent at i/λ, starts at about
//! ⌊i/c⌋·S, so its latency grows linearly. A route that holds nothing (`/async-io` on the event
//! loop) has no μ the model knows: CPU and memory bound it, and every request takes ≈ S.
//! With a limit on what the server holds (`--limit-concurrency`), what finds it full is shed —
//! a 503 at once — and the queue stops growing: unbounded latency becomes fast, honest failures.
//!
//! The model is the queue itself, simulated: first come, first served on `c` slots (per event
//! loop where each loop queues its own, followed by `X-Worker`), the limit counted at each
//! arrival. The check feeds it the times requests were actually sent and the requests the server
//! actually shed, so that every served request has its own predicted end; the number shed is
//! checked against the model's own run.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use serde::Serialize;
use twin_core::reply::plural;

use super::{as_ms, check::is_shed, Prediction};
use crate::client::Burst;
use crate::units::ms;

/// Open-loop traffic: λ requests a second for a while.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Traffic {
    /// λ, requests a second.
    pub rate: f64,
    #[serde(serialize_with = "as_ms", rename = "duration_ms")]
    pub duration: Duration,
}

/// What became of one request in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Served from `start` to `end` (since the first request was due).
    Served { start: Duration, end: Duration },
    /// Turned away at once: the server held its limit.
    Shed,
}

/// How close an arrival and a departure must be for the model not to know which came first: a
/// request that finds the server full, or one place free, depending on a few milliseconds.
const TIE: Duration = Duration::from_millis(10);

/// Run the queue: requests arriving at `arrivals` (any order), each into the group `groups[i]`
/// (the loop that got it; `None` for one server-wide queue). `forced` says which requests the
/// server shed, to follow reality; `None` lets the model decide. Returns each request's fate
/// and how many of the model's decisions to shed were ties (within [`TIE`] of going the other
/// way).
pub fn simulate(
    p: &Prediction,
    arrivals: &[Duration],
    groups: Option<&[Option<String>]>,
    forced: Option<&[bool]>,
) -> (Vec<Fate>, usize) {
    let mut order: Vec<usize> = (0..arrivals.len()).collect();
    order.sort_by_key(|&i| (arrivals[i], i));
    let capacity = match (p.per_worker, groups) {
        (Some(per), Some(_)) => Some(per),
        _ => p.parallel,
    };
    let mut free: HashMap<&str, BinaryHeap<Reverse<Duration>>> = HashMap::new();
    let mut in_server: BinaryHeap<Reverse<Duration>> = BinaryHeap::new();
    let mut fates = vec![Fate::Shed; arrivals.len()];
    let mut ties = 0;
    for i in order {
        let at = arrivals[i];
        while in_server.peek().is_some_and(|Reverse(end)| *end <= at) {
            in_server.pop();
        }
        let shed = match (p.limit, forced) {
            (_, Some(forced)) => forced.get(i).copied().unwrap_or(false),
            (Some(limit), None) => {
                let limit = limit as usize;
                let full = in_server.len() >= limit;
                // Would a departure a little later or sooner have decided it otherwise?
                let leaving_soon = in_server
                    .iter()
                    .filter(|Reverse(end)| *end <= at + TIE)
                    .count();
                if full && in_server.len() - leaving_soon < limit {
                    ties += 1;
                }
                full
            }
            (None, None) => false,
        };
        if shed {
            continue;
        }
        let start = match capacity {
            None => at,
            Some(c) => {
                let group = groups
                    .and_then(|g| g.get(i))
                    .and_then(|w| w.as_deref())
                    .filter(|_| p.per_worker.is_some())
                    .unwrap_or("");
                let slots = free
                    .entry(group)
                    .or_insert_with(|| (0..c.max(1)).map(|_| Reverse(Duration::ZERO)).collect());
                let Reverse(earliest) = slots.pop().unwrap_or(Reverse(Duration::ZERO));
                let start = earliest.max(at);
                slots.push(Reverse(start + p.service));
                start
            }
        };
        let end = start + p.service;
        in_server.push(Reverse(end));
        fates[i] = Fate::Served { start, end };
    }
    (fates, ties)
}

/// How many requests are served at once: the slots of what the route holds, or fewer when a
/// limit on what the server holds is lower.
fn at_once(p: &Prediction) -> Option<u32> {
    match (p.parallel, p.limit) {
        (Some(c), Some(l)) => Some(c.min(l)),
        (c, None) => c,
        (None, l) => l,
    }
}

/// μ: how many requests a second the route can be served at, when the model knows a bound.
pub fn capacity(p: &Prediction) -> Option<f64> {
    let s = p.service.as_secs_f64();
    match at_once(p) {
        Some(c) if s > 0.0 => Some(f64::from(c) / s),
        _ => None,
    }
}

/// What bounds μ, in words: "4 workers", or "2 in the server (--limit-concurrency 2)".
fn servers(p: &Prediction) -> String {
    match (p.parallel, p.limit) {
        (Some(c), Some(l)) if l < c => format!("{l} at once, {} {}", p.limit_flag, p.limit_value),
        (None, Some(l)) => format!("{l} at once, {} {}", p.limit_flag, p.limit_value),
        (c, _) => plural(u64::from(c.unwrap_or(1)), p.held_by),
    }
}

/// Steady traffic held against the model.
#[derive(Debug, Clone, Serialize)]
pub struct SteadyCheck {
    pub traffic: Traffic,
    pub prediction: Prediction,
    /// μ, requests a second; `None` when only CPU and memory bound it.
    pub capacity: Option<f64>,
    /// Each request's predicted end (since the first was due), by index; `None` when shed.
    #[serde(skip)]
    pub predicted: Vec<Option<Duration>>,
    /// The model's latency from schedule for the last request sent, and what it was.
    #[serde(serialize_with = "as_ms", rename = "predicted_last_latency_ms")]
    pub predicted_last_latency: Duration,
    pub last_latency_ms: Option<f64>,
    /// How many the model sheds, and how many were.
    pub shed_expected: usize,
    pub shed_actual: usize,
    /// Model decisions that were ties, allowed either way.
    pub shed_ties: usize,
    /// Served requests off the model by more than their tolerance.
    pub off: usize,
    pub largest_deviation_ms: f64,
    pub little: Little,
    pub as_predicted: bool,
    pub verdict: String,
}

/// Little's law, L = λ·W, as numbers a room can check.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Little {
    /// λ: requests that reached the server, per second of sending.
    pub lambda: f64,
    /// W: the mean time a request spent in the server (sent to answered), in seconds.
    pub w_s: f64,
    /// L = λ·W.
    pub l: f64,
    /// L counted from the timeline: the mean number in the server while requests were sent
    /// (after the first service time).
    pub l_counted: f64,
    /// Over capacity: the queue grew all along, and there is no steady state to speak of.
    pub growing: bool,
}

impl Little {
    /// From what came back: answered requests (served or shed) while the schedule ran. The
    /// count from the timeline leaves out the first `warm_up` (one service time: the server
    /// filling up), where fewer are in it than the steady state holds.
    pub fn of(burst: &Burst, traffic: &Traffic, warm_up: Duration, growing: bool) -> Little {
        let window = traffic.duration.as_secs_f64().max(1e-9);
        let from = warm_up.as_secs_f64().min(window / 2.0);
        let answered: Vec<(f64, f64)> = burst
            .results
            .iter()
            .filter_map(|r| Some((r.sent.as_secs_f64(), r.done?.as_secs_f64())))
            .collect();
        let lambda = answered.len() as f64 / window;
        let w_s = if answered.is_empty() {
            0.0
        } else {
            answered.iter().map(|(s, d)| d - s).sum::<f64>() / answered.len() as f64
        };
        // The area under "requests in the server" over [0, window], by the window: what a
        // look at the server at a random moment would count.
        let area: f64 = answered
            .iter()
            .map(|&(s, d)| (d.min(window) - s.max(from).min(window)).max(0.0))
            .sum();
        Little {
            lambda,
            w_s,
            l: lambda * w_s,
            l_counted: area / (window - from).max(1e-9),
            growing,
        }
    }

    /// One line: `L = λ·W: 12.0/s × 1.23 s = 14.8 requests in the server on average (counted
    /// from the timeline: 14.6)`.
    pub fn line(&self) -> String {
        // Little's law is about a steady state; a queue still growing when the sending stopped
        // has none, and the two numbers part: that is the lesson too.
        let why = if self.growing && self.l_counted < self.l * 0.85 {
            " — they differ: no steady state, the queue was still growing when sending stopped"
        } else {
            ""
        };
        format!(
            "Little's law, L = λ·W: {:.1}/s × {:.2} s = {:.1} requests in the server on average \
             (counted from the timeline while sending: {:.1}){why}",
            self.lambda, self.w_s, self.l, self.l_counted
        )
    }
}

/// How far a served request may end from the model: a quarter of S (at least 60 ms), as a
/// burst's wave, plus 3 % of the time it waited — a service a little longer than S adds up,
/// request after request, in a queue that grows.
fn tolerance(p: &Prediction, waited: Duration) -> Duration {
    (p.service / 4).max(Duration::from_millis(60)) + waited.mul_f64(0.03)
}

/// Hold open-loop traffic against the model.
pub fn check(burst: &Burst, p: &Prediction, traffic: Traffic) -> SteadyCheck {
    let sent: Vec<Duration> = burst.results.iter().map(|r| r.sent).collect();
    let groups: Vec<Option<String>> = burst.results.iter().map(|r| r.worker.clone()).collect();
    let groups = p.per_worker.map(|_| groups.as_slice());
    // The model's own decisions, for the count; reality's, for each served request's end.
    let (model, ties) = simulate(p, &sent, groups, None);
    let forced: Vec<bool> = burst.results.iter().map(is_shed).collect();
    let (followed, _) = simulate(p, &sent, groups, Some(&forced));
    let answered = |r: &crate::client::RequestResult| r.is_ok() || is_shed(r);
    let all_answered = burst.results.iter().all(answered);
    let shed_expected = model.iter().filter(|f| **f == Fate::Shed).count();
    let shed_actual = forced.iter().filter(|s| **s).count();
    let mut predicted = vec![None; burst.results.len()];
    let (mut off, mut worst, mut first_off) = (0, Duration::ZERO, None);
    for (i, r) in burst.results.iter().enumerate() {
        let Fate::Served { start, end } = followed[i] else {
            continue;
        };
        predicted[i] = Some(end);
        let Some(done) = r.done.filter(|_| r.is_ok()) else {
            continue;
        };
        let deviation = done.abs_diff(end);
        worst = worst.max(deviation);
        if deviation > tolerance(p, start.saturating_sub(r.sent)) {
            off += 1;
            first_off.get_or_insert((i, done, end));
        }
    }
    let shed_allowed = ties + 1;
    let shed_ok = shed_actual.abs_diff(shed_expected) <= shed_allowed.min(shed_expected.max(1))
        || shed_actual == shed_expected;
    let capacity = capacity(p);
    let last = burst.results.iter().rev().find(|r| r.is_ok());
    let last_latency = last.and_then(|r| r.from_schedule());
    let predicted_last_latency = last
        .and_then(|r| Some(predicted[r.index]?.saturating_sub(r.scheduled)))
        .unwrap_or_default();
    let growing = capacity.is_some_and(|mu| traffic.rate > mu * 1.001) && p.limit.is_none();
    let little = Little::of(burst, &traffic, p.service, growing);
    let as_predicted = all_answered && off == 0 && shed_ok;
    let verdict = behind(burst, p).unwrap_or_default()
        + &words(&Words {
            traffic: &traffic,
            p,
            capacity,
            burst,
            all_answered,
            off,
            first_off,
            shed: (shed_expected, shed_actual, shed_ok),
            last: (last_latency, predicted_last_latency),
            worst,
        });
    SteadyCheck {
        traffic,
        prediction: p.clone(),
        capacity,
        predicted,
        predicted_last_latency,
        last_latency_ms: last_latency.map(ms),
        shed_expected,
        shed_actual,
        shed_ties: ties,
        off,
        largest_deviation_ms: ms(worst),
        little,
        as_predicted,
        verdict,
    }
}

struct Words<'a> {
    traffic: &'a Traffic,
    p: &'a Prediction,
    capacity: Option<f64>,
    burst: &'a Burst,
    all_answered: bool,
    off: usize,
    first_off: Option<(usize, Duration, Duration)>,
    /// Expected, actual, within the model's ties.
    shed: (usize, usize, bool),
    /// The last served request's latency from its schedule, and the model's.
    last: (Option<Duration>, Duration),
    worst: Duration,
}

/// The load against the capacity, then what happened: one sentence that can fail either way.
fn words(w: &Words<'_>) -> String {
    let rate = w.traffic.rate;
    let s = w.p.service.as_secs_f64();
    let load = match w.capacity {
        Some(mu) if rate > mu * 1.001 && w.p.limit.is_some() => {
            let limit = w.p.limit.unwrap_or_default();
            let above = w.p.parallel.is_some_and(|c| limit >= c);
            format!(
                "λ = {rate:.1}/s over capacity μ = {mu:.1}/s ({} / {s:.2} s){}",
                servers(w.p),
                if above {
                    format!(", with at most {limit} in the server")
                } else {
                    String::new()
                }
            )
        }
        Some(mu) if rate > mu * 1.001 => format!(
            "λ = {rate:.1}/s over capacity μ = {mu:.1}/s ({} / {s:.2} s): the queue \
             grows by {:.1} a second",
            servers(w.p),
            rate - mu
        ),
        Some(mu) => format!(
            "λ = {rate:.1}/s within capacity μ = {mu:.1}/s ({} / {s:.2} s)",
            servers(w.p)
        ),
        None => format!(
            "λ = {rate:.1}/s; a request holds {} while it waits, so only CPU and memory bound \
             the capacity",
            w.p.held_by
        ),
    };
    let (shed_expected, shed_actual, shed_ok) = w.shed;
    let n = w.burst.results.len();
    if !w.all_answered {
        let failed = w
            .burst
            .results
            .iter()
            .filter(|r| !r.is_ok() && !is_shed(r))
            .count();
        return format!(
            "{failed} of {n} requests failed or timed out (not an answer, nor a 503 shed) — {load}"
        );
    }
    let limit =
        w.p.limit
            .map(|_| format!(" ({} {})", w.p.limit_flag, w.p.limit_value))
            .unwrap_or_default();
    if !shed_ok {
        return format!(
            "NOT as predicted: {shed_actual} of {n} shed (503), the model says \
             {shed_expected}{limit} — {load}"
        );
    }
    if let Some((i, done, end)) = w.first_off {
        let r = &w.burst.results[i];
        return format!(
            "NOT as predicted: {} of {n} served off the model — request {i}, due at {:.2} s, \
             answered {:.2} s after it was due; the model says {:.2} s — {load}",
            w.off,
            r.scheduled.as_secs_f64(),
            done.saturating_sub(r.scheduled).as_secs_f64(),
            end.saturating_sub(r.scheduled).as_secs_f64()
        );
    }
    let (last, model_last) = w.last;
    let slowest = w
        .burst
        .results
        .iter()
        .filter(|r| r.is_ok())
        .filter_map(|r| r.from_schedule())
        .max()
        .unwrap_or_default();
    let over = w.capacity.is_some_and(|mu| rate > mu * 1.001);
    let outcome = if shed_actual > 0 || (over && w.p.limit.is_some()) {
        format!(
            "the limit held the queue: the slowest served answered {:.2} s after it was due, \
             and {shed_actual} were shed at once (503){limit}, the model says {shed_expected}",
            slowest.as_secs_f64()
        )
    } else if over {
        format!(
            "the last request waited {:.2} s from when it was due (model {:.2} s, from the \
             requests as they were sent and taken): latency grew as predicted",
            last.unwrap_or_default().as_secs_f64(),
            model_last.as_secs_f64()
        )
    } else {
        format!("every served request took ≈ {s:.2} s, as predicted")
    };
    format!(
        "{load}; {outcome} (largest deviation {:.0} ms)",
        w.worst.as_secs_f64() * 1000.0
    )
}

/// When burst itself could not keep its schedule (the machine is saturated: burst and the
/// server share its cores), the verdict says so first: the latencies include burst's own delays.
fn behind(burst: &Burst, p: &Prediction) -> Option<String> {
    let late = burst
        .results
        .iter()
        .map(|r| r.sent.saturating_sub(r.scheduled))
        .max()
        .unwrap_or_default();
    (late > (p.service / 4).max(Duration::from_millis(50))).then(|| {
        format!(
            "burst itself fell behind its schedule, sending up to {:.0} ms late (this machine \
             is saturated; its delays are in these latencies): ",
            late.as_secs_f64() * 1000.0
        )
    })
}

/// What the model says before anything is sent: each request's latency from its schedule (or
/// shed), for a plan and a timeout.
pub fn plan(p: &Prediction, traffic: &Traffic) -> (Vec<Fate>, Duration) {
    let due = crate::client::schedule(traffic.rate, traffic.duration);
    let (fates, _) = simulate(p, &due, None, None);
    let worst = fates
        .iter()
        .zip(&due)
        .filter_map(|(f, at)| match f {
            Fate::Served { end, .. } => Some(end.saturating_sub(*at)),
            Fate::Shed => None,
        })
        .max()
        .unwrap_or_default();
    (fates, worst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Outcome, RequestResult};
    use crate::model::{predict, ServerInfo};
    use twin_core::{Config, Reply, ServerKind};

    fn info(kind: ServerKind, workers: u16, task_ms: u64) -> ServerInfo {
        let index = Reply::index(&Config::for_tests(kind, workers, task_ms)).body;
        serde_json::from_str(&index).unwrap()
    }

    /// The issue's example: 4 workers, T = 500 ms (μ = 8/s), 12/s for 5 s.
    #[test]
    fn above_capacity_the_pool_queue_grows_and_the_last_waits_about_two_seconds() {
        let p = predict(&info(ServerKind::Pool, 4, 500), "/io").unwrap();
        assert_eq!(capacity(&p), Some(8.0));
        let traffic = Traffic {
            rate: 12.0,
            duration: Duration::from_secs(5),
        };
        let (fates, worst) = plan(&p, &traffic);
        assert_eq!(fates.len(), 60);
        // Request i starts at about ⌊i/4⌋·T — exactly, each worker's chain of requests starts
        // when its first came (k/12 s): the last (59, due at 4.92 s, on the chain that began at
        // 0.25 s) at 14 × 0.5 + 0.25 = 7.25 s, after waiting 2.33 s.
        assert_eq!(
            fates[59],
            Fate::Served {
                start: Duration::from_millis(7250),
                end: Duration::from_millis(7750)
            }
        );
        let wait = Duration::from_millis(7250) - Duration::from_secs_f64(59.0 / 12.0);
        assert!((wait.as_secs_f64() - 2.333).abs() < 0.01, "{wait:?}");
        assert!((worst.as_secs_f64() - 2.833).abs() < 0.01, "{worst:?}");
        // Below capacity: T each.
        let slow = Traffic {
            rate: 6.0,
            duration: Duration::from_secs(5),
        };
        assert_eq!(plan(&p, &slow).1, Duration::from_millis(500));
        // The event loop's /async-io holds nothing: T each at any rate.
        let e = predict(&info(ServerKind::EventLoop, 4, 500), "/async-io").unwrap();
        assert_eq!(capacity(&e), None);
        assert_eq!(plan(&e, &traffic).1, Duration::from_millis(500));
    }

    #[test]
    fn a_limit_sheds_what_is_over_capacity_and_the_queue_stops_growing() {
        let mut i = info(ServerKind::Pool, 4, 500);
        i.limit_concurrency = Some(8);
        let p = predict(&i, "/io").unwrap();
        let traffic = Traffic {
            rate: 12.0,
            duration: Duration::from_secs(5),
        };
        let (fates, worst) = plan(&p, &traffic);
        let shed = fates.iter().filter(|f| **f == Fate::Shed).count();
        // 8/s served of 12/s: about a third shed once the server holds 8.
        assert!((16..=24).contains(&shed), "{shed}");
        // Nobody waits more than one queue of 8 on 4 workers: two service times.
        assert!(worst <= Duration::from_millis(1000), "{worst:?}");
    }

    fn steady(times: &[(u64, u64, u16)]) -> Burst {
        // (sent ms, done ms, status) per request, due when sent.
        Burst {
            url: "http://x/io".into(),
            n: times.len(),
            run: "r".into(),
            released_unix_us: 0,
            release_spread: Duration::ZERO,
            wall: Duration::from_millis(times.iter().map(|t| t.1).max().unwrap_or(0)),
            results: times
                .iter()
                .enumerate()
                .map(|(index, &(s, d, status))| RequestResult {
                    scheduled: Duration::from_millis(s),
                    sent: Duration::from_millis(s),
                    first_byte: Some(Duration::from_millis(d)),
                    done: Some(Duration::from_millis(d)),
                    status: Some(status),
                    worker: Some("worker0".into()),
                    outcome: Outcome::Http(status),
                    ..RequestResult::new(index)
                })
                .collect(),
        }
    }

    #[test]
    fn a_pool_that_keeps_up_beyond_its_capacity_is_not_as_predicted() {
        // 2 workers, T = 100 ms: μ = 20/s. 40/s for 0.5 s, every request answered in 100 ms —
        // an event loop's answer, not a pool's: the model must say no.
        let p = predict(&info(ServerKind::Pool, 2, 100), "/io").unwrap();
        let traffic = Traffic {
            rate: 40.0,
            duration: Duration::from_millis(500),
        };
        let flat: Vec<(u64, u64, u16)> = (0..20).map(|i| (i * 25, i * 25 + 100, 200)).collect();
        let c = check(&steady(&flat), &p, traffic);
        assert!(!c.as_predicted, "{}", c.verdict);
        assert!(c.verdict.starts_with("NOT as predicted"), "{}", c.verdict);
        // The queue as the model runs it: request i starts at ⌊i/2⌋·100 ms.
        let queued: Vec<(u64, u64, u16)> = (0..20)
            .map(|i| (i * 25, (i / 2) * 100 + 100, 200))
            .collect();
        let c = check(&steady(&queued), &p, traffic);
        assert!(c.as_predicted, "{}", c.verdict);
        assert!(
            c.verdict.contains("latency grew as predicted"),
            "{}",
            c.verdict
        );
        // And slower than the queue allows fails too.
        let slow: Vec<(u64, u64, u16)> = (0..20)
            .map(|i| (i * 25, (i / 2) * 150 + 150, 200))
            .collect();
        assert!(!check(&steady(&slow), &p, traffic).as_predicted);
    }

    #[test]
    fn little_counts_what_the_timeline_shows() {
        // 10/s for 1 s, each in the server 0.5 s: L = 10 × 0.5 = 5.
        let b = steady(
            &(0..10)
                .map(|i| (i * 100, i * 100 + 500, 200))
                .collect::<Vec<_>>(),
        );
        let traffic = Traffic {
            rate: 10.0,
            duration: Duration::from_secs(1),
        };
        let l = Little::of(&b, &traffic, Duration::from_millis(500), false);
        assert!((l.l - 5.0).abs() < 1e-9, "{l:?}");
        // Counted after the first service time (the server filling up): 5 in it all along.
        assert!((l.l_counted - 5.0).abs() < 1e-9, "{l:?}");
        assert!(!l.line().contains("they differ"), "{}", l.line());
        // From the start, the filling-up counts too: fewer.
        let cold = Little::of(&b, &traffic, Duration::ZERO, false);
        assert!(cold.l_counted > 3.5 && cold.l_counted < 5.0, "{cold:?}");
    }
}
