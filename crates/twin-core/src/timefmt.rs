//! Local-time stamps: the access log's `2024-10-29 17:04:15` and the bodies' RFC 3339 times.

use std::time::SystemTime;

use chrono::{DateTime, Local, SecondsFormat};

/// `2024-10-29 17:04:15`, or `2024-10-29 17:04:15.123` with `millis`.
pub fn log_stamp(at: SystemTime, millis: bool) -> String {
    let t: DateTime<Local> = at.into();
    if millis {
        t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    }
}

/// `2024-10-29T17:04:15.123+01:00`.
pub fn rfc3339_ms(at: SystemTime) -> String {
    let t: DateTime<Local> = at.into();
    t.to_rfc3339_opts(SecondsFormat::Millis, false)
}
