//! The bad-input catalogue both twins answer alike, and the check that each answer is the stated
//! one and that the twin serves on at once.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::http::{get, parse_response};

/// What a twin does with a piece of bad input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Answers with this status.
    Status(u16),
    /// Closes the connection without an answer.
    Closed,
    /// Keeps waiting for the rest of a head that never ends; the check then makes sure the
    /// server serves others meanwhile.
    Open,
}

fn req(target: &str, extra: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n").into_bytes()
}

/// The bad-input catalogue: name, bytes to send, what both twins do (the same: they read every
/// head the same way, twin-core's `head.rs`).
pub fn bad_inputs() -> Vec<(&'static str, Vec<u8>, Expect)> {
    use Expect::Status;
    let big = |n: usize| format!("X-Big: {}\r\n", "a".repeat(n));
    let many: String = (0..10_000).map(|i| format!("X-H{i}: v\r\n")).collect();
    vec![
        (
            "non-HTTP garbage",
            b"\x16\x03\x01\x02\x00hello\r\n\r\n".to_vec(),
            Status(400),
        ),
        (
            "request line without target",
            b"GET\r\n\r\n".to_vec(),
            Status(400),
        ),
        (
            "request line without version",
            b"GET /io\r\n\r\n".to_vec(),
            Status(400),
        ),
        // The twins speak HTTP/1 only, and say so.
        (
            "HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            Status(400),
        ),
        (
            "64 KiB header block",
            req("/healthz", &big(64 * 1024)),
            Status(431),
        ),
        (
            "1 MiB header block",
            req("/healthz", &big(1 << 20)),
            Status(431),
        ),
        ("10,000 headers", req("/healthz", &many), Status(431)),
        (
            "100 KB URL",
            req(&format!("/io?ms={}", "1".repeat(100_000)), ""),
            Status(431),
        ),
        (
            "10 KB path",
            req(&format!("/{}", "a".repeat(10_000)), ""),
            Status(414),
        ),
        (
            "invalid percent-encoding",
            req("/io?ms=%ZZ", ""),
            Status(400),
        ),
        ("percent-encoded digits", req("/io?ms=%31", ""), Status(200)),
        ("duplicate parameter", req("/io?ms=1&ms=1", ""), Status(400)),
        (
            "conflicting parameters",
            req("/async-io-multi?tasks=2&tasks=3", ""),
            Status(400),
        ),
        (
            "huge number",
            req("/io?ms=99999999999999999999999999", ""),
            Status(400),
        ),
        ("negative number", req("/io?ms=-5", ""), Status(400)),
        ("unknown parameter", req("/io?sleep=5", ""), Status(400)),
        (
            "GET with a body",
            req("/io?ms=1", "Content-Length: 5\r\n\r\nhello"),
            Status(200),
        ),
        (
            "POST with a body",
            b"POST /io HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
                .to_vec(),
            Status(405),
        ),
        (
            "declared 2 MiB body",
            req("/io?ms=1", "Content-Length: 2097152\r\n"),
            Status(413),
        ),
        (
            "unparseable Content-Length",
            req("/io?ms=1", "Content-Length: 99999999999999999999999\r\n"),
            Status(400),
        ),
        (
            "HTTP/1.0",
            b"GET /io?ms=1 HTTP/1.0\r\n\r\n".to_vec(),
            Status(200),
        ),
        // RFC 9112 §2.2 lets a server accept a bare LF; both do.
        (
            "bare LF line ends",
            b"GET /io?ms=1 HTTP/1.1\nHost: t\nConnection: close\n\n".to_vec(),
            Status(200),
        ),
        (
            "non-ASCII path",
            "GET /ío HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                .as_bytes()
                .to_vec(),
            Status(400),
        ),
    ]
}

/// What happened to one piece of bad input.
#[derive(Debug)]
pub enum Outcome {
    Status(u16),
    Closed,
    Open(TcpStream),
}

/// Send `bytes` on a fresh connection; wait up to `wait` for an answer or a close.
pub fn send_bad(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Outcome {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(wait)).expect("timeout");
    // The server may answer (e.g. 431) and close before reading it all: a write error is fine.
    let _ = s.write_all(bytes);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(r) = parse_response(&buf) {
                    if r.body.len()
                        >= r.header("content-length")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0)
                    {
                        return Outcome::Status(r.status);
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return match parse_response(&buf) {
                    Some(r) => Outcome::Status(r.status),
                    None if buf.is_empty() => Outcome::Open(s),
                    None => Outcome::Closed,
                };
            }
            Err(_) => break,
        }
    }
    match parse_response(&buf) {
        Some(r) => Outcome::Status(r.status),
        None => Outcome::Closed,
    }
}

/// Run the whole catalogue against `addr`: every case gets exactly the answer the catalogue
/// states, and after each one the server answers a normal request at once.
pub fn assert_survives_bad_input(addr: SocketAddr) {
    for (name, bytes, expected) in bad_inputs() {
        let outcome = send_bad(addr, &bytes, Duration::from_millis(800));
        let got = match &outcome {
            Outcome::Status(s) => Expect::Status(*s),
            Outcome::Closed => Expect::Closed,
            Outcome::Open(_) => Expect::Open,
        };
        assert_eq!(got, expected, "{name} on {addr}");
        // Still serving — while a connection left open by the case is still open.
        let t = Instant::now();
        let health = get(addr, "/healthz");
        assert_eq!(health.status, 200, "after {name}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "after {name}: /healthz took {:?}",
            t.elapsed()
        );
        drop(outcome);
    }
}
