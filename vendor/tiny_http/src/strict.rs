//! PATCH (twins), PATCH.md entry 4: a request head read strictly, as hyper reads it.
//!
//! The published crate reads a head line by line with a parser of its own that lets through
//! what RFC 9112 forbids (two differing `Content-Length`s — request smuggling —, a bare CR, an
//! unknown `Transfer-Encoding`), never gives up on a slow client, and hangs up without an answer
//! on bytes it cannot store. Here a head is read whole (within a size and a time limit), parsed
//! with `httparse` — the parser hyper uses — and framed by RFC 9112 §6.3 as hyper frames it. A
//! server that wants more says so with a [`HeadPolicy`]: its own checks, and its own words for
//! a refusal.

use std::convert::TryFrom;
use std::io::{ErrorKind, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a server built on tiny_http decides about a request head.
pub trait HeadPolicy: Send + Sync {
    /// The bytes that answer a head the HTTP layer refuses with `status` (400: not HTTP/1.1 as
    /// RFC 9112 defines it; 431: too large). The connection is closed after them.
    fn refusal(&self, status: u16) -> Vec<u8>;

    /// A head that parsed and framed: `Err(bytes)` answers it with those bytes and closes the
    /// connection. `headers` are each field's name and value, as sent.
    fn check(&self, target: &str, http11: bool, headers: &[(&str, &[u8])]) -> Result<(), Vec<u8>>;
}

/// How strictly, and how patiently, heads are read (`Server::from_listener_strict`).
#[derive(Clone)]
pub struct Strict {
    /// A head over this many bytes gets a 431.
    pub max_head_bytes: usize,
    /// A head with more fields gets a 431 (at most [`FIELDS`]).
    pub max_headers: usize,
    /// From when the server begins waiting for a head, how long it may take to arrive in full;
    /// then the connection is closed without an answer (as hyper's header-read timeout does).
    pub header_timeout: Option<Duration>,
    /// After an answer, how long the client may send nothing before the connection is closed.
    pub keep_alive: Option<Duration>,
    pub policy: Option<Arc<dyn HeadPolicy>>,
    /// Where each request goes, on the thread that read it: given, requests do not pass
    /// through `Server::recv` (which then only reports accept errors) — one hand-off less.
    pub deliver: Option<Arc<dyn Fn(crate::Request) + Send + Sync>>,
    /// At most this many threads reading connections (one each); a connection beyond it waits,
    /// accepted, until a reader is free. `None`: a thread for every connection, as upstream.
    pub max_readers: Option<usize>,
}

impl Default for Strict {
    fn default() -> Strict {
        Strict {
            max_head_bytes: 32 * 1024,
            max_headers: 100,
            header_timeout: None,
            keep_alive: None,
            policy: None,
            deliver: None,
            max_readers: None,
        }
    }
}

impl Strict {
    pub(crate) fn refusal(&self, status: u16) -> Option<Vec<u8>> {
        self.policy.as_ref().map(|p| p.refusal(status))
    }
}

/// A deadline for the reads of one connection's socket, shared by the reader that sets it and
/// the socket that applies it to each read.
#[derive(Debug, Default)]
pub(crate) struct Deadline(Mutex<Option<Instant>>);

impl Deadline {
    pub(crate) fn set(&self, at: Option<Instant>) {
        if let Ok(mut d) = self.0.lock() {
            *d = at;
        }
    }

    pub(crate) fn get(&self) -> Option<Instant> {
        self.0.lock().ok().and_then(|d| *d)
    }
}

/// A body of a known length, read only as the server reads it; what is left when it is dropped
/// is recorded in `unread`, for the connection's reader to skip before the next head.
pub(crate) struct Body<R> {
    inner: R,
    left: u64,
    unread: Arc<AtomicU64>,
}

impl<R> Body<R> {
    pub(crate) fn new(inner: R, len: u64, unread: Arc<AtomicU64>) -> Body<R> {
        Body {
            inner,
            left: len,
            unread,
        }
    }
}

impl<R: Read> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let room = usize::try_from(self.left).unwrap_or(usize::MAX).min(buf.len());
        if room == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..room])?;
        self.left -= n as u64;
        Ok(n)
    }
}

impl<R> Drop for Body<R> {
    fn drop(&mut self) {
        self.unread.store(self.left, Ordering::SeqCst);
    }
}

/// A chunked body, read only as the server reads it: one that nobody read at all is skipped by
/// the connection's reader before the next head (`unread_chunked`); one read in part leaves the
/// connection unusable (`closing`), as where it stopped cannot be told.
pub(crate) struct Chunked<R> {
    inner: R,
    touched: bool,
    ended: bool,
    unread_chunked: Arc<std::sync::atomic::AtomicBool>,
    closing: Arc<std::sync::atomic::AtomicBool>,
}

impl<R> Chunked<R> {
    pub(crate) fn new(
        inner: R,
        unread_chunked: Arc<std::sync::atomic::AtomicBool>,
        closing: Arc<std::sync::atomic::AtomicBool>,
    ) -> Chunked<R> {
        Chunked {
            inner,
            touched: false,
            ended: false,
            unread_chunked,
            closing,
        }
    }
}

impl<R: Read> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.touched = true;
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ended = true;
        }
        Ok(n)
    }
}

impl<R> Drop for Chunked<R> {
    fn drop(&mut self) {
        if !self.touched {
            self.unread_chunked.store(true, Ordering::SeqCst);
        } else if !self.ended {
            self.closing.store(true, Ordering::SeqCst);
        }
    }
}

/// Skip a whole chunked body at the start of `source`, within the deadline already set.
pub(crate) fn skip_chunked<R: Read>(source: &mut R) -> Result<(), HeadError> {
    let mut body = chunked_transfer::Decoder::new(source);
    let mut buf = [0u8; 4096];
    loop {
        match body.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(HeadError::TimedOut)
            }
            Err(e) => return Err(HeadError::Io(e)),
        }
    }
}

/// Skip `n` bytes of `source` (a body nobody read), within the deadline already set.
pub(crate) fn skip<R: Read>(source: &mut R, mut n: u64) -> Result<(), HeadError> {
    let mut buf = [0u8; 4096];
    while n > 0 {
        let room = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
        match source.read(&mut buf[..room]) {
            Ok(0) => return Err(HeadError::Io(ErrorKind::UnexpectedEof.into())),
            Ok(k) => n -= k as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(HeadError::TimedOut)
            }
            Err(e) => return Err(HeadError::Io(e)),
        }
    }
    Ok(())
}

/// Why no head came.
pub(crate) enum HeadError {
    /// The client closed, reset, or a read failed.
    Io(std::io::Error),
    /// The deadline passed: close without an answer.
    TimedOut,
    /// Answer with this status (a 431), then close.
    Refuse(u16),
}

/// Read one head, up to and including its blank line, from `source`. Blank lines before the
/// request line are skipped, as `httparse` skips them. Before the first byte the deadline is
/// `first`, after it `whole`.
pub(crate) fn read_head<R: Read>(
    source: &mut R,
    deadline: &Deadline,
    first: Option<Instant>,
    whole: Option<Instant>,
    max_bytes: usize,
    max_headers: usize,
) -> Result<Vec<u8>, HeadError> {
    deadline.set(first);
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    loop {
        match source.read(&mut byte) {
            Ok(0) => return Err(HeadError::Io(ErrorKind::UnexpectedEof.into())),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(HeadError::TimedOut)
            }
            Err(e) => return Err(HeadError::Io(e)),
        }
        let b = byte[0];
        if head.is_empty() {
            if b == b'\r' || b == b'\n' {
                continue;
            }
            deadline.set(whole);
        }
        head.push(b);
        if b == b'\n' && (head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n")) {
            deadline.set(None);
            return Ok(head);
        }
        // As hyper parses what has come so far at each read, a head that can no longer become
        // HTTP (TLS, a binary protocol, a broken request line) is refused at once, not when its
        // blank line or the timeout comes: at its first byte, at each line end, and every 512.
        if head.len() == 1 || b == b'\n' || head.len() % 512 == 0 {
            if let Err(status) = still_http(&head, max_headers) {
                deadline.set(None);
                return Err(HeadError::Refuse(status));
            }
        }
        if head.len() > max_bytes {
            deadline.set(None);
            return Err(HeadError::Refuse(431));
        }
    }
}

/// The most header fields a head may have, whatever `Strict::max_headers` says (room for them
/// is on the stack while a head is parsed).
pub const FIELDS: usize = 256;

/// Can the bytes of a head received so far still become a request `httparse` accepts?
fn still_http(partial: &[u8], max_headers: usize) -> Result<(), u16> {
    // Room for the fields, left uninitialised (as hyper does): this runs at each line of a head.
    let mut fields = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; FIELDS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(partial, &mut fields[..max_headers.min(FIELDS)]) {
        Ok(_) => Ok(()),
        Err(httparse::Error::TooManyHeaders) => Err(431),
        Err(_) => Err(400),
    }
}

/// A head parsed and framed.
pub(crate) struct Parsed {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) http11: bool,
    /// Names and values as sent, but with a `Content-Length` that framing ignores left out.
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    /// The body's framing lets the connection go on after the answer (`false` when a request
    /// had both `Transfer-Encoding` and `Content-Length`: RFC 9112 §6.3 says close after it).
    pub(crate) reusable: bool,
}

/// Parse `head` with `httparse` and frame it as hyper does (hyper 1.x, `proto/h1/role.rs`,
/// `Server::parse`): `Err(status)` is the answer to a head that cannot be trusted.
pub(crate) fn parse(head: &[u8], max_headers: usize) -> Result<Parsed, u16> {
    let mut fields = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; FIELDS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(head, &mut fields[..max_headers.min(FIELDS)]) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        Ok(httparse::Status::Partial) | Err(_) => return Err(400),
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(400);
    };
    let http11 = version == 1;
    let mut headers: Vec<(String, Vec<u8>)> = Vec::with_capacity(req.headers.len());
    let mut content_length: Option<u64> = None;
    let (mut is_te, mut is_te_chunked, mut is_cl) = (false, false, false);
    for field in req.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("transfer-encoding") {
            if !http11 {
                return Err(400);
            }
            is_te = true;
            if content_length.take().is_some() {
                headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-length"));
            }
            is_te_chunked = ends_in_chunked(field.value);
        } else if name.eq_ignore_ascii_case("content-length") {
            is_cl = true;
            if is_te {
                continue;
            }
            let n = digits(field.value).ok_or(400u16)?;
            match content_length {
                Some(prev) if prev != n => return Err(400),
                Some(_) => continue,
                None if n >= u64::MAX - 1 => return Err(431),
                None => content_length = Some(n),
            }
        }
        headers.push((name.to_owned(), field.value.to_vec()));
    }
    if is_te && !is_te_chunked {
        return Err(400);
    }
    Ok(Parsed {
        method: method.to_owned(),
        target: target.to_owned(),
        http11,
        headers,
        reusable: !(is_te && is_cl),
    })
}

/// A `Content-Length` value: digits only (no sign, no list), as hyper's `from_digits`.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, b| match b {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

/// Is `chunked` the last transfer coding (RFC 9112 §6.3, as hyper's `is_chunked_`)?
fn ends_in_chunked(value: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(value) else {
        return false;
    };
    if !s.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
        return false;
    }
    s.rsplit(',')
        .next()
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_as_hyper() {
        let ok = |h: &str| parse(h.as_bytes(), 100).map(|p| p.reusable);
        assert_eq!(ok("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(true));
        assert_eq!(ok("GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 41\r\n\r\n"), Err(400));
        assert_eq!(ok("GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), Ok(true));
        for bad in ["-1", "+5", "5, 5", "", "5 5"] {
            assert_eq!(ok(&format!("GET / HTTP/1.1\r\nContent-Length: {bad}\r\n\r\n")), Err(400), "{bad}");
        }
        for te in ["gzip", "xchunked", "chunked, identity"] {
            assert_eq!(ok(&format!("GET / HTTP/1.1\r\nTransfer-Encoding: {te}\r\n\r\n")), Err(400), "{te}");
        }
        assert_eq!(ok("GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), Ok(true));
        assert_eq!(ok("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), Err(400));
        assert_eq!(ok("GET / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), Ok(false));
        assert_eq!(ok("GET / HTTP/2.0\r\n\r\n"), Err(400));
        assert_eq!(ok("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"), Err(400));
        assert_eq!(ok("GET /io HTTP/1.1\nHost: a\n\n"), Ok(true));
    }

    #[test]
    fn what_cannot_become_http_is_refused_before_its_end() {
        let read = |bytes: &[u8]| {
            let deadline = Deadline::default();
            match read_head(&mut &bytes[..], &deadline, None, None, 32 * 1024, 100) {
                Ok(_) => Ok(()),
                Err(HeadError::Refuse(status)) => Err(Some(status)),
                Err(_) => Err(None),
            }
        };
        // A TLS ClientHello, without the blank line a head ends with: refused, not waited for.
        assert_eq!(read(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), Err(Some(400)));
        assert_eq!(read(b"GET / HTTP/1.1\r\nX\x01: y\r\n"), Err(Some(400)));
        // A head that is fine so far is waited for (here the bytes end: the client went).
        assert_eq!(read(b"GET / HTTP/1.1\r\nHost: a\r\n"), Err(None));
        assert_eq!(read(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(()));
    }
}
