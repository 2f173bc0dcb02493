//! The kinds of waiting and working the routes are made of, written once for both twins.
//!
//! A blocking wait ties up the thread that calls it; an async wait only parks a task, which is what
//! lets one event loop hold many requests. Which of these a route uses, and on which thread, is
//! each twin's `handler.rs`.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

/// A blocking wait: the calling thread can do nothing else for `d` (like `time.sleep`).
pub fn block_for(d: Duration) {
    std::thread::sleep(d);
}

/// An async wait: the task is parked and its thread is free for `d` (like `await asyncio.sleep`).
/// A zero wait only yields to the loop once, as `asyncio.sleep(0)` does, without a timer.
pub async fn wait_for(d: Duration) {
    if d.is_zero() {
        tokio::task::yield_now().await;
    } else {
        tokio::time::sleep(d).await;
    }
}

/// `tasks` concurrent async waits of `each` (like `asyncio.gather`): done after about `each`.
pub async fn wait_concurrently(each: Duration, tasks: u32) {
    let mut set = JoinSet::new();
    for _ in 0..tasks {
        set.spawn(wait_for(each));
    }
    while set.join_next().await.is_some() {}
}

/// CPU cores this process may use (at least 1).
pub fn cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
}

/// One unit of CPU work: a few thousand rounds of xorshift, all in registers.
fn cpu_unit(mut x: u64) -> u64 {
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

/// Units of [`burn_cpu`] work one core does per millisecond, measured now in this thread's CPU
/// time — not the clock, so a server started on a busy laptop, whose thread is preempted while it
/// measures, still gets the unit a free core would — the best of a few 10 ms runs.
pub fn calibrate_cpu() -> u64 {
    let mut best = 1;
    let mut x = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..5 {
        let wall = Instant::now();
        let cpu = cpu_time::ThreadTime::try_now().ok();
        let mut units = 0u64;
        while wall.elapsed() < Duration::from_millis(10) {
            x = cpu_unit(x);
            units += 1;
        }
        std::hint::black_box(x);
        let spent = cpu
            .and_then(|t| t.try_elapsed().ok())
            .filter(|d| !d.is_zero())
            .unwrap_or_else(|| wall.elapsed());
        let per_ms = (units as f64 / (spent.as_secs_f64() * 1000.0)) as u64;
        best = best.max(per_ms);
    }
    best
}

/// Busy CPU work that takes about `d` on a free core: a fixed amount, `d` × `units_per_ms`. The
/// thread computes and yields to nothing; when more threads compute than there are cores, they
/// share the cores and each takes longer — CPU-bound work does not overlap the way waits do.
///
/// Returns the CPU time the work took on this thread (where the platform can tell): a laptop's
/// CPU speeds up and slows down, so a client checking the cores rule uses this, not `d`.
pub fn burn_cpu(d: Duration, units_per_ms: u64) -> Option<Duration> {
    let before = cpu_time::ThreadTime::try_now().ok();
    let units = (d.as_secs_f64() * 1000.0 * units_per_ms as f64).round() as u64;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..units {
        x = cpu_unit(x);
    }
    std::hint::black_box(x);
    before.and_then(|t| t.try_elapsed().ok())
}

/// A fresh single-threaded event loop that runs `fut` to the end on the calling thread — what Flask
/// does for an `async def` view inside a sync worker. The thread is blocked until `fut` is done.
pub fn run_in_fresh_loop<F: std::future::Future>(fut: F) -> std::io::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    Ok(rt.block_on(fut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_waits_overlap_in_a_fresh_loop() {
        let t = Instant::now();
        run_in_fresh_loop(wait_concurrently(Duration::from_millis(60), 10)).unwrap();
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(60), "{took:?}");
        assert!(
            took < Duration::from_millis(400),
            "10 waits of 60 ms overlapped: {took:?}"
        );
    }

    #[test]
    fn cpu_work_is_a_fixed_amount_calibrated_to_a_free_core() {
        let per_ms = calibrate_cpu();
        assert!(per_ms >= 1);
        // The thread really computed: its CPU time grew by about the time asked (a sleep would
        // leave it near zero). Generous bounds: the CPU's speed drifts on a shared machine.
        let cpu = burn_cpu(Duration::from_millis(40), per_ms).expect("thread CPU time");
        assert!(
            cpu >= Duration::from_millis(12) && cpu <= Duration::from_millis(400),
            "{cpu:?}"
        );
        let none = burn_cpu(Duration::ZERO, per_ms).expect("thread CPU time");
        assert!(none < Duration::from_millis(5), "{none:?}");
    }
}
