use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter, ErrorKind, Write};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::common::{HTTPVersion, Header, Method};
use crate::strict::{self, Deadline, Strict};
use crate::util::RefinedTcpStream;
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::Request;

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // PATCH (twins): the socket, shared, for `Request::tcp_stream`; set once reading it failed
    // with a reset, for `Request::client_reset`
    tcp: Option<std::sync::Arc<std::net::TcpStream>>,
    reset: std::sync::Arc<std::sync::atomic::AtomicBool>,

    // PATCH (twins): how heads are read (`strict.rs`); the deadline the socket applies to its
    // reads; whether a request has been read (the keep-alive timeout applies from then on);
    // set when an answer (or its request's framing) says the connection ends after it
    strict: Arc<Strict>,
    deadline: Arc<Deadline>,
    answered: bool,
    closing: Arc<AtomicBool>,
    // PATCH (twins): bytes of the last request's body the server did not read, to skip; or a
    // whole chunked body it did not read
    unread: Arc<AtomicU64>,
    unread_chunked: Arc<AtomicBool>,
}

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    ReadIoError(IoError),
    /// PATCH (twins): the head did not arrive in time: closed without an answer, as hyper does
    TimedOut,
    /// PATCH (twins): a head refused with this status (400, 431)
    Refused(u16),
    /// PATCH (twins): a head the server's policy answered with these bytes
    Answer(Vec<u8>),
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        strict: Arc<Strict>,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();
        let tcp = read_socket.tcp();
        let deadline = Arc::new(Deadline::default());
        read_socket.set_deadline(deadline.clone());

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            tcp,
            reset: Default::default(),
            strict,
            deadline,
            answered: false,
            closing: Default::default(),
            unread: Default::default(),
            unread_chunked: Default::default(),
        }
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    ///
    /// PATCH (twins): the head is read whole within the time limits, parsed with `httparse` and
    /// framed as hyper frames it (`strict.rs`), then checked by the server's policy.
    fn read(&mut self) -> Result<Request, ReadError> {
        let now = Instant::now();
        let whole = self.strict.header_timeout.map(|t| now + t);
        let first = match (self.answered, self.strict.keep_alive) {
            (true, Some(idle)) => whole.map_or(Some(now + idle), |w| Some(w.min(now + idle))),
            _ => whole,
        };
        let unread = self.unread.swap(0, Ordering::SeqCst);
        let unread_chunked = self.unread_chunked.swap(false, Ordering::SeqCst);
        if unread > 0 || unread_chunked {
            // What is left of a body nobody read is skipped if it is (all but) here already, as
            // hyper drains what it has buffered; a body still to come ends the connection.
            self.deadline.set(Some(now + std::time::Duration::from_millis(10)));
            let skipped = if unread_chunked {
                strict::skip_chunked(&mut self.next_header_source)
            } else {
                strict::skip(&mut self.next_header_source, unread)
            };
            skipped.map_err(|e| match e {
                strict::HeadError::Io(e) => ReadError::ReadIoError(e),
                _ => ReadError::TimedOut,
            })?;
        }
        let head = strict::read_head(
            &mut self.next_header_source,
            &self.deadline,
            first,
            whole,
            self.strict.max_head_bytes,
            self.strict.max_headers,
        )
        .map_err(|e| match e {
            strict::HeadError::Io(e) => ReadError::ReadIoError(e),
            strict::HeadError::TimedOut => ReadError::TimedOut,
            strict::HeadError::Refuse(status) => ReadError::Refused(status),
        })?;
        let parsed = strict::parse(&head, self.strict.max_headers).map_err(ReadError::Refused)?;
        if let Some(policy) = &self.strict.policy {
            let fields: Vec<(&str, &[u8])> = parsed
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_slice()))
                .collect();
            policy
                .check(&parsed.target, parsed.http11, &fields)
                .map_err(ReadError::Answer)?;
        }
        let version = if parsed.http11 {
            HTTPVersion(1, 1)
        } else {
            HTTPVersion(1, 0)
        };
        // tiny_http's own types hold ASCII only: anything else is refused like a malformed head.
        let method: Method = parsed.method.parse().map_err(|_| ReadError::Refused(400))?;
        let headers = parsed
            .headers
            .iter()
            .map(|(name, value)| Header::from_bytes(name.as_bytes(), value.as_slice()))
            .collect::<Result<Vec<Header>, _>>()
            .map_err(|_| ReadError::Refused(400))?;
        if !parsed.reusable {
            self.closing.store(true, Ordering::Relaxed);
        }
        let path = parsed.target;
        self.answered = true;

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version,
            headers,
            // PATCH (twins): a client that reset the connection before its reader thread began
            // has no peer address any more; its request is still read (and then skipped).
            self.remote_addr.as_ref().ok().copied().flatten(),
            data_source,
            writer,
            self.tcp.clone(),
            self.reset.clone(),
            self.closing.clone(),
            self.unread.clone(),
            self.unread_chunked.clone(),
        )
        .map_err(|e| match e {
            crate::request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
        })?;

        // return the request
        Ok(request)
    }

    /// PATCH (twins): answer a refused head with the server's words (or an empty response
    /// with its status), then the connection closes.
    fn refuse(&mut self, status: u16) {
        use crate::{Response, StatusCode};
        match self.strict.refusal(status) {
            Some(bytes) => self.answer(&bytes),
            None => {
                let writer = self.sink.next().unwrap();
                let response = Response::new_empty(StatusCode(status));
                response
                    .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                    .ok();
            }
        }
    }

    fn answer(&mut self, bytes: &[u8]) {
        let mut writer = self.sink.next().unwrap();
        if writer.write_all(bytes).and_then(|()| writer.flush()).is_err() {
            log::debug!("client went away before a refusal was sent");
        }
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        // PATCH (twins): or the answer to it said `Connection: close`
        if self.no_more_requests || self.closing.load(Ordering::Relaxed) {
            return None;
        }

        let rq = match self.read() {
            // PATCH (twins): after a head it cannot trust, a server cannot tell where the next
            // request begins: answer, then close.
            Err(ReadError::Refused(status)) => {
                self.refuse(status);
                return None;
            }
            Err(ReadError::Answer(bytes)) => {
                self.answer(&bytes);
                return None;
            }
            // PATCH (twins): a head too slow to come is let go without an answer, as hyper does
            Err(ReadError::TimedOut) => return None,
            Err(ReadError::ReadIoError(err)) => {
                // PATCH (twins): the client reset the connection (it gave up): the requests
                // it already sent say so, through `Request::client_reset`.
                if err.kind() == ErrorKind::ConnectionReset {
                    self.reset.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                return None;
            }
            Ok(rq) => rq,
        };

        // updating the status of the connection
        // PATCH (twins): `Connection` is a list of tokens (RFC 9110 §7.6.1), read as hyper
        // reads it: any `close` ends the connection; HTTP/1.0 goes on only with `keep-alive`.
        let (close, keep_alive) = crate::common::connection_tokens(rq.headers());
        if close || (*rq.http_version() == HTTPVersion(1, 0) && !keep_alive) {
            self.no_more_requests = true;
        }

        // returning the request
        Some(rq)
    }
}
