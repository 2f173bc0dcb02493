//! Every request's id: its own `X-Request-Id` when it sent a good one, or one the twin makes
//! (`{pid}-{n}`). The id is echoed in the answer's header and body, in `/events` and on the stage,
//! so that a client can line its request up with the server's account of it — watched or not.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::json;

use crate::reply::Reply;

/// Longest `X-Request-Id` kept.
pub const MAX_ID: usize = 128;

/// Makes ids for requests that came without one: unique in this process. Cheap to clone; clones
/// share the count.
#[derive(Debug, Clone)]
pub struct Ids {
    pid: u32,
    next: Arc<AtomicU64>,
}

impl Ids {
    pub fn new(pid: u32) -> Ids {
        Ids {
            pid,
            next: Arc::new(AtomicU64::new(1)),
        }
    }

    /// A new id: `{pid}-{n}`.
    pub fn make(&self) -> String {
        format!("{}-{}", self.pid, self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// A request's id: its `X-Request-Id` when it sent a good one, or a new one. A bad one (empty,
    /// too long, or with spaces or control characters) gets the 400 at pick-up, under a new id.
    pub fn of(&self, header: Option<&[u8]>) -> (Arc<str>, Option<Reply>) {
        match header {
            None => (self.make().into(), None),
            Some(value) if valid(value) => (String::from_utf8_lossy(value).into(), None),
            Some(value) => (
                self.make().into(),
                Some(bad_request_id(&String::from_utf8_lossy(value))),
            ),
        }
    }
}

fn valid(value: &[u8]) -> bool {
    !value.is_empty() && value.len() <= MAX_ID && value.iter().all(|b| b.is_ascii_graphic())
}

/// An `X-Request-Id` that cannot be kept (it is echoed in headers, logs and the stage).
pub fn bad_request_id(received: &str) -> Reply {
    let shown: String = received.chars().take(64).collect();
    Reply::json(
        400,
        &json!({
            "error": "bad request id",
            "header": "X-Request-Id",
            "received": shown,
            "allowed": format!(
                "1 to {MAX_ID} visible ASCII characters, no spaces (or no header: the server makes one)"
            ),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_kept_made_or_refused() {
        let ids = Ids::new(7);
        assert_eq!(&*ids.of(Some(b"run1-3")).0, "run1-3");
        let (made, bad) = ids.of(None);
        assert!(made.starts_with("7-") && bad.is_none());
        let (_, bad) = ids.of(Some(b"has space"));
        assert_eq!(bad.map(|r| r.status), Some(400));
        assert!(ids.of(Some(&[b'a'; MAX_ID + 1])).1.is_some());
        assert_ne!(ids.make(), ids.clone().make(), "clones share the count");
    }
}
