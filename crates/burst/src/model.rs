//! The queueing model: when should each request of a burst finish?
//!
//! A route ties up whatever serves it for a *service time* S — T for a plain wait, T/K when K
//! waits overlap inside the request. What is tied up, and how many of it there are, is the lesson:
//!
//! | server | route | servers of the queue | request n (from 1) finishes at |
//! |---|---|---|---|
//! | pool | every route | `workers` threads | ⌈n/workers⌉·S |
//! | event loop | `/async-io`, `/async-io-multi` | none: awaiting frees the loop | S |
//! | event loop | `/io` | `workers × threadpool` slots | ⌈n/slots⌉·S |
//! | event loop | `/async-io-blocking`, `/cpu` | `workers` loops, frozen while they work | ⌈n/workers⌉·S |
//!
//! The event-loop rows assume connections spread evenly over the loops, which the kernel does
//! closely but not exactly; the verdict says when a burst strays from the model.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::Burst;

/// What `GET /` on a twin says about itself: the model's inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub kind: String,
    pub workers: u32,
    pub task_ms: u64,
    pub multi_tasks: u32,
    #[serde(default)]
    pub threadpool: Option<u32>,
    #[serde(default)]
    pub max_ms: u64,
}

impl ServerInfo {
    pub fn is_pool(&self) -> bool {
        self.kind == "pool"
    }
}

/// How one route on one server is expected to behave.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// The route's service time S.
    #[serde(serialize_with = "as_ms")]
    pub service: Duration,
    /// How many requests are served at once; `None` means everyone at once.
    pub parallel: Option<u32>,
    /// What is tied up: "worker", "thread-pool slot", "event loop", or nothing.
    pub held_by: &'static str,
    /// On the event-loop twin each loop queues its own requests: how many one loop serves at
    /// once. The check then ranks requests within the loop (`X-Worker`) that served them.
    pub per_worker: Option<u32>,
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// T and K for a request path like `/async-io-multi?ms=500&tasks=4`, with the server's defaults.
fn wait_and_tasks(path_and_query: &str, info: &ServerInfo) -> (String, u64, u32) {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut ms = info.task_ms;
    let mut tasks = info.multi_tasks.max(1);
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("ms", v)) => ms = v.parse().unwrap_or(ms),
            Some(("tasks", v)) => tasks = v.parse().unwrap_or(tasks).max(1),
            _ => {}
        }
    }
    (path.to_owned(), ms, tasks)
}

/// The model for `path_and_query` on the server described by `info`; `None` for a route it
/// does not know.
pub fn predict(info: &ServerInfo, path_and_query: &str) -> Option<Prediction> {
    let (path, ms, tasks) = wait_and_tasks(path_and_query, info);
    let t = Duration::from_millis(ms);
    let workers = info.workers.max(1);
    let (service, held) = match path.as_str() {
        "/io" | "/async-io" | "/async-io-blocking" | "/cpu" => (t, true),
        "/async-io-multi" => (t / tasks, true),
        "/healthz" | "/" => (Duration::ZERO, false),
        _ => return None,
    };
    let p = |parallel: Option<u32>, held_by| {
        let per_worker = (!info.is_pool())
            .then(|| parallel.map(|p: u32| p / workers))
            .flatten();
        Some(Prediction {
            service,
            parallel,
            held_by,
            per_worker,
        })
    };
    if !held {
        return p(None, "nothing");
    }
    if info.is_pool() {
        return p(Some(workers), "worker");
    }
    match path.as_str() {
        "/io" => {
            let slots = workers.saturating_mul(info.threadpool.unwrap_or(40).max(1));
            p(Some(slots), "thread-pool slot")
        }
        "/async-io-blocking" | "/cpu" => p(Some(workers), "event loop"),
        _ => p(None, "nothing"),
    }
}

impl Prediction {
    /// When the request that finishes `rank`-th (from 1) should finish, since the release.
    pub fn done_at(&self, rank: usize) -> Duration {
        match self.parallel {
            None => self.service,
            Some(p) => {
                let waves = rank.div_ceil(usize::try_from(p.max(1)).unwrap_or(usize::MAX));
                self.service * u32::try_from(waves).unwrap_or(u32::MAX)
            }
        }
    }

    /// Predicted completion times for a burst of `n`, in completion order.
    pub fn schedule(&self, n: usize) -> Vec<Duration> {
        (1..=n).map(|rank| self.done_at(rank)).collect()
    }

    /// Waves a burst of `n` takes.
    pub fn waves(&self, n: usize) -> usize {
        match self.parallel {
            None => usize::from(n > 0),
            Some(p) => n.div_ceil(usize::try_from(p.max(1)).unwrap_or(usize::MAX)),
        }
    }
}

/// A burst held against its prediction.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub prediction: Prediction,
    /// Predicted completion, indexed like `Burst::results` (by request index).
    #[serde(skip)]
    pub predicted: Vec<Option<Duration>>,
    /// The largest |actual − predicted| over the completed requests, in ms.
    pub largest_deviation_ms: f64,
    /// Within tolerance?
    pub as_predicted: bool,
    pub verdict: String,
}

/// How far a completion may stray from its prediction and still count as "as predicted":
/// a tenth of the service time, but never less than 60 ms of scheduling noise on a busy machine,
/// plus the burst's release spread — the model assumes every request left at the same instant.
pub fn tolerance(service: Duration, release_spread: Duration) -> Duration {
    (service / 10).max(Duration::from_millis(60)) + release_spread
}

/// Compare the burst's completion times, in completion order, with the prediction.
pub fn check(burst: &Burst, prediction: &Prediction) -> Check {
    let mut order: Vec<usize> = (0..burst.results.len())
        .filter(|&i| burst.results[i].done.is_some() && burst.results[i].is_ok())
        .collect();
    order.sort_by_key(|&i| (burst.results[i].done, i));
    let mut predicted = vec![None; burst.results.len()];
    let mut worst = Duration::ZERO;
    let mut worst_at = None;
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
        let dev = actual.abs_diff(expect);
        if dev >= worst {
            worst = dev;
            worst_at = Some((rank0 + 1, actual, expect));
        }
    }
    let failed = burst.results.len() - order.len();
    let tol = tolerance(prediction.service, burst.release_spread);
    let as_predicted = failed == 0 && worst <= tol;
    let shape = describe(prediction, burst.results.len());
    let verdict = if failed > 0 {
        format!(
            "{failed} of {} requests failed or timed out; expected {shape}",
            burst.n
        )
    } else if as_predicted {
        format!(
            "{shape}, as predicted (largest deviation {:.0} ms)",
            ms(worst)
        )
    } else {
        let (rank, actual, expect) = worst_at.unwrap_or_default();
        format!(
            "NOT as predicted: expected {shape}, but request #{rank} to finish finished at \
             {:.2} s, predicted {:.2} s",
            actual.as_secs_f64(),
            expect.as_secs_f64()
        )
    };
    Check {
        prediction: prediction.clone(),
        predicted,
        largest_deviation_ms: ms(worst),
        as_predicted,
        verdict,
    }
}

/// "waves of 4 every 1.00 s" / "all 16 at once after 1.00 s".
pub fn describe(prediction: &Prediction, n: usize) -> String {
    let s = prediction.service.as_secs_f64();
    match prediction.parallel {
        Some(p) if usize::try_from(p).is_ok_and(|p| p < n) => {
            format!(
                "waves of {p} every {s:.2} s ({} waves)",
                prediction.waves(n)
            )
        }
        _ => format!("all {n} at once after {s:.2} s"),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Outcome, RequestResult};

    fn info(kind: &str) -> ServerInfo {
        ServerInfo {
            kind: kind.into(),
            workers: 4,
            task_ms: 1000,
            multi_tasks: 2,
            threadpool: (kind == "event-loop").then_some(40),
            max_ms: 60_000,
        }
    }

    fn burst_done_at(times_ms: &[u64]) -> Burst {
        Burst {
            url: "http://x/io".into(),
            n: times_ms.len(),
            release_spread: Duration::ZERO,
            wall: Duration::from_millis(times_ms.iter().copied().max().unwrap_or(0)),
            results: times_ms
                .iter()
                .enumerate()
                .map(|(index, &t)| RequestResult {
                    index,
                    sent: Duration::ZERO,
                    first_byte: Some(Duration::from_millis(t)),
                    done: Some(Duration::from_millis(t)),
                    status: Some(200),
                    bytes: 10,
                    worker: Some("worker0".into()),
                    server_ms: Some(1000.0),
                    outcome: Outcome::Ok,
                })
                .collect(),
        }
    }

    #[test]
    fn the_pool_serves_in_waves_of_workers() {
        let p = predict(&info("pool"), "/io").unwrap();
        let s: Vec<u64> = p.schedule(9).iter().map(|d| d.as_millis() as u64).collect();
        assert_eq!(s, [1000, 1000, 1000, 1000, 2000, 2000, 2000, 2000, 3000]);
        // Async views change nothing on the pool; splitting the work halves each wave.
        assert_eq!(
            predict(&info("pool"), "/async-io").unwrap().done_at(16),
            Duration::from_secs(4)
        );
        let multi = predict(&info("pool"), "/async-io-multi").unwrap();
        assert_eq!(multi.done_at(16), Duration::from_secs(2));
        let multi4 = predict(&info("pool"), "/async-io-multi?tasks=4&ms=2000").unwrap();
        assert_eq!(multi4.service, Duration::from_millis(500));
    }

    #[test]
    fn the_event_loop_serves_io_bound_bursts_at_once() {
        let i = info("event-loop");
        assert_eq!(
            predict(&i, "/async-io").unwrap().done_at(16),
            Duration::from_secs(1)
        );
        assert_eq!(
            predict(&i, "/async-io-multi").unwrap().done_at(100),
            Duration::from_millis(500)
        );
        // /io: 4 loops × 40 slots = 160 at once, then a second wave.
        let io = predict(&i, "/io").unwrap();
        assert_eq!(io.done_at(160), Duration::from_secs(1));
        assert_eq!(io.done_at(161), Duration::from_secs(2));
        // Blocking the loop makes it a pool of 4 again.
        assert_eq!(
            predict(&i, "/cpu").unwrap().done_at(5),
            Duration::from_secs(2)
        );
        assert!(predict(&i, "/nope").is_none());
    }

    #[test]
    fn event_loops_are_checked_per_loop() {
        let cpu = predict(&info("event-loop"), "/cpu").unwrap();
        // Three requests on worker0 (served one after another), one on worker1.
        let mut b = burst_done_at(&[1000, 2000, 3000, 1000]);
        b.results[3].worker = Some("worker1".into());
        let c = check(&b, &cpu);
        assert!(c.as_predicted, "{}", c.verdict);
        assert_eq!(c.predicted[2], Some(Duration::from_secs(3)));
        assert_eq!(c.predicted[3], Some(Duration::from_secs(1)));
    }

    #[test]
    fn a_slow_release_widens_the_tolerance_by_its_spread() {
        let p = predict(&info("event-loop"), "/async-io").unwrap();
        let mut b = burst_done_at(&[1000, 1130]);
        assert!(
            !check(&b, &p).as_predicted,
            "130 ms late, released at once: over the 100 ms tolerance"
        );
        b.release_spread = Duration::from_millis(80);
        assert!(
            check(&b, &p).as_predicted,
            "within 100 ms + the 80 ms spread"
        );
    }

    #[test]
    fn waves_are_split_by_gaps_of_half_the_service_time() {
        let ms = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect::<Vec<_>>();
        let s = Duration::from_millis(100);
        // Four waves of two, out of order.
        let w = waves(&ms(&[210, 100, 105, 200, 301, 300, 402, 400]), s);
        let sizes: Vec<usize> = w.iter().map(|w| w.size).collect();
        assert_eq!(sizes, [2, 2, 2, 2]);
        assert_eq!(w[1].first, Duration::from_millis(200));
        assert_eq!(w[1].last, Duration::from_millis(210));
        // One wave with a long, dense tail stays one wave.
        let tail: Vec<u64> = (0..60).map(|k| 100 + k).collect();
        assert_eq!(waves(&ms(&tail), s).len(), 1);
        // A late straggler is a wave of its own.
        assert_eq!(waves(&ms(&[100, 101, 102, 160]), s).len(), 2);
        assert!(waves(&[], s).is_empty());
    }

    #[test]
    fn verdicts() {
        let p = predict(&info("pool"), "/io").unwrap();
        let good = burst_done_at(&[1010, 1020, 1005, 1030, 2010, 2020, 2040, 2001]);
        let c = check(&good, &p);
        assert!(c.as_predicted, "{}", c.verdict);
        assert_eq!(
            c.verdict,
            "waves of 4 every 1.00 s (2 waves), as predicted (largest deviation 40 ms)"
        );
        assert_eq!(c.predicted[4], Some(Duration::from_secs(2)));

        let all_at_once = burst_done_at(&[1010; 8]);
        let c = check(&all_at_once, &p);
        assert!(!c.as_predicted);
        assert!(c.verdict.starts_with("NOT as predicted"), "{}", c.verdict);

        let mut failed = burst_done_at(&[1000, 1000]);
        failed.results[1].outcome = Outcome::Timeout;
        failed.results[1].done = None;
        let c = check(&failed, &p);
        assert!(!c.as_predicted);
        assert!(
            c.verdict.starts_with("1 of 2 requests failed"),
            "{}",
            c.verdict
        );
    }
}
