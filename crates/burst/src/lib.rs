//! # burst — the experiment driver
//!
//! Load tools print averages, and averages hide waves. `burst` fires N requests at once, each on
//! its own connection, and keeps one row per request: when it was sent, when it finished, which
//! worker served it and how long the server says it worked. Lined up, the rows show the lesson:
//! the pool twin serves in waves of `workers`, the event-loop twin serves everyone at once.
//!
//! | module | what it does |
//! |---|---|
//! | [`client`] | open N connections, release N requests together, time each one; or send steady traffic on a fixed schedule (an open loop) |
//! | [`model`] | predict when each request should finish, and check a burst against it; [`model::steady`]: steady traffic against the queue, simulated |
//! | [`stats`] | counts, latency percentiles, per-worker tallies, completion order |
//! | [`units`] | durations in milliseconds, rounded where printed |
//! | [`print`] | what burst shows: text (tables, waterfall, summary), JSON and CSV, SVG charts; [`print::steady`] for steady traffic |
//! | [`experiment`] | one burst held against the model; the reference matrix |
//! | [`progress`] | the live progress line while a long burst runs |
//! | [`stage`] | `burst stage`: the live page that watches both twins' `/events` and fires bursts |
//!
//! Data flows one way: `client` → `model` and `stats` → `print`.

pub mod client;
pub mod experiment;
pub mod model;
pub mod print;
pub mod progress;
pub mod stage;
pub mod stats;
pub mod units;

use std::time::Duration;

pub use client::{fire, Burst, FireError, FireOptions, Outcome, RequestResult, Target};

/// Fire a burst from synchronous code (tests, scripts): a runtime of its own, then [`fire`].
pub fn fire_blocking(url: &str, n: usize, timeout: Duration) -> Result<Burst, FireError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| FireError(format!("cannot start a runtime: {e}")))?;
    rt.block_on(async {
        let target = Target::parse(url).await?;
        fire(
            &target,
            FireOptions {
                n,
                timeout,
                ended: None,
                worker_header: client::WORKER_HEADER.into(),
                run: None,
                cancel: None,
            },
        )
        .await
    })
}
