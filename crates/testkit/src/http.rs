//! HTTP over a plain TCP stream, for what a client library would not send: raw requests, the
//! first response parsed, and a connection that is reset rather than closed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawResponse {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Write `request` bytes, read until the server closes (or `timeout`), and parse the first
/// response. `None` when the server closed without answering.
pub fn raw_exchange(addr: SocketAddr, request: &[u8], timeout: Duration) -> Option<RawResponse> {
    let mut s = TcpStream::connect(addr).expect("connect to the server");
    s.set_read_timeout(Some(timeout)).expect("set timeout");
    // A server may answer and close before it has read everything; that is fine here.
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf)
}

/// Parse the first response in `buf`, reading its body by `Content-Length`.
pub fn parse_response(buf: &[u8]) -> Option<RawResponse> {
    let text = String::from_utf8_lossy(buf);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut r = RawResponse {
        status,
        head: head.to_owned(),
        body: String::new(),
    };
    let len = r
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(rest.len());
    r.body = rest.get(..len.min(rest.len())).unwrap_or(rest).to_owned();
    Some(r)
}

/// `GET path` with `Connection: close`.
pub fn get(addr: SocketAddr, path: &str) -> RawResponse {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    raw_exchange(addr, req.as_bytes(), Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no response to GET {path}"))
}

/// A connection to `addr` that is *reset* when dropped (`SO_LINGER` 0), as `burst` and the stage
/// close what they give up: a twin takes it for a client that has gone.
pub fn connect_resetting(addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .expect("a socket");
    socket.set_linger(Some(Duration::ZERO)).expect("linger 0");
    socket.connect(&addr.into()).expect("connect");
    socket.into()
}

/// Read exactly one response (head, then `Content-Length` bytes of body) from a kept-open stream.
pub(crate) fn read_one_response(s: &mut TcpStream) -> RawResponse {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(r) = parse_response(&buf) {
            let want: usize = r
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if r.body.len() >= want {
                return r;
            }
        }
        let k = s.read(&mut chunk).expect("read a response");
        assert!(
            k > 0,
            "the server closed a keep-alive connection before answering"
        );
        buf.extend_from_slice(&chunk[..k]);
    }
}
