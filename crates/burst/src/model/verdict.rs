//! The model's words: the shape it predicts ("waves of 4 every 1.00 s (4 waves)") and the verdict
//! on a burst, from what [`super::check`] found — one sentence, able to fail in both directions.

use std::time::Duration;

use twin_core::reply::plural;

use super::Prediction;
use crate::units::ms;

/// What [`super::check`] found, before it is put in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Finding {
    /// Requests failed: no answer, or not a 2xx.
    Failed { failed: usize },
    /// CPU work smeared by other work, but none finished sooner than the cores allow.
    CpuShared,
    /// CPU work that finished sooner than computing allows: why.
    TooSoon(String),
    /// CPU work that finished well after the model: the cores were shared.
    TooLate,
    /// Another number of waves, of these sizes.
    WaveCount { sizes: Vec<usize> },
    /// Wave `wave` (from 0) had `size` requests, not `expected`.
    WaveSize {
        wave: usize,
        size: usize,
        expected: usize,
    },
    /// Wave `wave` (from 0) began at `first`, not `expected`.
    WaveLate {
        wave: usize,
        first: Duration,
        expected: Duration,
    },
    /// As predicted but for a last wave that trails more than the machine's cost explains.
    TailTooLong,
    /// As predicted; CPU work a little late: the cores were shared a little.
    CpuTail,
    /// As predicted; the last request a little late: the cost of serving this many.
    Tail,
    /// As predicted.
    Exact,
}

/// What the words need besides the finding.
#[derive(Debug)]
pub(crate) struct Facts<'a> {
    pub(crate) n: usize,
    /// The model's shape: "waves of 4 every 1.00 s (4 waves)".
    pub(crate) shape: &'a str,
    pub(crate) last: Duration,
    pub(crate) model_last: Duration,
    pub(crate) worst: Duration,
    /// The CPU time the server measured per request, and how many threads on how many cores.
    pub(crate) measured: Option<Duration>,
    pub(crate) computing: (u32, u32),
}

/// The verdict, in one sentence (and the CPU the server measured, where it did).
pub(crate) fn sentence(finding: &Finding, facts: &Facts<'_>) -> String {
    let Facts {
        n,
        shape,
        last,
        model_last,
        worst,
        measured,
        computing,
    } = *facts;
    let verdict = match finding {
        Finding::Failed { failed } => {
            format!("{failed} of {n} requests failed (no answer, or not a 2xx); expected {shape}")
        }
        Finding::CpuShared => format!(
            "CPU-bound, as predicted: each worker computed its requests one after another and \
             none finished sooner than the cores allow; the last at {:.2} s (model {:.2} s; \
             the waves were smeared by other work on this machine)",
            last.as_secs_f64(),
            model_last.as_secs_f64()
        ),
        Finding::TooSoon(why) => format!("NOT as predicted: expected {shape}, but {why}"),
        Finding::TooLate => format!(
            "NOT as predicted: expected {shape}, but the last request finished at {:.2} s, {:.0} % \
             after the model's {:.2} s: something else was computing on these cores (another \
             burst, another program)",
            last.as_secs_f64(),
            (last.as_secs_f64() / model_last.as_secs_f64().max(1e-9) - 1.0) * 100.0,
            model_last.as_secs_f64()
        ),
        Finding::WaveCount { sizes } => {
            let sizes: Vec<String> = sizes.iter().map(ToString::to_string).collect();
            format!(
                "NOT as predicted: expected {shape}, but the completions came in {} (of {})",
                plural_waves(sizes.len()),
                sizes.join(", ")
            )
        }
        Finding::WaveSize {
            wave,
            size,
            expected,
        } => format!(
            "NOT as predicted: expected {shape}, but wave {} had {size} requests, not {expected}",
            wave + 1
        ),
        Finding::WaveLate {
            wave,
            first,
            expected,
        } => format!(
            "NOT as predicted: expected {shape}, but wave {}'s first request finished at \
             {:.2} s, predicted {:.2} s",
            wave + 1,
            first.as_secs_f64(),
            expected.as_secs_f64()
        ),
        Finding::TailTooLong => format!(
            "NOT as predicted: expected {shape}, but the last request finished {:.2} s after \
             the model's {:.2} s — more than this machine's cost per request explains",
            (last - model_last).as_secs_f64(),
            model_last.as_secs_f64()
        ),
        Finding::CpuTail => format!(
            "{shape}, as predicted; the last request finished {:.2} s after the model's {:.2} s \
             ({:.0} %): other work shared these cores a little (the page drawing, another program)",
            (last - model_last).as_secs_f64(),
            model_last.as_secs_f64(),
            (last.as_secs_f64() / model_last.as_secs_f64().max(1e-9) - 1.0) * 100.0
        ),
        Finding::Tail => {
            let beyond = last - model_last;
            let per_request = beyond.as_secs_f64() * 1e6 / n.max(1) as f64;
            let per_request = if per_request >= 1000.0 {
                format!("{:.1} ms", per_request / 1000.0)
            } else {
                format!("{per_request:.0} µs")
            };
            format!(
                "{shape}, as predicted; the last request finished {:.2} s after the model's {:.2} s: \
                 about {per_request} of server and client time per request on this machine",
                beyond.as_secs_f64(),
                model_last.as_secs_f64()
            )
        }
        Finding::Exact => format!(
            "{shape}, as predicted (largest deviation {:.0} ms)",
            ms(worst)
        ),
    };
    match measured {
        Some(cpu) => {
            let (threads, cores) = computing;
            format!(
                "{verdict} [the server measured {:.0} ms of CPU per request; {threads} on {}]",
                ms(cpu),
                plural(u64::from(cores), "core")
            )
        }
        None => verdict,
    }
}

pub(crate) fn plural_waves(n: usize) -> String {
    plural(n as u64, "wave")
}

/// "waves of 4 every 1.00 s (4 waves)" / "all 16 at once after 1.00 s" / "one at a time…".
pub fn describe(prediction: &Prediction, n: usize) -> String {
    if prediction.service.is_zero() {
        return format!("no wait: each of the {n} answered at once");
    }
    let s = duration_text(prediction.service);
    match prediction.parallel {
        _ if n == 1 => format!("1 request, done after {s}"),
        Some(1) => format!("one at a time, every {s} ({n} waves)"),
        Some(p) if usize::try_from(p).is_ok_and(|p| p < n) => {
            format!("waves of {p} every {s} ({} waves)", prediction.waves(n))
        }
        _ => format!("all {n} at once after {s}"),
    }
}

/// "1.00 s", or "40 ms" for what seconds would show as 0.04.
fn duration_text(d: Duration) -> String {
    if d >= Duration::from_millis(100) {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{:.0} ms", ms(d))
    }
}

pub(crate) fn ordinal(k: u32) -> String {
    let suffix = match (k % 10, k % 100) {
        (1, n) if n != 11 => "st",
        (2, n) if n != 12 => "nd",
        (3, n) if n != 13 => "rd",
        _ => "th",
    };
    format!("{k}{suffix}")
}
