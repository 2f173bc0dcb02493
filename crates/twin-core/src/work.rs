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

/// Busy CPU work for `d`: the thread computes and yields to nothing.
pub fn burn_cpu(d: Duration) -> u64 {
    let end = Instant::now() + d;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    loop {
        // A few thousand rounds of xorshift between clock reads keep the CPU busy, not the clock.
        for _ in 0..4096 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        if Instant::now() >= end {
            return std::hint::black_box(x);
        }
    }
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
    fn cpu_work_lasts_as_long_as_asked() {
        let t = Instant::now();
        burn_cpu(Duration::from_millis(30));
        assert!(t.elapsed() >= Duration::from_millis(30));
    }
}
