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
//! CPU-bound work (`/cpu`) is also bounded by cores: `workers` threads computing on fewer cores
//! share them, so each wave of `workers` takes S·workers/min(workers, cores) on both twins.
//!
//! On the event-loop twin each loop queues only what it holds; the check ranks each request
//! among those of the loop that served it (`X-Worker`), whichever way the acceptor spread them.

use std::time::Duration;

use serde::Serialize;
use twin_core::contract::{Holds, Service};
pub use twin_core::contract::{RouteRule, ServerInfo, ServerKind};

mod check;
pub mod steady;
mod verdict;

pub use check::{check, tolerance, waves, Check, Shed, Wave};
pub use verdict::describe;

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
    /// CPU work: threads share the cores, so a wave's requests finish less evenly.
    pub cpu_bound: bool,
    /// For CPU work: how many threads compute at once, and on how many cores.
    #[serde(skip)]
    pub computing: (u32, u32),
    /// At most this many requests in the server at once (`--limit-concurrency`; a pool's slots
    /// plus its `--max-queue`): one more is shed with a 503 at once.
    pub limit: Option<u32>,
    /// The server's flag that sets [`Prediction::limit`], and its value, for the words.
    #[serde(skip)]
    pub limit_flag: &'static str,
    #[serde(skip)]
    pub limit_value: u32,
    /// How many more or fewer may be shed than the model says: `--max-queue` counts only those
    /// waiting, and a burst races the workers' waking (a wave's worth).
    #[serde(skip)]
    pub limit_slack: u32,
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1_000_000.0).round() / 1000.0)
}

/// T and K for a request path like `/async-io-multi?ms=500&tasks=4`, with the server's defaults.
/// A value it cannot read is an error, as the servers answer it with a 400: never a default.
fn wait_and_tasks(path_and_query: &str, info: &ServerInfo) -> Result<(String, u64, u32), String> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut ms = info.task_ms;
    let mut tasks = info.multi_tasks.max(1);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = |what: &str| {
            value
                .parse::<u64>()
                .map_err(|_| format!("?{name}={value} is not a whole number of {what}"))
        };
        match name {
            "ms" => ms = number("milliseconds")?,
            "tasks" => {
                tasks = u32::try_from(number("tasks")?)
                    .ok()
                    .filter(|&k| k >= 1)
                    .ok_or_else(|| format!("?tasks={value} is not 1 or more"))?
            }
            // Another server's parameters: not the model's business.
            _ => {}
        }
    }
    Ok((path.to_owned(), ms, tasks))
}

/// Check that the model can read the URL's query: `Err` says what it cannot read.
pub fn read_query(info: &ServerInfo, path_and_query: &str) -> Result<(), String> {
    wait_and_tasks(path_and_query, info).map(|_| ())
}

/// The model for `path_and_query` on the server described by `info`, from the rule the server
/// publishes for the route at `GET /` (what a request holds, for how long); `None` for a route
/// it publishes no rule for, or a query the model cannot read. A model told on the command line
/// (`--model`) takes every path as one wait of T: held by a worker on a pool, parked on a loop.
pub fn predict(info: &ServerInfo, path_and_query: &str) -> Option<Prediction> {
    let (path, ms, tasks) = wait_and_tasks(path_and_query, info).ok()?;
    let t = Duration::from_millis(ms);
    let workers = info.workers.max(1);
    let rule = info.routes.iter().find(|r| r.path == path);
    let slots = rule.and_then(|r| r.slots);
    let own_queues = rule.and_then(|r| r.per_worker);
    let (holds, service) = match rule.and_then(|r| Some((r.holds?, r.service?))) {
        Some(rule) => rule,
        None if info.told && info.is_pool() => (Holds::Worker, Service::Wait),
        None if info.told => (Holds::Nothing, Service::Wait),
        None => return None,
    };
    // A pool serves `workers × threads` at once (gunicorn's gthread); the rule says so itself.
    let pool_slots = slots.unwrap_or_else(|| workers.saturating_mul(info.threads.unwrap_or(1)));
    // CPU work on more threads than cores: the threads share the cores, each wave takes longer.
    let threads = match holds {
        Holds::Worker => pool_slots.max(1),
        _ => workers,
    };
    let computing = threads.min(info.cores.unwrap_or(threads).max(1));
    let service_time = match service {
        Service::Wait => t,
        Service::Slice => t / tasks,
        Service::Cpu => (t * threads) / computing,
        Service::Instant => Duration::ZERO,
    };
    let (parallel, per_worker) = match holds {
        // gunicorn's gthread: each process queues what it accepted for its own threads.
        Holds::Worker => (Some(pool_slots.max(1)), own_queues),
        Holds::ThreadPoolSlot => {
            let slots = info.threadpool?.max(1);
            (Some(workers.saturating_mul(slots)), Some(slots))
        }
        Holds::EventLoop => (Some(workers), Some(1)),
        Holds::Nothing => (None, None),
    };
    // What the server holds at most: `--limit-concurrency` counts every request in it; a pool's
    // `--max-queue` counts those waiting, behind the requests its workers hold.
    // A loop frozen by its request (`/async-io-blocking`, `/cpu`) has not read the requests behind
    // it: they are in its socket, not in the server, so at most a request a loop counts — a
    // limit of at least `workers` never sheds there.
    let frozen_below = |n: u32| holds == Holds::EventLoop && n >= workers;
    // `--max-queue` counts those waiting for a worker: whether a burst's request finds a worker
    // still idle, or just woken, is a race the model cannot see — up to a wave either way.
    let (limit, limit_flag, limit_value, limit_slack) =
        match (info.limit_concurrency, info.max_queue, parallel) {
            (Some(n), _, _) if frozen_below(n) => (None, "", 0, 0),
            (Some(n), None, _) => (Some(n), "--limit-concurrency", n, 0),
            (Some(n), Some(q), Some(p)) if holds == Holds::Worker => {
                let queue = p.saturating_add(q);
                if queue < n {
                    (Some(queue), "--max-queue", q, p)
                } else {
                    (Some(n), "--limit-concurrency", n, 0)
                }
            }
            (Some(n), _, _) => (Some(n), "--limit-concurrency", n, 0),
            (None, Some(q), Some(p)) if holds == Holds::Worker => {
                (Some(p.saturating_add(q)), "--max-queue", q, p)
            }
            _ => (None, "", 0, 0),
        };
    Some(Prediction {
        service: service_time,
        parallel,
        held_by: match holds {
            Holds::Worker => "worker",
            Holds::ThreadPoolSlot => "thread-pool slot",
            Holds::EventLoop => "event loop",
            Holds::Nothing => "nothing",
        },
        per_worker,
        cpu_bound: service == Service::Cpu,
        computing: (threads, computing),
        limit,
        limit_flag,
        limit_value,
        limit_slack,
    })
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

    /// Of a burst of `n` at once, how many are served; the rest are shed with a 503.
    pub fn admitted(&self, n: usize) -> usize {
        self.limit.map_or(n, |l| n.min(l as usize))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Burst, Outcome, RequestResult};

    /// What a twin of `kind` says at `GET /` (4 workers, T = 1 s, K = 2), on 8 cores.
    fn info(kind: &str) -> ServerInfo {
        use twin_core::{Config, Reply, ServerKind};
        let kind = if kind == "pool" {
            ServerKind::Pool
        } else {
            ServerKind::EventLoop
        };
        let index = Reply::index(&Config::for_tests(kind, 4, 1000)).body;
        let mut info: ServerInfo = serde_json::from_str(&index).unwrap();
        info.cores = Some(8);
        info
    }

    fn burst_done_at(times_ms: &[u64]) -> Burst {
        Burst {
            url: "http://x/io".into(),
            n: times_ms.len(),
            run: "r".into(),
            released_unix_us: 0,
            release_spread: Duration::ZERO,
            wall: Duration::from_millis(times_ms.iter().copied().max().unwrap_or(0)),
            results: times_ms
                .iter()
                .enumerate()
                .map(|(index, &t)| RequestResult {
                    index,
                    scheduled: Duration::ZERO,
                    sent: Duration::ZERO,
                    first_byte: Some(Duration::from_millis(t)),
                    done: Some(Duration::from_millis(t)),
                    status: Some(200),
                    bytes: 10,
                    worker: Some("worker0".into()),
                    server_ms: Some(1000.0),
                    pool_wait_ms: None,
                    cpu_ms: None,
                    outcome: Outcome::Http(200),
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
        // A query the model cannot read is refused, never read as the default.
        assert!(read_query(&i, "/io?ms=abc")
            .unwrap_err()
            .contains("?ms=abc"));
        assert!(read_query(&i, "/async-io-multi?tasks=0").is_err());
        assert!(read_query(&i, "/io?ms=5&other=x").is_ok());
    }

    #[test]
    fn descriptions_count_right() {
        let mut i = info("pool");
        i.workers = 1;
        // The rule's slots were published for 4 workers: the model reads them first.
        i.routes.iter_mut().for_each(|r| r.slots = None);
        let p = predict(&i, "/io").unwrap();
        assert_eq!(describe(&p, 1), "1 request, done after 1.00 s");
        assert_eq!(describe(&p, 3), "one at a time, every 1.00 s (3 waves)");
        let p = predict(&info("event-loop"), "/async-io").unwrap();
        assert_eq!(describe(&p, 16), "all 16 at once after 1.00 s");
    }

    #[test]
    fn cpu_work_is_bounded_by_cores_on_both_twins() {
        for kind in ["pool", "event-loop"] {
            let mut i = info(kind);
            i.cores = Some(2);
            // 4 workers share 2 cores: each wave of 4 takes 2 T.
            let cpu = predict(&i, "/cpu").unwrap();
            assert_eq!(cpu.service, Duration::from_secs(2), "{kind}");
            assert_eq!(cpu.done_at(16), Duration::from_secs(8), "{kind}");
            // Waits do not need cores.
            assert_eq!(
                predict(&i, "/async-io-blocking").unwrap().service,
                Duration::from_secs(1)
            );
            // Enough cores: T per wave.
            i.cores = Some(4);
            assert_eq!(predict(&i, "/cpu").unwrap().service, Duration::from_secs(1));
        }
    }

    #[test]
    fn cpu_waves_are_judged_by_the_cpu_time_the_server_measured() {
        let mut i = info("pool");
        i.cores = Some(2);
        let p = predict(&i, "/cpu?ms=100").unwrap();
        // The CPU ran at half speed: 200 ms of CPU each, 4 on 2 cores, waves every 400 ms.
        let mut b = burst_done_at(&[400, 410, 395, 402, 800, 805, 810, 790]);
        for r in &mut b.results {
            r.cpu_ms = Some(200.0);
        }
        let c = check(&b, &p);
        assert!(c.as_predicted, "{}", c.verdict);
        assert!(
            c.verdict
                .contains("200 ms of CPU per request; 4 on 2 cores"),
            "{}",
            c.verdict
        );
        // Smeared by other programs on the machine: three waves, not two — yet each worker
        // computed one after another and nothing beat the cores: still the lesson.
        let mut smeared = burst_done_at(&[400, 520, 410, 800, 850, 900, 940, 960]);
        for (k, r) in smeared.results.iter_mut().enumerate() {
            r.cpu_ms = Some(200.0);
            r.worker = Some(format!("worker{}", k % 4));
        }
        let c = check(&smeared, &p);
        assert!(c.as_predicted, "{}", c.verdict);
        assert!(
            c.verdict.starts_with("CPU-bound, as predicted"),
            "{}",
            c.verdict
        );
        // Faster than computing allows — CPU work that overlapped on one worker — fails.
        let mut overlapped = burst_done_at(&[210, 220, 230, 240, 800, 800, 800, 800]);
        for r in &mut overlapped.results {
            r.cpu_ms = Some(200.0);
        }
        let c = check(&overlapped, &p);
        assert!(!c.as_predicted, "{}", c.verdict);
        assert!(c.verdict.contains("sooner than"), "{}", c.verdict);
        // Twice as slow as the cores allow (both twins computing on the same cores at once):
        // the slow side fails too — "nothing too early" alone would pass any slowdown.
        let mut shared = burst_done_at(&[800, 820, 1200, 1250, 1600, 1610, 1590, 1620]);
        for (k, r) in shared.results.iter_mut().enumerate() {
            r.cpu_ms = Some(200.0);
            r.worker = Some(format!("worker{}", k % 4));
        }
        let c = check(&shared, &p);
        assert!(!c.as_predicted, "{}", c.verdict);
        assert!(
            c.verdict.contains("something else was computing"),
            "{}",
            c.verdict
        );
    }

    #[test]
    fn a_last_wave_that_trails_far_behind_the_model_fails() {
        let p = predict(&info("event-loop"), "/async-io?ms=100").unwrap();
        // One wave, but its last request 190 ms after the model's 100 ms: 130 ms beyond the
        // tolerance, more than S = 100 ms and 2 ms × 6 — not a cost per request any more.
        let b = burst_done_at(&[100, 130, 170, 210, 250, 290]);
        let c = check(&b, &p);
        assert!(!c.as_predicted, "{}", c.verdict);
        let ok = burst_done_at(&[100, 101, 103, 140, 185]);
        assert!(check(&ok, &p).as_predicted);
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
        let mut b = burst_done_at(&[1280, 1285]);
        assert!(
            !check(&b, &p).as_predicted,
            "the wave began 280 ms late, released at once: over the 250 ms tolerance"
        );
        b.release_spread = Duration::from_millis(80);
        assert!(
            check(&b, &p).as_predicted,
            "within 250 ms + the 80 ms spread"
        );
    }

    #[test]
    fn one_wave_with_a_long_tail_is_as_predicted_and_says_what_it_cost() {
        let p = predict(&info("event-loop"), "/async-io").unwrap();
        // 1,000 requests finishing from 1.00 s to 1.57 s: one wave, with a cost per request.
        let times: Vec<u64> = (0..1000).map(|k| 1000 + k * 570 / 999).collect();
        let c = check(&burst_done_at(&times), &p);
        assert!(c.as_predicted, "{}", c.verdict);
        assert_eq!(c.waves.len(), 1);
        assert!(
            c.verdict.contains("0.57 s after the model's 1.00 s")
                && c.verdict
                    .contains("µs of server and client time per request"),
            "{}",
            c.verdict
        );
        // A second wave is not a cost: it fails.
        let mut two = times.clone();
        two.push(2100);
        let c = check(&burst_done_at(&two), &p);
        assert!(!c.as_predicted);
        assert!(c.verdict.contains("2 waves (of 1000, 1)"), "{}", c.verdict);
    }

    #[test]
    fn an_uneven_spread_over_loops_is_followed_and_said() {
        let mut i = info("event-loop");
        i.threadpool = Some(2);
        let io = predict(&i, "/io").unwrap();
        // Five requests on worker0 (two slots: three waves), one on worker1.
        let mut b = burst_done_at(&[1000, 1000, 2000, 2000, 3000, 1000]);
        b.results[5].worker = Some("worker1".into());
        let c = check(&b, &io);
        assert!(c.as_predicted, "{}", c.verdict);
        assert!(
            c.verdict.starts_with("3 waves of 3, 2, 1 every 1.00 s, as the loops got the requests (worker0 5, worker1 1)"),
            "{}",
            c.verdict
        );
        assert_eq!(c.predicted_last, Duration::from_secs(3));
    }

    #[test]
    fn waves_of_the_wrong_size_fail_even_on_time() {
        let p = predict(&info("pool"), "/io").unwrap();
        // Eight requests in waves of 2 and 6, each on time: not waves of 4.
        let c = check(
            &burst_done_at(&[1000, 1000, 2000, 2000, 2000, 2000, 2000, 2000]),
            &p,
        );
        assert!(!c.as_predicted);
        assert!(
            c.verdict.contains("wave 1 had 2 requests, not 4"),
            "{}",
            c.verdict
        );
        // Tiny T: waves of 4 every 10 ms, told apart by 5 ms gaps.
        let mut i = info("pool");
        i.task_ms = 10;
        let p = predict(&i, "/io").unwrap();
        let c = check(&burst_done_at(&[10, 11, 10, 12, 21, 20, 22, 20]), &p);
        assert!(c.as_predicted, "{}", c.verdict);
        assert_eq!(c.waves.len(), 2);
    }

    #[test]
    fn waves_are_split_by_gaps_of_half_the_service_time() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
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
