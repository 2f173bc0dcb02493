//! One strict reading of a request head, for both twins.
//!
//! The twins promise the same answer to the same bytes. Their HTTP layers read a head with the
//! same parser: the event loop's hyper parses with `httparse` and frames a body by RFC 9112 §6,
//! and the pool's tiny_http is patched to do exactly that (vendor/tiny_http/PATCH.md, entry 4).
//! What neither layer checks, both twins check here, before a worker sees the request:
//!
//! - the target is a URI as hyper accepts it ([`target`]; a non-ASCII byte is not);
//! - an HTTP/1.1 request names its host exactly once (RFC 9112 §3.2: "MUST respond with a 400");
//! - a header value is visible ASCII, spaces and tabs: RFC 9110 §5.5 lets a recipient refuse
//!   other bytes, and the twins echo and log what they read.
//!
//! A head refused here, or by either HTTP layer, gets [`refusal`]'s JSON 400 (or the shared 431)
//! and the connection is closed: after a head it cannot trust, a server cannot tell where the
//! next request begins.

use std::time::SystemTime;

use serde_json::json;

use crate::reply::{Reply, JSON};
use crate::route::ServerKind;

/// What both twins allow in a head, said in every refusal.
const ALLOWED: &str = "a request line `METHOD /target HTTP/1.1` (or HTTP/1.0) with a target of \
     visible ASCII; header fields `Name: value` with values of visible ASCII, spaces and tabs; in \
     HTTP/1.1 exactly one Host; at most one Content-Length (digits), or a Transfer-Encoding \
     ending in chunked (HTTP/1.1 only)";

/// The answer to a head an HTTP layer refused (hyper's empty 400, tiny_http's `httparse`
/// error, a framing it cannot trust): the same on both, as neither says which rule it met.
pub fn malformed() -> Reply {
    refused("the request head is not HTTP/1.1 as RFC 9112 defines it".to_owned())
}

/// A head this module refused: what was wrong, and what is allowed.
fn refused(detail: String) -> Reply {
    let body = json!({ "error": "bad request", "detail": detail, "allowed": ALLOWED });
    Reply {
        status: 400,
        content_type: JSON,
        headers: vec![("Connection", "close".to_owned())],
        body: body.to_string() + "\n",
    }
}

/// The refusal a twin's HTTP layer answers with `status` (400 or 431).
pub fn refusal(status: u16) -> Reply {
    match status {
        431 => crate::limits::head_too_large(),
        _ => malformed(),
    }
}

/// Parse a request target as hyper does (`http::Uri`): a twin routes and logs the result, so
/// `/io?ms=5#frag` is `/io?ms=5` on both, and a byte hyper refuses is refused on both.
/// A target hyper refuses gets hyper's (unspecific) refusal on both.
pub fn target(raw: &str) -> Result<http::Uri, Reply> {
    raw.parse::<http::Uri>().map_err(|_| malformed())
}

/// The twins' own rules for a head their HTTP layer accepted (see the module docs): `target` is
/// the request's URI as [`target`] (hyper, on the event loop) read it, `http11` whether the request
/// line said HTTP/1.1, `headers` each field's name and value.
pub fn check<'a>(
    target: &http::Uri,
    http11: bool,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<(), Reply> {
    // `http::Uri` keeps a scheme and an authority to ASCII; its path and query may hold more.
    let path_and_query = target.path_and_query().map_or("", |p| p.as_str());
    if let Some(b) = path_and_query.bytes().find(|b| !b.is_ascii_graphic()) {
        return Err(refused(format!(
            "the request target {:?} has a byte that is not visible ASCII (0x{b:02x}): \
             percent-encode it",
            shorten(path_and_query)
        )));
    }
    let mut hosts = 0;
    for (name, value) in headers {
        if let Some(b) = value
            .iter()
            .find(|b| !(b.is_ascii_graphic() || **b == b' ' || **b == b'\t'))
        {
            return Err(refused(format!(
                "the {} header has a byte that is not visible ASCII (0x{b:02x})",
                name.to_ascii_lowercase()
            )));
        }
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }
    if http11 && hosts != 1 {
        return Err(refused(format!(
            "an HTTP/1.1 request must have exactly one Host header; this one has {hosts}"
        )));
    }
    Ok(())
}

/// The `Server` header both twins send: which twin answered.
pub fn server(kind: ServerKind) -> &'static str {
    kind.binary()
}

/// Headers on every answer, from either twin, with the reply's own: `Cache-Control: no-store`
/// (a measurement must never come from a cache) and `Server`. The HTTP layer adds `Date`,
/// `Content-Length` and `Connection`.
pub fn every_answer(reply: &Reply, kind: ServerKind) -> Vec<(&'static str, String)> {
    let mut out = Vec::with_capacity(reply.headers.len() + 3);
    out.push(("Content-Type", reply.content_type.to_owned()));
    if !reply.headers.iter().any(|(n, _)| *n == "Cache-Control") {
        out.push(("Cache-Control", "no-store".to_owned()));
    }
    out.push(("Server", server(kind).to_owned()));
    out.extend(reply.headers.iter().cloned());
    out
}

/// A refusal as bytes on the wire, written where no HTTP layer writes it (tiny_http's reader,
/// hyper's empty answer replaced): the headers of [`every_answer`] with `Date`,
/// `Connection: close` and `Content-Length`.
pub fn refusal_bytes(reply: &Reply, kind: ServerKind) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut out = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (name, value) in every_answer(reply, kind) {
        if name != "Connection" {
            let _ = write!(out, "{name}: {value}\r\n");
        }
    }
    let _ = write!(
        out,
        "Date: {}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}",
        http_date(SystemTime::now()),
        reply.body.len(),
        reply.body
    );
    out.into_bytes()
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// `Tue, 01 Dec 2026 17:04:15 GMT` (RFC 9110 §5.6.7).
pub fn http_date(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// At most 64 characters of what a client sent, for an error body.
fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<'a>(pairs: &'a [(&'a str, &'a str)]) -> Vec<(&'a str, &'a [u8])> {
        pairs.iter().map(|(n, v)| (*n, v.as_bytes())).collect()
    }

    fn uri(raw: &str) -> http::Uri {
        target(raw).unwrap_or_default()
    }

    #[test]
    fn http11_needs_exactly_one_host() {
        assert!(check(&uri("/io"), true, h(&[("Host", "a")])).is_ok());
        assert!(
            check(&uri("/io"), false, h(&[])).is_ok(),
            "HTTP/1.0 needs none"
        );
        let none = check(&uri("/io"), true, h(&[])).unwrap_err();
        assert_eq!(none.status, 400);
        assert!(none.body.contains("has 0"), "{}", none.body);
        let two = check(&uri("/io"), true, h(&[("Host", "a"), ("host", "b")])).unwrap_err();
        assert!(two.body.contains("has 2"), "{}", two.body);
        assert_eq!(
            two.headers,
            vec![("Connection", "close".to_owned())],
            "closed after"
        );
    }

    #[test]
    fn values_must_be_visible_ascii_and_targets_uris() {
        let bad: &[u8] = b"caf\xc3\xa9";
        let err = check(
            &uri("/io"),
            true,
            [("Host", &b"a"[..]), ("X-Request-Id", bad)],
        )
        .unwrap_err();
        assert!(err.body.contains("x-request-id header"), "{}", err.body);
        assert!(check(&uri("/io"), true, [("Host", &b"a\tb c"[..])]).is_ok());
        assert!(check(&uri("/\u{e9}"), true, h(&[("Host", "a")])).is_err());
        assert_eq!(
            target("/io?ms=5#frag").map(|u| u.to_string()).ok(),
            Some("/io?ms=5".to_owned())
        );
    }

    #[test]
    fn refusal_bytes_say_everything_once() {
        let bytes = refusal_bytes(&malformed(), ServerKind::Pool);
        let text = String::from_utf8(bytes).unwrap_or_default();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        for name in [
            "Content-Type",
            "Cache-Control",
            "Server",
            "Date",
            "Connection",
        ] {
            assert_eq!(
                text.matches(&format!("{name}: ")).count(),
                1,
                "{name}: {text}"
            );
        }
        let (_, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert!(text.contains(&format!("Content-Length: {}\r\n", body.len())));
    }
}
