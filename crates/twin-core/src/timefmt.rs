//! Local-time stamps: the access log's `2024-10-29 17:04:15` and the bodies' RFC 3339 times.
//!
//! Every request writes one or two of these, so the part that changes once a second (the date,
//! the time to the second, the UTC offset) is formatted once per second per thread and reused.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Local};

/// One second, formatted both ways.
struct Second {
    unix: i64,
    /// `2024-10-29 17:04:15`
    log: String,
    /// `2024-10-29T17:04:15`
    iso: String,
    /// `+01:00`
    offset: String,
}

thread_local! {
    static CACHE: RefCell<Option<Second>> = const { RefCell::new(None) };
}

/// Whole seconds since the epoch and the milliseconds within that second.
fn split(at: SystemTime) -> (i64, u32) {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_millis(),
        ),
        Err(_) => (0, 0),
    }
}

fn with_second<R>(unix: i64, f: impl FnOnce(&Second) -> R) -> R {
    CACHE.with(|cell| {
        let mut cache = cell.borrow_mut();
        match cache.as_ref() {
            Some(second) if second.unix == unix => f(second),
            _ => {
                let t: DateTime<Local> = DateTime::from_timestamp(unix, 0)
                    .unwrap_or_default()
                    .with_timezone(&Local);
                f(cache.insert(Second {
                    unix,
                    log: t.format("%Y-%m-%d %H:%M:%S").to_string(),
                    iso: t.format("%Y-%m-%dT%H:%M:%S").to_string(),
                    offset: t.format("%:z").to_string(),
                }))
            }
        }
    })
}

/// `2024-10-29 17:04:15`, or `2024-10-29 17:04:15.123` with `millis`.
pub fn log_stamp(at: SystemTime, millis: bool) -> String {
    let (unix, ms) = split(at);
    with_second(unix, |s| {
        let mut out = s.log.clone();
        if millis {
            let _ = write!(out, ".{ms:03}");
        }
        out
    })
}

/// `2024-10-29T17:04:15.123+01:00`.
pub fn rfc3339_ms(at: SystemTime) -> String {
    let (unix, ms) = split(at);
    with_second(unix, |s| format!("{}.{ms:03}{}", s.iso, s.offset))
}

/// µs since the Unix epoch (0 before it): how the access log and `/events` carry a moment.
pub fn unix_micros(at: SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::SecondsFormat;
    use std::time::Duration;

    #[test]
    fn cached_stamps_match_chrono() {
        for offset_ms in [0u64, 1, 999, 1000, 86_400_123, 1_730_221_455_123] {
            let at = UNIX_EPOCH + Duration::from_millis(offset_ms);
            let t: DateTime<Local> = at.into();
            assert_eq!(
                rfc3339_ms(at),
                t.to_rfc3339_opts(SecondsFormat::Millis, false)
            );
            assert_eq!(
                log_stamp(at, false),
                t.format("%Y-%m-%d %H:%M:%S").to_string()
            );
            assert_eq!(
                log_stamp(at, true),
                t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
            );
        }
    }
}
