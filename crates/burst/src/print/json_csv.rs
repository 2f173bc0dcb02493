//! Machine-readable output: one row per request, the same columns in JSON and CSV, so `jq` and
//! spreadsheets see what the waterfall shows. Column names are stable; new ones are only appended.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::client::Burst;
use crate::model::{Check, ServerInfo, ServerKind};
use crate::stats::Summary;
use crate::units;

/// One request, flat.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub index: usize,
    pub worker: Option<String>,
    pub status: Option<u16>,
    /// `ok`, `timeout` or `error`.
    pub outcome: &'static str,
    pub sent_ms: f64,
    pub first_byte_ms: Option<f64>,
    pub done_ms: Option<f64>,
    pub latency_ms: Option<f64>,
    pub server_ms: Option<f64>,
    pub waiting_ms: Option<f64>,
    pub predicted_done_ms: Option<f64>,
    pub bytes: u64,
    pub error: Option<String>,
    /// The part of `server_ms` spent waiting for a thread-pool slot (counted in `waiting_ms`).
    pub pool_wait_ms: Option<f64>,
    /// The CPU time the server's work took (`/cpu`).
    pub cpu_ms: Option<f64>,
    /// When it was due: 0 in a burst; `index / rate` in steady traffic (`--rate`).
    pub scheduled_ms: f64,
    /// Latency from when it was due (`done_ms − scheduled_ms`): what coordinated omission hides.
    pub from_schedule_ms: Option<f64>,
}

/// The CSV header, in [`Row`] order.
pub const CSV_COLUMNS: &str = "index,worker,status,outcome,sent_ms,first_byte_ms,done_ms,\
latency_ms,server_ms,waiting_ms,predicted_done_ms,bytes,error,pool_wait_ms,cpu_ms,scheduled_ms,\
from_schedule_ms";

fn ms(d: Duration) -> f64 {
    units::round(units::ms(d), 3)
}

pub fn rows(burst: &Burst, check: Option<&Check>) -> Vec<Row> {
    rows_predicted(burst, check.map(|c| c.predicted.as_slice()))
}

/// Rows with each request's predicted end (by index), from whichever model predicted it.
pub fn rows_predicted(burst: &Burst, predicted: Option<&[Option<Duration>]>) -> Vec<Row> {
    burst
        .results
        .iter()
        .map(|r| Row {
            index: r.index,
            worker: r.worker.clone(),
            status: r.status,
            outcome: r.outcome.label(),
            sent_ms: ms(r.sent),
            first_byte_ms: r.first_byte.map(ms),
            done_ms: r.done.map(ms),
            latency_ms: r.latency().map(ms),
            server_ms: r.server_ms,
            waiting_ms: r.waiting().map(ms),
            predicted_done_ms: predicted
                .and_then(|p| p.get(r.index).copied().flatten())
                .map(ms),
            bytes: r.bytes,
            error: r.outcome.error(),
            pool_wait_ms: r.pool_wait_ms,
            cpu_ms: r.cpu_ms,
            scheduled_ms: ms(r.scheduled),
            from_schedule_ms: r.from_schedule().map(ms),
        })
        .collect()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// CSV with a header line, one line per request in index order.
pub fn csv(rows: &[Row]) -> String {
    let mut s = String::from(CSV_COLUMNS);
    s.push('\n');
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.index,
            csv_field(r.worker.as_deref().unwrap_or("")),
            opt(&r.status),
            r.outcome,
            r.sent_ms,
            opt(&r.first_byte_ms),
            opt(&r.done_ms),
            opt(&r.latency_ms),
            opt(&r.server_ms),
            opt(&r.waiting_ms),
            opt(&r.predicted_done_ms),
            r.bytes,
            csv_field(r.error.as_deref().unwrap_or("")),
            opt(&r.pool_wait_ms),
            opt(&r.cpu_ms),
            r.scheduled_ms,
            opt(&r.from_schedule_ms)
        );
    }
    s
}

/// One cell of `burst compare --json`: a server × route × size, with every request.
#[derive(Debug, Serialize)]
pub struct CellReport<'a> {
    /// The target's name.
    pub server: &'a str,
    /// `pool` or `event-loop`, as the server said.
    pub kind: Option<ServerKind>,
    pub route: &'a str,
    pub n: usize,
    pub summary: &'a Summary,
    pub model: Option<&'a Check>,
    pub requests: Vec<Row>,
}

/// Everything about one burst, for `--json`.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub url: &'a str,
    pub n: usize,
    pub release_spread_ms: f64,
    pub wall_ms: f64,
    pub server: Option<&'a ServerInfo>,
    pub model: Option<&'a Check>,
    pub summary: &'a Summary,
    pub requests: Vec<Row>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Outcome, RequestResult};

    #[test]
    fn csv_has_stable_columns_and_quotes_errors() {
        let burst = Burst {
            url: "u".into(),
            n: 2,
            run: "r".into(),
            released_unix_us: 0,
            release_spread: Duration::ZERO,
            wall: Duration::from_secs(1),
            results: vec![
                RequestResult {
                    index: 0,
                    scheduled: Duration::ZERO,
                    sent: Duration::from_micros(1500),
                    first_byte: Some(Duration::from_millis(900)),
                    done: Some(Duration::from_millis(1000)),
                    status: Some(200),
                    bytes: 42,
                    worker: Some("worker1".into()),
                    server_ms: Some(998.5),
                    pool_wait_ms: None,
                    cpu_ms: None,
                    outcome: Outcome::Http(200),
                },
                RequestResult {
                    outcome: Outcome::Io("reset, by peer".into()),
                    ..RequestResult::new(1)
                },
            ],
        };
        let text = csv(&rows(&burst, None));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], CSV_COLUMNS);
        assert_eq!(
            lines[1],
            "0,worker1,200,ok,1.5,900,1000,998.5,998.5,0,,42,,,,0,1000"
        );
        assert_eq!(lines[2], "1,,,error,0,,,,,,,0,\"reset, by peer\",,,0,");
        assert_eq!(lines.len(), 3);
    }
}
