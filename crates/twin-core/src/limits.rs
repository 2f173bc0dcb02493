//! Limits on what a request may bring, the same on both twins, each answered with its own status
//! and a JSON body that states the limit.
//!
//! gunicorn caps the request line at 4094 bytes and headers at 100 fields of 8190 bytes; uvicorn
//! (h11) caps the head at 16 KiB. These are of that order, generous for curl and burst.

use crate::reply::Reply;

/// The request target (path and query): beyond it, 414.
pub const MAX_TARGET_BYTES: usize = 8 * 1024;
/// Header fields: beyond it, 431.
pub const MAX_HEADERS: usize = 100;
/// The whole head, request line and headers: beyond it, 431.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// A declared body (no route reads one): beyond it, 413.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// The answer to a head with too many fields or too many bytes. One answer for both: the
/// event-loop twin's HTTP parser refuses such a head before the twin sees it, without saying
/// which limit it met, and both twins must answer alike.
pub fn head_too_large() -> Reply {
    Reply::too_large(
        431,
        "request header fields too large",
        format!(
            "a request head may have at most {MAX_HEADERS} header fields and \
             {MAX_HEAD_BYTES} bytes"
        ),
    )
}

/// The answer to a request over the target or body limit, or `None` when it is within both. (A
/// head over [`MAX_HEADERS`] or [`MAX_HEAD_BYTES`] never gets this far: each twin's HTTP layer
/// refuses it while reading it, with [`head_too_large`].)
pub fn check(target_bytes: usize, body_bytes: Option<u64>) -> Option<Reply> {
    if target_bytes > MAX_TARGET_BYTES {
        return Some(Reply::too_large(
            414,
            "URI too long",
            format!("the request target is {target_bytes} bytes; at most {MAX_TARGET_BYTES}"),
        ));
    }
    match body_bytes {
        Some(n) if n > MAX_BODY_BYTES => Some(Reply::too_large(
            413,
            "content too large",
            format!("a body of {n} bytes; at most {MAX_BODY_BYTES} (no route reads a body)"),
        )),
        _ => None,
    }
}

/// Read a request head off `stream` and drop it, blocking up to `timeout` a read: for a connection
/// no HTTP server has read, before answering it — closing a socket with unread bytes would reset
/// it. Fails on a head over [`MAX_HEAD_BYTES`], a timeout, or a client that went away.
pub fn skip_head(
    stream: &mut std::net::TcpStream,
    timeout: std::time::Duration,
) -> std::io::Result<()> {
    use std::io::{self, Read};
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(timeout))?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD_BYTES {
            return Err(io::Error::other("request head too large"));
        }
        match stream.read(&mut chunk)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => head.extend_from_slice(&chunk[..n]),
        }
    }
    stream.set_read_timeout(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_has_its_status() {
        assert!(check(100, Some(10)).is_none());
        assert_eq!(
            check(MAX_TARGET_BYTES + 1, None).map(|r| r.status),
            Some(414)
        );
        let r = check(100, Some(MAX_BODY_BYTES + 1)).unwrap();
        assert_eq!(r.status, 413);
        assert!(
            r.body.contains("1048576"),
            "the limit is stated: {}",
            r.body
        );
        assert_eq!(head_too_large().status, 431);
    }
}
