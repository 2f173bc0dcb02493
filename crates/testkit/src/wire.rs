//! Bytes on the wire, for the tests that hold both twins to the same answers: send a raw byte
//! stream, read every response until the server closes (or goes quiet), and compare two twins'
//! answers by what a client can see — status, body and the set of header names.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// One response as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `(lower-case name, value)`, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    /// The header names, lower-case, each once.
    pub fn names(&self) -> BTreeSet<String> {
        self.headers.iter().map(|(n, _)| n.clone()).collect()
    }
}

/// What became of a byte stream: the answers, in order, and how the connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub answers: Vec<Answer>,
    /// The server closed the connection (rather than keeping it open past the wait).
    pub closed: bool,
    /// Bytes after the last whole answer: a reply cut short, or not HTTP.
    pub leftover: usize,
}

/// How to send a byte stream.
#[derive(Debug, Clone, Copy)]
pub struct Send {
    /// Shut the sending side once the bytes are sent (a client like `nc -N`).
    pub half_close: bool,
    /// How long the server may stay quiet before the exchange is over (the connection is then
    /// counted as left open).
    pub quiet: Duration,
}

impl Default for Send {
    fn default() -> Send {
        Send {
            half_close: false,
            quiet: Duration::from_millis(1500),
        }
    }
}

/// Send `bytes` on a new connection to `addr` and read everything the server answers.
pub fn exchange(addr: SocketAddr, bytes: &[u8], how: Send) -> Exchange {
    let mut s = TcpStream::connect(addr).expect("connect to the twin");
    // A server may answer and close before it has read everything: a failed write is fine.
    let _ = s.write_all(bytes);
    if how.half_close {
        let _ = s.shutdown(Shutdown::Write);
    }
    s.set_read_timeout(Some(how.quiet)).expect("read timeout");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let closed = loop {
        match s.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break false
            }
            // A reset after the answers (a server closing with unread bytes) is a close.
            Err(_) => break true,
        }
    };
    let (answers, leftover) = parse_all(&buf, bytes.starts_with(b"HEAD "));
    Exchange {
        answers,
        closed,
        leftover,
    }
}

/// Every whole response in `buf`, and how many bytes are left after them. Answers to `HEAD`
/// have no body, whatever their `Content-Length`.
pub fn parse_all(mut buf: &[u8], head: bool) -> (Vec<Answer>, usize) {
    let mut out = Vec::new();
    while let Some((answer, used)) = parse_one(buf, head) {
        out.push(answer);
        buf = &buf[used..];
    }
    (out, buf.len())
}

fn parse_one(buf: &[u8], head_request: bool) -> Option<(Answer, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            Some((n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .collect();
    let len = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .filter(|_| !head_request)
        .unwrap_or(0);
    let body = buf.get(end..end + len)?.to_vec();
    Some((
        Answer {
            status,
            headers,
            body,
        },
        end + len,
    ))
}

/// Values that differ between the twins by design (which twin, which worker, when, how long,
/// which request id it made up, the event loop's wait for a thread-pool slot): left out before
/// two bodies are compared.
const PER_TWIN: &[&str] = &[
    "server",
    "worker",
    "request_id",
    "pid",
    "started",
    "finished",
    "elapsed_ms",
    "what_happened",
    "pool_wait_ms",
];

/// A body as it should be the same on both twins: JSON without [`PER_TWIN`] values;
/// anything else as it is.
pub fn comparable_body(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => {
            let kept: std::collections::BTreeMap<String, serde_json::Value> = map
                .into_iter()
                .filter(|(k, _)| !PER_TWIN.contains(&k.as_str()))
                .collect();
            serde_json::to_string(&kept).unwrap_or_default()
        }
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}

/// Headers whose values must be the same on both twins (the others: present on both).
const SAME_VALUE: &[&str] = &[
    "content-type",
    "cache-control",
    "connection",
    "allow",
    "location",
];

/// Where two exchanges differ, in words; empty when a client could not tell the twins apart
/// but for the values that say which twin answered (and when, and how: a success's body).
pub fn differences(pool: &Exchange, event_loop: &Exchange) -> Vec<String> {
    let mut out = Vec::new();
    if pool.answers.len() != event_loop.answers.len() {
        out.push(format!(
            "{} answers from the pool, {} from the event loop",
            pool.answers.len(),
            event_loop.answers.len()
        ));
    }
    if pool.closed != event_loop.closed {
        out.push(format!(
            "closed: pool {}, event loop {}",
            pool.closed, event_loop.closed
        ));
    }
    for (i, (p, e)) in pool.answers.iter().zip(&event_loop.answers).enumerate() {
        if p.status != e.status {
            out.push(format!("answer {i}: status {} vs {}", p.status, e.status));
            continue;
        }
        if p.names() != e.names() {
            out.push(format!(
                "answer {i}: headers {:?} vs {:?}",
                p.names(),
                e.names()
            ));
        }
        for name in SAME_VALUE {
            if p.header(name) != e.header(name) {
                out.push(format!(
                    "answer {i}: {name} {:?} vs {:?}",
                    p.header(name),
                    e.header(name)
                ));
            }
        }
        // A success says which twin served it and how (`GET /` is each twin's own account);
        // every other answer is the same on both.
        let (pb, eb) = (comparable_body(&p.body), comparable_body(&e.body));
        if !(200..300).contains(&p.status) && pb != eb {
            out.push(format!("answer {i}: body {pb:?} vs {eb:?}"));
        }
    }
    out
}
