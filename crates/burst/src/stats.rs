//! The statistics of a burst: how many answered, latency percentiles, who served how many, and
//! the completion order every view draws in. Computed once, read by the text, JSON and SVG views.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::client::{Burst, Outcome, RequestResult};
use crate::units;

/// The numbers under the table.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub requests: usize,
    pub ok: usize,
    pub timeouts: usize,
    pub errors: usize,
    pub wall_ms: f64,
    pub release_spread_ms: f64,
    /// Latency percentiles over completed requests, in ms.
    pub min_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub per_worker: BTreeMap<String, usize>,
    /// Counts by HTTP status, plus `timeout` and `error`.
    pub statuses: BTreeMap<String, usize>,
}

fn ms(d: Duration) -> f64 {
    units::round(units::ms(d), 2)
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

pub fn summarize(burst: &Burst) -> Summary {
    let mut latencies: Vec<Duration> = burst
        .results
        .iter()
        .filter(|r| r.is_ok())
        .filter_map(RequestResult::latency)
        .collect();
    latencies.sort();
    let mut per_worker = BTreeMap::new();
    let mut statuses = BTreeMap::new();
    for r in &burst.results {
        if let Some(w) = &r.worker {
            *per_worker.entry(w.clone()).or_insert(0) += 1;
        }
        let key = match &r.outcome {
            Outcome::Http(status) => status.to_string(),
            other => other.label().to_owned(),
        };
        *statuses.entry(key).or_insert(0) += 1;
    }
    let pct = |p| percentile(&latencies, p).map(ms);
    Summary {
        requests: burst.n,
        ok: burst.results.iter().filter(|r| r.is_ok()).count(),
        timeouts: statuses.get("timeout").copied().unwrap_or(0),
        errors: statuses.get("error").copied().unwrap_or(0),
        wall_ms: ms(burst.wall),
        release_spread_ms: ms(burst.release_spread),
        min_ms: latencies.first().copied().map(ms),
        p50_ms: pct(50.0),
        p90_ms: pct(90.0),
        p99_ms: pct(99.0),
        max_ms: latencies.last().copied().map(ms),
        per_worker,
        statuses,
    }
}

/// Request indices in completion order — answers of any status by when they came (a drain's
/// 503s before the 200s they beat); requests with no answer last, in index order.
pub fn completion_order(burst: &Burst) -> Vec<usize> {
    let mut order: Vec<usize> = (0..burst.results.len()).collect();
    order.sort_by_key(|&i| (burst.results[i].done.unwrap_or(Duration::MAX), i));
    order
}
