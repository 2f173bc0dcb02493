//! Durations as the reports show them: milliseconds, rounded where they are printed.

use std::time::Duration;

/// `d` in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `x` rounded to `decimals` places (3 in JSON and CSV: microseconds; 2 in tables).
pub fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// `d` in whole milliseconds, for the stage's messages.
pub fn whole_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
