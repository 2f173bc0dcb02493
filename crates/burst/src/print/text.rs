//! What a person reads: the per-request table, the text waterfall, the summary.
//!
//! Rows are in completion order, so a pool's waves read as a staircase: each wave's requests wait
//! (`·`) while the wave before is served (`█`).

use std::fmt::Write as _;
use std::time::Duration;

use crate::client::{Burst, Outcome, RequestResult};
use crate::experiment::{Cell, Status};
use crate::model::Check;
use crate::model::ServerKind;
use crate::stats::{completion_order, Summary};
use crate::units;

fn ms(d: Duration) -> f64 {
    units::round(units::ms(d), 2)
}

fn opt_ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.1}", ms(d)))
}

fn outcome_label(r: &RequestResult) -> String {
    match &r.outcome {
        Outcome::Http(status) => status.to_string(),
        Outcome::Timeout => "TIMEOUT".to_owned(),
        Outcome::Cancelled => "CANCELLED".to_owned(),
        other => format!("ERROR {}", other.error().unwrap_or_default()),
    }
}

/// The per-request table, in completion order.
pub fn table(burst: &Burst, check: Option<&Check>) -> String {
    table_fit(burst, check, usize::MAX)
}

/// The per-request table, no wider than `width` columns (a terminal on a projector is narrow):
/// the columns the others add up to go first — latency (= served + waiting), then the model's
/// time, then waiting — so what is left still lines up with the server's log.
pub fn table_fit(burst: &Burst, check: Option<&Check>, width: usize) -> String {
    // The full table is 90 columns and a status; each step leaves one column out.
    let (latency, model, waiting) = match width {
        w if w >= 100 => (true, true, true),
        w if w >= 88 => (false, true, true),
        w if w >= 77 => (false, false, true),
        _ => (false, false, false),
    };
    let mut s = String::new();
    let mut head = format!("{:>5}  {:<9} {:>9}", "#", "worker", "done(s)");
    if latency {
        head.push_str(&format!(" {:>11}", "latency(ms)"));
    }
    head.push_str(&format!(" {:>10}", "served(ms)"));
    if waiting {
        head.push_str(&format!(" {:>11}", "waiting(ms)"));
    }
    if model {
        head.push_str(&format!(" {:>10}", "model(s)"));
    }
    let _ = writeln!(s, "{head}  status");
    for i in completion_order(burst) {
        let r = &burst.results[i];
        let predicted = check
            .and_then(|c| c.predicted.get(i).copied().flatten())
            .map_or_else(|| "-".to_owned(), |d| format!("{:.2}", d.as_secs_f64()));
        let done = r
            .done
            .map_or_else(|| "-".to_owned(), |d| format!("{:.3}", d.as_secs_f64()));
        let mut line = format!(
            "{:>5}  {:<9} {:>9}",
            r.index,
            r.worker.as_deref().unwrap_or("-"),
            done
        );
        if latency {
            line.push_str(&format!(" {:>11}", opt_ms(r.latency())));
        }
        // Served + waiting = latency: a wait for a thread-pool slot counts as waiting.
        line.push_str(&format!(" {:>10}", opt_ms(r.served())));
        if waiting {
            line.push_str(&format!(" {:>11}", opt_ms(r.waiting())));
        }
        if model {
            line.push_str(&format!(" {:>10}", predicted));
        }
        let _ = writeln!(s, "{line}  {}", outcome_label(r));
    }
    s
}

/// A tick step from 1-2-5 steps that gives at most `max_ticks` ticks over `span`.
pub fn tick_step(span: Duration, max_ticks: usize) -> Duration {
    let span = span.as_secs_f64().max(0.001);
    let mut step = 0.001;
    loop {
        for m in [1.0, 2.0, 5.0] {
            let s = step * m;
            if span / s <= max_ticks.max(1) as f64 {
                return Duration::from_secs_f64(s);
            }
        }
        step *= 10.0;
    }
}

fn fmt_tick(t: Duration, step: Duration) -> String {
    let secs = t.as_secs_f64();
    if step >= Duration::from_secs(1) {
        format!("{secs:.0}s")
    } else if step >= Duration::from_millis(100) {
        format!("{secs:.1}s")
    } else {
        format!("{:.0}ms", secs * 1000.0)
    }
}

/// Options for the waterfall.
#[derive(Debug, Clone, Copy)]
pub struct WaterfallStyle {
    /// Total width in columns.
    pub width: usize,
    /// At most this many rows; larger bursts are sampled evenly by completion order.
    pub max_rows: usize,
    /// ANSI colours by worker.
    pub color: bool,
}

const COLORS: [&str; 6] = ["32", "34", "35", "36", "33", "31"];

fn worker_number(name: &str) -> Option<usize> {
    name.trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

/// The text waterfall: one row per request in completion order, waiting `·`, served `█`.
pub fn waterfall(burst: &Burst, style: WaterfallStyle) -> String {
    let mut s = String::new();
    let label_w = 17;
    let tail_w = 9;
    let bar_w = style.width.saturating_sub(label_w + tail_w).clamp(20, 200);
    let span = burst.span().max(Duration::from_millis(1));
    let col = |t: Duration| -> usize {
        ((t.as_secs_f64() / span.as_secs_f64()) * bar_w as f64).round() as usize
    };
    let ok = || burst.results.iter().filter(|r| r.is_ok());
    // Steady traffic has no release: its requests go out on a schedule.
    let since = if burst.results.iter().any(|r| r.scheduled > Duration::ZERO) {
        "time since the first was sent"
    } else {
        "time since release"
    };
    if ok().any(|r| r.service_started().is_some()) || ok().next().is_none() {
        let _ = writeln!(
            s,
            "waterfall: · waiting (for a worker, a loop or a thread-pool slot)   █ being served   \
             ({since} →)"
        );
    }
    if ok().any(|r| r.service_started().is_none()) {
        let _ = writeln!(
            s,
            "waterfall: ▒ in flight — the server reports no timings (Server-Timing: app;dur=…), \
             so its wait and its service cannot be told apart   ({since} →)"
        );
    }
    // Axis: tick labels above the bars.
    let step = tick_step(span, (bar_w / 10).max(1));
    let mut axis = vec![' '; bar_w + 8];
    let mut t = Duration::ZERO;
    while t <= span {
        let c = col(t);
        for (k, ch) in fmt_tick(t, step).chars().enumerate() {
            if let Some(slot) = axis.get_mut(c + k) {
                *slot = ch;
            }
        }
        t += step;
    }
    let _ = writeln!(
        s,
        "{:>label_w$}{}",
        "",
        axis.iter().collect::<String>().trim_end()
    );
    let order = completion_order(burst);
    let shown: Vec<usize> = if order.len() <= style.max_rows.max(1) {
        order.clone()
    } else {
        let rows = style.max_rows.max(1);
        (0..rows)
            .map(|k| order[k * (order.len() - 1) / (rows - 1).max(1)])
            .collect()
    };
    for &i in &shown {
        let r = &burst.results[i];
        let end = r.done.unwrap_or(span);
        // Without the server's timings, when serving began is unknown: the whole time in
        // flight is one neutral bar, never a guessed wait.
        let untimed = r.is_ok() && r.service_started().is_none();
        let served_from = if untimed {
            r.sent
        } else {
            r.service_started().unwrap_or(end)
        };
        let (a, b, c) = (col(r.sent), col(served_from.max(r.sent)), col(end));
        let dots = b.saturating_sub(a);
        // A completed request always shows at least one block, however short.
        let served_len = c.saturating_sub(b).max(usize::from(r.is_ok()));
        let mut bar = " ".repeat(a) + &"·".repeat(dots);
        let served = if untimed { "▒" } else { "█" }.repeat(served_len);
        let worker = r.worker.as_deref().unwrap_or("-");
        match worker_number(worker).filter(|_| style.color) {
            Some(k) => {
                let _ = write!(bar, "\x1b[{}m{served}\x1b[0m", COLORS[k % COLORS.len()]);
            }
            None => bar.push_str(&served),
        }
        let tail = match &r.outcome {
            Outcome::Http(_) if r.is_ok() => format!("{:.2}s", end.as_secs_f64()),
            Outcome::Http(status) => format!("✗ {status}"),
            Outcome::Timeout => "✗ timeout".to_owned(),
            Outcome::Cancelled => "✗ cancelled".to_owned(),
            Outcome::Connect(_) | Outcome::Io(_) => "✗ error".to_owned(),
        };
        let pad = (bar_w + 1).saturating_sub(a + dots + served_len);
        let _ = writeln!(
            s,
            "{:>5} {:<10} {bar}{} {tail}",
            r.index,
            worker,
            " ".repeat(pad)
        );
    }
    if shown.len() < order.len() {
        let _ = writeln!(
            s,
            "(showing {} of {} requests, evenly spread over the completion order; --rows for more)",
            shown.len(),
            order.len()
        );
    }
    s
}

/// The summary block.
/// The summary block; with `color`, the model's verdict is green when the burst came out as
/// predicted and red when it did not.
/// `unknown` says why there is no model when the server could not be asked.
pub fn summary_text(
    sum: &Summary,
    check: Option<&Check>,
    unknown: Option<&str>,
    color: bool,
) -> String {
    let mut s = String::new();
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    let _ = writeln!(
        s,
        "total {:.3} s for {} requests (released within {:.1} ms)",
        sum.wall_ms / 1000.0,
        sum.requests,
        sum.release_spread_ms
    );
    let _ = writeln!(
        s,
        "latency ms (2xx answers): min {}  p50 {}  p90 {}  p99 {}  max {}",
        f(sum.min_ms),
        f(sum.p50_ms),
        f(sum.p90_ms),
        f(sum.p99_ms),
        f(sum.max_ms)
    );
    let workers: Vec<String> = sum
        .per_worker
        .iter()
        .map(|(w, n)| format!("{w} {n}"))
        .collect();
    // Thousands of worker threads (--threads) are a count and a range, not a line each.
    let counts = || sum.per_worker.values().copied();
    let per_worker = match workers.len() {
        0 => "-".to_owned(),
        k if k > 16 => {
            let (low, high) = (counts().min().unwrap_or(0), counts().max().unwrap_or(0));
            let each = if low == high {
                twin_core::reply::plural(low as u64, "request")
            } else {
                format!("{low}–{high} requests")
            };
            format!("{k} workers, {each} each")
        }
        _ => workers.join(", "),
    };
    let _ = writeln!(s, "per worker: {per_worker}");
    let statuses: Vec<String> = sum
        .statuses
        .iter()
        .map(|(k, n)| format!("{n} × {k}"))
        .collect();
    let _ = writeln!(
        s,
        "status: {}   (timeouts {}, errors {})",
        statuses.join(", "),
        sum.timeouts,
        sum.errors
    );
    match check {
        Some(c) => s.push_str(&model_line(&c.verdict, c.as_predicted, color)),
        None => {
            let why = if let Some(why) = unknown {
                why
            } else if sum.statuses.get("404") == Some(&sum.requests) {
                "the server has no such route (404)"
            } else {
                "the server publishes no queueing rule for this route at GET /; give one with \
                 --model pool|event-loop"
            };
            let _ = writeln!(s, "model: no prediction ({why})");
        }
    }
    s
}

/// `model: …` and its verdict, green as predicted, bold red not (with `color`).
pub fn model_line(verdict: &str, as_predicted: bool, color: bool) -> String {
    let (on, off) = match (color, as_predicted) {
        (false, _) => ("", ""),
        (true, true) => ("\x1b[32m", "\x1b[0m"),
        (true, false) => ("\x1b[1;31m", "\x1b[0m"),
    };
    format!("{on}model: {verdict}{off}\n")
}

/// The comparison table: a row per route × burst size, a column per server — each with its total
/// time and a mark (✓ as predicted, ✗ not as predicted, ! requests failed, - no model) — and,
/// after the last server of each kind, that kind's model.
pub fn compare_table(cells: &[Cell]) -> String {
    let mut servers: Vec<(&str, Option<ServerKind>)> = Vec::new();
    let mut rows: Vec<(&str, usize)> = Vec::new();
    for c in cells {
        if !servers.iter().any(|(s, _)| *s == c.server) {
            servers.push((&c.server, c.kind));
        }
        if !rows.contains(&(c.route.as_str(), c.n)) {
            rows.push((&c.route, c.n));
        }
    }
    // Columns: each server, and a model column after the last server of each kind.
    let mut columns: Vec<(String, Option<ServerKind>, bool)> = Vec::new();
    for (k, (name, kind)) in servers.iter().enumerate() {
        columns.push(((*name).to_owned(), *kind, false));
        let last_of_kind = !servers[k + 1..].iter().any(|(_, other)| other == kind);
        if let (true, Some(kind)) = (last_of_kind, kind) {
            columns.push((format!("model ({kind})"), Some(*kind), true));
        }
    }
    let width = |title: &str| title.chars().count().max(9);
    let mut s = String::new();
    let _ = write!(s, "{:<18} {:>6}", "route", "n");
    for (title, _, _) in &columns {
        let _ = write!(s, "  {:>w$}", title, w = width(title));
    }
    s.push('\n');
    let mut judged = (0, 0);
    let mut any_own = false;
    for (route, n) in &rows {
        let _ = write!(s, "{route:<18} {n:>6}");
        for (title, kind, is_model) in &columns {
            let text = if *is_model {
                cells
                    .iter()
                    .filter(|c| c.route == *route && c.n == *n && c.kind == *kind)
                    .find_map(|c| c.experiment.check.as_ref())
                    .map_or("-".to_owned(), |k| {
                        format!("{:.2}", k.prediction.done_at(*n).as_secs_f64())
                    })
            } else {
                match cells
                    .iter()
                    .find(|c| c.route == *route && c.n == *n && c.server == *title)
                {
                    None => "-".to_owned(),
                    Some(c) => {
                        let e = &c.experiment;
                        let mark = match (e.status(), &e.check) {
                            (Status::Failed, _) => "!",
                            (_, None) => "-",
                            (Status::NotAsPredicted, _) => "✗",
                            (Status::Ok, Some(_)) => "✓",
                        };
                        if e.check.is_some() {
                            judged.1 += 1;
                            judged.0 += usize::from(e.status() == Status::Ok);
                        }
                        // A server whose loops got the burst unevenly has a model of its own.
                        let own = e.check.as_ref().filter(|k| {
                            k.predicted_last.abs_diff(k.prediction.done_at(*n))
                                > Duration::from_millis(1)
                        });
                        any_own |= own.is_some();
                        match own {
                            Some(k) => format!(
                                "{:.2} {mark} (model {:.2})",
                                e.summary.wall_ms / 1000.0,
                                k.predicted_last.as_secs_f64()
                            ),
                            None => format!("{:.2} {mark}", e.summary.wall_ms / 1000.0),
                        }
                    }
                }
            };
            let _ = write!(s, "  {:>w$}", text, w = width(title));
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "times in seconds, for the last request to finish; {} of {} judged cells as predicted\n\
         ✓ as predicted, ✗ NOT as predicted, ! requests failed",
        judged.0, judged.1
    );
    if any_own {
        let _ = writeln!(
            s,
            "(model …): the model's time where the connections spread unevenly over the loops or worker processes"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::summarize;

    fn result(index: usize, sent: u64, done: u64, server: f64, worker: &str) -> RequestResult {
        RequestResult {
            index,
            scheduled: Duration::ZERO,
            sent: Duration::from_millis(sent),
            first_byte: Some(Duration::from_millis(done)),
            done: Some(Duration::from_millis(done)),
            status: Some(200),
            bytes: 100,
            worker: Some(worker.into()),
            server_ms: Some(server),
            pool_wait_ms: None,
            cpu_ms: None,
            outcome: Outcome::Http(200),
        }
    }

    fn two_waves() -> Burst {
        Burst {
            url: "http://x/io".into(),
            n: 4,
            run: "r".into(),
            released_unix_us: 0,
            release_spread: Duration::from_millis(1),
            wall: Duration::from_millis(2000),
            results: vec![
                result(0, 0, 2000, 1000.0, "worker0"),
                result(1, 0, 1000, 1000.0, "worker1"),
                result(2, 0, 1000, 1000.0, "worker0"),
                RequestResult {
                    outcome: Outcome::Timeout,
                    done: None,
                    first_byte: None,
                    status: None,
                    server_ms: None,
                    worker: None,
                    ..result(3, 0, 0, 0.0, "-")
                },
            ],
        }
    }

    #[test]
    fn the_waterfall_draws_a_staircase() {
        let style = WaterfallStyle {
            width: 66,
            max_rows: 50,
            color: false,
        };
        let w = waterfall(&two_waves(), style);
        let rows: Vec<&str> = w.lines().skip(2).collect();
        assert!(
            !w.contains('▒'),
            "every request has the server's timings: {w}"
        );
        assert_eq!(rows.len(), 4, "{w}");
        // Completion order: 1, 2 (first wave), 0 (second wave), 3 (timed out) last.
        assert!(rows[0].trim_start().starts_with("1 worker1"), "{w}");
        assert!(rows[2].trim_start().starts_with("0 worker0"), "{w}");
        // The first wave is served from the start; the second waits half the span, then is served.
        let bar = |row: &str| row.chars().skip(17).collect::<String>();
        assert!(bar(rows[0]).starts_with('█'), "{w}");
        assert!(!bar(rows[0]).contains('·'), "{w}");
        let second = bar(rows[2]);
        let dots = second.chars().take_while(|&c| c == '·').count();
        let blocks = second.chars().skip(dots).take_while(|&c| c == '█').count();
        assert!((dots as i64 - blocks as i64).abs() <= 1 && dots > 10, "{w}");
        assert!(rows[3].ends_with("✗ timeout"), "{w}");
        assert!(
            w.lines().nth(1).unwrap().contains("2.0s"),
            "axis has ticks: {w}"
        );
    }

    #[test]
    fn the_table_narrows_to_the_terminal_by_leaving_out_what_adds_up() {
        let b = two_waves();
        let wide = table_fit(&b, None, 120);
        assert!(
            wide.contains("latency(ms)") && wide.contains("model(s)"),
            "{wide}"
        );
        let narrow = table_fit(&b, None, 64);
        assert!(
            !narrow.contains("latency(ms)") && !narrow.contains("model(s)"),
            "{narrow}"
        );
        assert!(
            narrow.contains("served(ms)") && narrow.contains("done(s)"),
            "{narrow}"
        );
        for line in narrow.lines() {
            assert!(line.chars().count() <= 64, "{line:?} is wider than 64");
        }
    }

    #[test]
    fn without_server_timings_a_request_is_one_neutral_bar() {
        let mut b = two_waves();
        for r in &mut b.results {
            r.server_ms = None;
        }
        let w = waterfall(
            &b,
            WaterfallStyle {
                width: 66,
                max_rows: 50,
                color: false,
            },
        );
        assert!(
            w.contains("▒ in flight — the server reports no timings"),
            "{w}"
        );
        let rows: Vec<&str> = w.lines().skip(2).collect();
        for row in &rows[..3] {
            assert!(!row.contains('·') && !row.contains('█'), "{w}");
        }
        let bar = |row: &str| row.chars().skip(17).collect::<String>();
        // The slow one (2 s) is all ▒: no invented wait.
        let slow = bar(rows[2]);
        assert!(
            slow.starts_with('▒') && !slow.contains('·') && !slow.contains('█'),
            "{w}"
        );
        let t = table(&b, None);
        for row in t.lines().skip(1).take(3) {
            let waiting = row.split_whitespace().nth(5);
            assert_eq!(waiting, Some("-"), "no waiting time is made up: {t}");
        }
    }

    #[test]
    fn big_bursts_are_sampled_not_truncated() {
        let mut b = two_waves();
        b.results = (0..1000)
            .map(|i| result(i, 0, 1000 + i as u64, 1000.0, "worker0"))
            .collect();
        b.n = 1000;
        let w = waterfall(
            &b,
            WaterfallStyle {
                width: 80,
                max_rows: 10,
                color: false,
            },
        );
        assert!(w.contains("showing 10 of 1000"), "{w}");
        assert!(
            w.lines().any(|l| l.trim_start().starts_with("999 ")),
            "last one is shown: {w}"
        );
    }

    #[test]
    fn summary_counts_failures_and_percentiles() {
        let sum = summarize(&two_waves());
        assert_eq!((sum.ok, sum.timeouts, sum.errors), (3, 1, 0));
        assert_eq!(sum.statuses.get("200"), Some(&3));
        assert_eq!(sum.statuses.get("timeout"), Some(&1));
        assert_eq!(sum.p50_ms, Some(1000.0));
        assert_eq!(sum.max_ms, Some(2000.0));
        assert_eq!(sum.per_worker.get("worker0"), Some(&2));
        let text = summary_text(&sum, None, None, false);
        assert!(text.contains("timeouts 1"), "{text}");
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(Duration::from_secs(4), 4), Duration::from_secs(1));
        assert_eq!(
            tick_step(Duration::from_secs(4), 8),
            Duration::from_millis(500)
        );
        assert_eq!(
            tick_step(Duration::from_millis(600), 8),
            Duration::from_millis(100)
        );
        assert_eq!(
            tick_step(Duration::from_secs(25), 6),
            Duration::from_secs(5)
        );
    }
}
