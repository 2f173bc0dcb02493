//! Which event loop gets a new connection.
//!
//! uvicorn's workers all `accept` on one inherited socket, so a worker that is stuck takes no new
//! connections, while the others do. Letting our loops race on one socket the same way spreads a
//! burst badly — whichever thread is awake takes most of it (100 connections landed 62/13/13/12
//! and 99/1/0/0 here) — and the lesson would change from run to run. So one acceptor thread
//! hands each connection to the *responsive* loop holding the fewest connections: a loop that
//! has not ticked its heartbeat for [`FROZEN_AFTER`] (blocked by `/async-io-blocking` or `/cpu`)
//! gets nothing new, as a stuck uvicorn worker would. A burst of 16 on 4 loops lands 4/4/4/4.
//!
//! An idle server sleeps: a loop with no connections runs nothing that could block it, so it
//! needs no heartbeat and counts as responsive; it beats only while it holds connections, and the
//! acceptor wakes it (and vouches for it until its first beat) when it hands it one.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Notify};

/// How often a loop ticks its heartbeat.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(10);
/// A loop silent for longer than this counts as frozen.
pub(crate) const FROZEN_AFTER: Duration = Duration::from_millis(50);

/// Per-loop open connections and heartbeats, shared by the acceptor and the loops.
#[derive(Debug, Clone)]
pub(crate) struct Loops {
    open: Arc<[AtomicUsize]>,
    beat_ms: Arc<[AtomicU64]>,
    /// Wakes an idle loop's heartbeat when the acceptor hands it a connection.
    wake: Arc<[Notify]>,
    /// Where the search for the least-loaded loop starts; it turns round, so that ties (steady
    /// traffic, a few connections open at a time) do not always go to the first loop.
    turn: Arc<AtomicUsize>,
    epoch: Instant,
    /// `epoch` as µs since the Unix epoch, to say since when a loop is frozen.
    epoch_unix_us: u64,
}

/// One open connection on loop `k`; gives its place back on drop.
#[derive(Debug)]
pub(crate) struct Open(Arc<[AtomicUsize]>, usize);

impl Drop for Open {
    fn drop(&mut self) {
        self.0[self.1].fetch_sub(1, Ordering::Relaxed);
    }
}

impl Loops {
    pub(crate) fn new(n: usize) -> Loops {
        Loops {
            open: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            beat_ms: (0..n).map(|_| AtomicU64::new(0)).collect(),
            wake: (0..n).map(|_| Notify::new()).collect(),
            turn: Arc::new(AtomicUsize::new(0)),
            epoch: Instant::now(),
            epoch_unix_us: twin_core::timefmt::unix_micros(std::time::SystemTime::now()),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Loop `k` is alive and turning.
    pub(crate) fn beat(&self, k: usize) {
        self.beat_ms[k].store(self.now_ms(), Ordering::Relaxed);
    }

    fn opened(&self, k: usize) -> Open {
        if self.open[k].fetch_add(1, Ordering::Relaxed) == 0 {
            // An idle loop was asleep: vouch for it until its own heartbeat resumes.
            self.beat(k);
            self.wake[k].notify_one();
        }
        Open(self.open.clone(), k)
    }

    /// Loop `k`'s heartbeat: every [`HEARTBEAT`] while the loop holds connections; asleep while
    /// it holds none (nothing can block a loop with nothing to run).
    pub(crate) async fn heartbeat(&self, k: usize) {
        loop {
            if self.open[k].load(Ordering::Relaxed) == 0 {
                self.wake[k].notified().await;
            }
            self.beat(k);
            tokio::time::sleep(HEARTBEAT).await;
        }
    }

    /// For `/events`: each loop that holds connections and has not ticked for [`FROZEN_AFTER`],
    /// with the time of its last tick (µs since the Unix epoch); `None` while no loop holds a
    /// connection (none can be frozen).
    pub(crate) fn frozen(&self) -> Option<Vec<Option<u64>>> {
        if self.open.iter().all(|n| n.load(Ordering::Relaxed) == 0) {
            return None;
        }
        let now = self.now_ms();
        let frozen_ms = u64::try_from(FROZEN_AFTER.as_millis()).unwrap_or(u64::MAX);
        (0..self.open.len())
            .map(|k| {
                let beat = self.beat_ms[k].load(Ordering::Relaxed);
                (self.open[k].load(Ordering::Relaxed) > 0 && now.saturating_sub(beat) > frozen_ms)
                    .then(|| self.epoch_unix_us + beat * 1000)
            })
            .collect::<Vec<_>>()
            .into()
    }

    /// The responsive loop with the fewest open connections (ties taken in turn); if every loop
    /// is frozen, the one with the fewest (the connection then waits for it, as it would in a
    /// listen queue). A loop holding no connections is responsive.
    fn pick(&self) -> usize {
        let now = self.now_ms();
        let frozen_ms = u64::try_from(FROZEN_AFTER.as_millis()).unwrap_or(u64::MAX);
        let load = |k: &usize| self.open[*k].load(Ordering::Relaxed);
        let n = self.open.len().max(1);
        let start = self.turn.fetch_add(1, Ordering::Relaxed) % n;
        let all = (0..self.open.len()).map(|i| (start + i) % n);
        all.clone()
            .filter(|&k| {
                load(&k) == 0
                    || now.saturating_sub(self.beat_ms[k].load(Ordering::Relaxed)) <= frozen_ms
            })
            .min_by_key(load)
            .or_else(|| all.min_by_key(load))
            .unwrap_or(0)
    }
}

/// Accept until the drain begins, handing each connection to a loop.
pub(crate) fn run(
    listener: TcpListener,
    loops: Loops,
    to_loops: Vec<mpsc::UnboundedSender<(TcpStream, Open)>>,
    stop: watch::Receiver<bool>,
    events: twin_core::events::Events,
) {
    // After an accept error, how long to wait before accepting again (doubling up to a second,
    // as mini-redis's listener backs off, and as the pool's patched tiny_http does).
    let mut backoff: Option<Duration> = None;
    loop {
        match listener.accept() {
            Ok((stream, _peer)) => {
                if backoff.take().is_some() {
                    tracing::info!("accepting connections again");
                }
                if stream.set_nonblocking(true).is_err() {
                    continue;
                }
                let k = loops.pick();
                let was_idle = loops.open[k].load(Ordering::Relaxed) == 0;
                let open = loops.opened(k);
                if was_idle {
                    // `/events` looks at the loops' heartbeats only while some loop is busy.
                    events.loops_busy();
                }
                // A loop that has stopped takes no more; the connection is closed on drop.
                let _ = to_loops[k].send((stream, open));
            }
            Err(_) if *stop.borrow() => return,
            Err(e) => {
                // Out of descriptors and the like: say so once, back off, keep going.
                let pause = match backoff {
                    None => {
                        tracing::error!(
                            "accept failed: {e}; new connections wait in the listen queue, \
                             retried up to every second"
                        );
                        Duration::from_millis(10)
                    }
                    Some(last) => {
                        tracing::debug!("accept failed again: {e}");
                        (last * 2).min(Duration::from_secs(1))
                    }
                };
                backoff = Some(pause);
                std::thread::sleep(pause);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_the_least_loaded_responsive_loop() {
        let loops = Loops::new(3);
        for k in 0..3 {
            loops.beat(k);
        }
        let held: Vec<Open> = (0..6)
            .map(|_| {
                let k = loops.pick();
                loops.opened(k)
            })
            .collect();
        let per_loop: Vec<usize> = (0..3)
            .map(|k| loops.open[k].load(Ordering::Relaxed))
            .collect();
        assert_eq!(per_loop, [2, 2, 2]);
        drop(held);
        assert!(loops.open.iter().all(|c| c.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn ties_go_round_the_loops() {
        let loops = Loops::new(4);
        // One connection at a time, each closed before the next (steady traffic well under what
        // the loops hold): every pick is a tie, and each loop gets its turn.
        let picked: Vec<usize> = (0..8)
            .map(|_| {
                let k = loops.pick();
                drop(loops.opened(k));
                k
            })
            .collect();
        let mut per_loop = [0; 4];
        for k in &picked {
            per_loop[*k] += 1;
        }
        assert_eq!(per_loop, [2, 2, 2, 2], "{picked:?}");
    }

    #[test]
    fn a_frozen_loop_gets_nothing_new() {
        let loops = Loops::new(2);
        // Both hold a connection; loop 1 has not beaten since, and the clock is past FROZEN_AFTER.
        let _held = (loops.opened(0), loops.opened(1));
        std::thread::sleep(FROZEN_AFTER + Duration::from_millis(20));
        loops.beat(0);
        let _a = loops.opened(loops.pick());
        let _b = loops.opened(loops.pick());
        assert_eq!(loops.open[0].load(Ordering::Relaxed), 3);
        assert_eq!(loops.open[1].load(Ordering::Relaxed), 1);
    }

    #[test]
    fn an_idle_loop_needs_no_heartbeat() {
        let loops = Loops::new(2);
        // Long past FROZEN_AFTER with no beat at all: idle loops are still responsive.
        std::thread::sleep(FROZEN_AFTER + Duration::from_millis(20));
        let held: Vec<Open> = (0..4).map(|_| loops.opened(loops.pick())).collect();
        let per_loop: Vec<usize> = (0..2)
            .map(|k| loops.open[k].load(Ordering::Relaxed))
            .collect();
        assert_eq!(
            per_loop,
            [2, 2],
            "the acceptor vouched for each loop it woke"
        );
        drop(held);
    }
}
