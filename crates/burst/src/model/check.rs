//! A burst held against its prediction: rank each request (per loop where each loop queues its
//! own), group the completions into waves, apply the CPU rule, and find what differs; the words
//! are `verdict.rs`'s.

use std::time::Duration;

use serde::Serialize;

use super::verdict::{self, describe, ordinal, plural_waves, Facts, Finding};
use super::{as_ms, Prediction};
use crate::client::Burst;
use crate::units::ms;

/// A burst held against its prediction.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub prediction: Prediction,
    /// Predicted completion, indexed like `Burst::results` (by request index).
    #[serde(skip)]
    pub predicted: Vec<Option<Duration>>,
    /// The waves the completions fell into, and the sizes the model expects.
    pub waves: Vec<Wave>,
    pub expected_wave_sizes: Vec<usize>,
    /// When the model says the last request finishes, for the requests as they were spread.
    #[serde(serialize_with = "as_ms")]
    pub predicted_last: Duration,
    /// The largest |actual − predicted| over the completed requests, in ms.
    pub largest_deviation_ms: f64,
    /// How long after the model's time the last request finished, beyond the tolerance: the
    /// machine's cost of serving this many requests, not a wave.
    pub tail_ms: f64,
    /// Within tolerance?
    pub as_predicted: bool,
    pub verdict: String,
    /// The model's words for this burst as the verdict judged it: with per-worker queues, the
    /// waves of the spread the requests actually got ("16 waves of 1 … as the loops got them").
    pub shape: String,
    /// With a limit on what the server holds: how many were shed (503), and how many the model
    /// says.
    pub shed: Option<Shed>,
}

/// Requests turned away with a 503 at once: as many as the model says?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shed {
    pub expected: usize,
    pub actual: usize,
    /// Of those, answered later than a shed answer comes (at once, within the tolerance).
    pub slow: usize,
}

/// Is this request's answer a shed one: a 503 (a limit's, from the server that has one)?
pub(crate) fn is_shed(r: &crate::client::RequestResult) -> bool {
    r.outcome == crate::client::Outcome::Http(503)
}

/// Compare the burst with the prediction. With a limit on what the server holds, the requests
/// beyond it must be shed — that many 503s, each at once — and the rest served as a burst of the
/// limit's size is ([`check_waves`]).
pub fn check(burst: &Burst, prediction: &Prediction) -> Check {
    let Some(limit) = prediction.limit else {
        return check_waves(burst, prediction);
    };
    let expected = burst.n.saturating_sub(limit as usize);
    let tol = tolerance(prediction, burst.release_spread);
    let shed: Vec<&crate::client::RequestResult> =
        burst.results.iter().filter(|r| is_shed(r)).collect();
    let slow = shed
        .iter()
        .filter(|r| r.done.is_none_or(|d| d > tol))
        .count();
    let mut served = burst.clone();
    served.results.retain(|r| !is_shed(r));
    served.n = served.results.len();
    let mut c = check_waves(&served, prediction);
    // Back to the burst's indices.
    let mut predicted = vec![None; burst.results.len()];
    for (r, p) in served.results.iter().zip(&c.predicted) {
        if let Some(slot) = predicted.get_mut(r.index) {
            *slot = *p;
        }
    }
    c.predicted = predicted;
    let (flag, value) = (prediction.limit_flag, prediction.limit_value);
    let count_ok = shed.len().abs_diff(expected) <= prediction.limit_slack as usize && slow == 0;
    c.verdict = if count_ok && expected == 0 {
        // Within the limit: nothing to shed, nothing shed — the burst's own verdict.
        c.verdict
    } else if count_ok {
        format!(
            "{} shed at once (503, {flag} {value}), as predicted; the {} served: {}",
            shed.len(),
            served.n,
            c.verdict
        )
    } else if slow > 0 {
        format!(
            "NOT as predicted: {slow} of the {} answered 503 took longer than {} — shed \
             answers come at once ({flag} {value}); the {} served: {}",
            shed.len(),
            ms_text(tol),
            served.n,
            c.verdict
        )
    } else {
        format!(
            "NOT as predicted: {} shed (503), the model says {expected} of {} ({flag} {value}: \
             {limit} in the server at once); the {} served: {}",
            shed.len(),
            burst.n,
            served.n,
            c.verdict
        )
    };
    c.as_predicted &= count_ok;
    c.shed = Some(Shed {
        expected,
        actual: shed.len(),
        slow,
    });
    c
}

fn ms_text(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// How far a wave may begin from the model's time and still count as "as predicted": a quarter of
/// the service time — a real stack's cost per request (Python, a thread pool warming up) or CPU
/// work the scheduler shares unevenly delays a wave without making it another wave; half would
/// be the next wave — never less than 60 ms of scheduling noise on a busy machine, plus the
/// burst's release spread (the model assumes every request left at the same instant).
pub fn tolerance(prediction: &Prediction, release_spread: Duration) -> Duration {
    (prediction.service / 4).max(Duration::from_millis(60)) + release_spread
}

/// Compare the burst with the prediction — by its waves.
///
/// Completions are grouped into waves ([`waves`]: a gap of half the service time starts a new
/// one). The burst is as predicted when it has the model's number of waves, each of the model's
/// size, each beginning one wave-time after the one before (within [`tolerance`]). How long the
/// last wave takes to finish is not a wave: beyond the tolerance it is reported as the per-request
/// cost of the burst, as 10,000 requests on an event loop show.
fn check_waves(burst: &Burst, prediction: &Prediction) -> Check {
    let (prediction, measured) = &with_measured_cpu(burst, prediction);
    let mut order: Vec<usize> = (0..burst.results.len())
        .filter(|&i| burst.results[i].done.is_some() && burst.results[i].is_ok())
        .collect();
    order.sort_by_key(|&i| (burst.results[i].done, i));
    let mut predicted = vec![None; burst.results.len()];
    let mut worst = Duration::ZERO;
    // Per-loop queues: rank each request among those its own loop served.
    let mut seen_per_worker: std::collections::HashMap<&str, usize> = Default::default();
    for (rank0, &i) in order.iter().enumerate() {
        let expect = match prediction.per_worker {
            Some(capacity) => {
                let worker = burst.results[i].worker.as_deref().unwrap_or("");
                let seen = seen_per_worker.entry(worker).or_insert(0);
                *seen += 1;
                let waves = seen.div_ceil(usize::try_from(capacity.max(1)).unwrap_or(1));
                prediction.service * u32::try_from(waves).unwrap_or(u32::MAX)
            }
            None => prediction.done_at(rank0 + 1),
        };
        predicted[i] = Some(expect);
        let actual = burst.results[i].done.unwrap_or_default();
        worst = worst.max(actual.abs_diff(expect));
    }
    let actual: Vec<Duration> = order
        .iter()
        .filter_map(|&i| burst.results[i].done)
        .collect();
    let expected_times: Vec<Duration> = predicted.iter().flatten().copied().collect();
    let found = waves(&actual, prediction.service);
    let expected = waves(&expected_times, prediction.service);
    let expected_sizes: Vec<usize> = expected.iter().map(|w| w.size).collect();
    let failed = burst.results.len() - order.len();
    let tol = tolerance(prediction, burst.release_spread);
    let even = describe(prediction, burst.results.len());
    // Per-loop queues with an uneven spread (real uvicorn's workers race for connections): the
    // model follows the requests to the loops that got them, and says so.
    let shape = match prediction.per_worker {
        Some(_) if failed == 0 && expected.len() != prediction.waves(burst.results.len()) => {
            let sizes: Vec<String> = expected.iter().map(|w| w.size.to_string()).collect();
            let mut spread: Vec<(String, usize)> = seen_per_worker
                .iter()
                .map(|(w, n)| ((*w).to_owned(), *n))
                .collect();
            spread.sort();
            let spread: Vec<String> = spread.iter().map(|(w, n)| format!("{w} {n}")).collect();
            format!(
                "{} of {} every {:.2} s, as the {} got the requests ({})",
                plural_waves(expected.len()),
                sizes.join(", "),
                prediction.service.as_secs_f64(),
                if prediction.held_by == "worker" {
                    "worker processes"
                } else {
                    "loops"
                },
                spread.join(", ")
            )
        }
        _ => even,
    };
    // Each wave must begin one wave-time after the one before (the first, after the release).
    let mut late = None;
    if found.len() == expected.len() {
        let (mut before, mut model_before) = (Duration::ZERO, Duration::ZERO);
        for (k, (f, e)) in found.iter().zip(&expected).enumerate() {
            let (step, model_step) = (f.first.saturating_sub(before), e.first - model_before);
            if f.size != e.size || step.abs_diff(model_step) > tol {
                late = Some((k, f, e));
                break;
            }
            (before, model_before) = (f.first, e.first);
        }
    }
    let last = actual.last().copied().unwrap_or_default();
    let model_last = expected.last().map_or(Duration::ZERO, |w| w.first);
    let tail = last.saturating_sub(model_last + tol);
    // The slow side is bounded too: a last wave may trail by the machine's cost per request, not
    // by more than one more service time or 2 ms a request, whichever is more.
    let tail_allowed = prediction
        .service
        .max(Duration::from_millis(2) * burst.n as u32);
    let shape_ok = found.len() == expected.len() && late.is_none();
    // CPU work on a busy laptop: other programs take the cores too, and the scheduler shares
    // them unevenly, so waves can smear. What the lesson claims is then checked instead: no
    // request finished sooner than its worker could compute it (one after another), or sooner
    // than the cores allow.
    let cpu_checked = prediction.cpu_bound && !shape_ok && failed == 0;
    let too_soon = if cpu_checked {
        cpu_too_soon(burst, &order, prediction, *measured)
    } else {
        None
    };
    // …and CPU work no later than 15 % after the model's last wave, however its waves looked:
    // CPU work that something else shares — another burst, another program, the page that draws
    // it — is slower than the cores this model gives it, and the bars say so.
    let cpu_limit = model_last.mul_f64(1.15) + Duration::from_millis(60) + burst.release_spread;
    let too_late = prediction.cpu_bound && failed == 0 && too_soon.is_none() && last > cpu_limit;
    let cpu_ok = cpu_checked && too_soon.is_none() && !too_late;
    let tail_too_long = shape_ok && !prediction.cpu_bound && tail > tail_allowed;
    let as_predicted = failed == 0 && !too_late && ((shape_ok && !tail_too_long) || cpu_ok);
    let finding = if failed > 0 {
        Finding::Failed { failed }
    } else if cpu_ok {
        Finding::CpuShared
    } else if let Some(why) = too_soon {
        Finding::TooSoon(why)
    } else if too_late {
        Finding::TooLate
    } else if found.len() != expected.len() {
        Finding::WaveCount {
            sizes: found.iter().map(|w| w.size).collect(),
        }
    } else if let Some((k, f, e)) = late {
        if f.size != e.size {
            Finding::WaveSize {
                wave: k,
                size: f.size,
                expected: e.size,
            }
        } else {
            Finding::WaveLate {
                wave: k,
                first: f.first,
                expected: e.first,
            }
        }
    } else if tail_too_long {
        Finding::TailTooLong
    } else if tail > Duration::ZERO && prediction.cpu_bound {
        Finding::CpuTail
    } else if tail > Duration::ZERO {
        Finding::Tail
    } else {
        Finding::Exact
    };
    let verdict = verdict::sentence(
        &finding,
        &Facts {
            n: burst.n,
            shape: &shape,
            last,
            model_last,
            worst,
            measured: *measured,
            computing: prediction.computing,
        },
    );
    Check {
        prediction: prediction.clone(),
        predicted,
        waves: found,
        expected_wave_sizes: expected_sizes,
        predicted_last: model_last,
        largest_deviation_ms: ms(worst),
        tail_ms: ms(tail),
        as_predicted,
        verdict,
        shape,
        shed: None,
    }
}

/// For CPU work: the first request (in completion order) that finished sooner than computing
/// allows — after fewer than k requests' CPU time on its own worker, or fewer than r requests'
/// CPU time spread over the cores. 15 % of slack for the CPU's changing speed.
fn cpu_too_soon(
    burst: &Burst,
    order: &[usize],
    prediction: &Prediction,
    measured: Option<Duration>,
) -> Option<String> {
    let (threads, computing) = prediction.computing;
    let each = measured.unwrap_or(prediction.service * computing.max(1) / threads.max(1));
    let slack = |d: Duration| d.mul_f64(0.85);
    let mut per_worker: std::collections::HashMap<&str, u32> = Default::default();
    for (rank0, &i) in order.iter().enumerate() {
        let r = &burst.results[i];
        let done = r.done.unwrap_or_default();
        let worker = r.worker.as_deref().unwrap_or("-");
        let k = per_worker.entry(worker).or_insert(0);
        *k += 1;
        let alone = slack(each * *k);
        if done < alone {
            return Some(format!(
                "request {} was the {} on {worker} and finished at {:.2} s, sooner than {} of CPU \
                 work one after another allow ({:.2} s)",
                r.index,
                ordinal(*k),
                done.as_secs_f64(),
                *k,
                alone.as_secs_f64()
            ));
        }
        let rank = u32::try_from(rank0 + 1).unwrap_or(u32::MAX);
        let cores = slack(each * rank / computing.max(1));
        if done < cores {
            return Some(format!(
                "request {} finished {} at {:.2} s, sooner than {rank} requests' CPU work on {} \
                 cores allow ({:.2} s)",
                r.index,
                ordinal(rank),
                done.as_secs_f64(),
                computing,
                cores.as_secs_f64()
            ));
        }
    }
    None
}

/// CPU work is a fixed amount, but a laptop's CPU speeds up and slows down: when the server
/// measured each request's CPU time, the model's service time is that (on average), shared by
/// the threads that compute at once.
fn with_measured_cpu(burst: &Burst, prediction: &Prediction) -> (Prediction, Option<Duration>) {
    let cpu: Vec<f64> = burst.results.iter().filter_map(|r| r.cpu_ms).collect();
    if !prediction.cpu_bound
        || cpu.is_empty()
        || cpu.len() < burst.results.iter().filter(|r| r.is_ok()).count()
    {
        return (prediction.clone(), None);
    }
    let mean = Duration::from_secs_f64(cpu.iter().sum::<f64>() / cpu.len() as f64 / 1000.0);
    let (threads, cores) = prediction.computing;
    let mut p = prediction.clone();
    p.service = mean * threads / cores.max(1);
    (p, Some(mean))
}

/// A group of completions that belong together: one wave of a burst.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Wave {
    /// How many requests finished in it.
    pub size: usize,
    /// The first and last completion in it, since the release.
    #[serde(serialize_with = "as_ms")]
    pub first: Duration,
    #[serde(serialize_with = "as_ms")]
    pub last: Duration,
}

/// Group completion times into waves: a new wave begins where a completion comes at least half
/// the service time after the one before it. One wave with a long tail (the cost of many
/// requests) stays one wave; a second round of service, however late, starts a wave of its own.
pub fn waves(done: &[Duration], service: Duration) -> Vec<Wave> {
    let mut sorted = done.to_vec();
    sorted.sort();
    let gap = service / 2;
    let mut out: Vec<Wave> = Vec::new();
    for t in sorted {
        match out.last_mut() {
            Some(w) if t.saturating_sub(w.last) < gap || gap.is_zero() => {
                w.size += 1;
                w.last = t;
            }
            _ => out.push(Wave {
                size: 1,
                first: t,
                last: t,
            }),
        }
    }
    out
}
