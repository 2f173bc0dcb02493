//! A connection's socket, shared by hyper (which reads and writes it) and the pick-up (which only
//! looks: has the client gone?).
//!
//! A client that gives up — `burst` on Ctrl-C, the stage's Esc or `POST /cancel` — resets its
//! connections. A request it left waiting behind a frozen loop must not tie that loop up for
//! nobody when the loop comes back: the pick-up asks [`Peer::gone`] first and skips it, with a
//! `499` line in the log, as the pool twin does at its pick-up. hyper owns the connection, so the
//! socket is shared through an `Arc` and hyper reads and writes it through [`Peer`], built on
//! tokio's `&self` readiness calls.
//!
//! The socket also keeps the connection's clock for the timeouts both twins apply alike
//! ([`Peer::until_idle`]): when it opened, when bytes last came, when its last answer was ready,
//! and how many requests are being served.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// One connection's socket; clones share it.
#[derive(Debug, Clone)]
pub(crate) struct Peer(Arc<Socket>);

#[derive(Debug)]
pub(crate) struct Socket {
    stream: TcpStream,
    /// A read met the client's reset (which the socket then no longer shows).
    reset: AtomicBool,
    /// When the connection opened; then, in µs since, when bytes last came and when the last
    /// answer was ready (0: none yet).
    opened: Instant,
    last_read: AtomicU64,
    last_answer: AtomicU64,
    /// Requests handed to the app and not answered yet; told when one is answered (so that a
    /// connection being served arms no timer of its own).
    serving: AtomicUsize,
    answered: tokio::sync::Notify,
}

impl std::ops::Deref for Socket {
    type Target = TcpStream;
    fn deref(&self) -> &TcpStream {
        &self.stream
    }
}

impl Peer {
    pub(crate) fn new(stream: TcpStream, opened: Instant) -> Peer {
        Peer(Arc::new(Socket {
            stream,
            reset: AtomicBool::new(false),
            opened,
            last_read: AtomicU64::new(0),
            last_answer: AtomicU64::new(0),
            serving: AtomicUsize::new(0),
            answered: tokio::sync::Notify::new(),
        }))
    }

    fn now(&self) -> u64 {
        u64::try_from(self.0.opened.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// When, if nothing changes, this connection has waited too long for a request head: from
    /// its opening (or its last answer) `header` for a whole head, and after an answer
    /// `keep_alive` for the first byte of the next. `None` while a request is being served.
    pub(crate) fn deadline(&self, header: Duration, keep_alive: Duration) -> Option<Instant> {
        if self.0.serving.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let answered = self.0.last_answer.load(Ordering::SeqCst);
        let since = self.0.opened + Duration::from_micros(answered);
        let head_begun = self.0.last_read.load(Ordering::SeqCst) > answered;
        let header_deadline = since + header;
        if answered == 0 || head_begun {
            Some(header_deadline)
        } else {
            Some(header_deadline.min(since + keep_alive))
        }
    }

    /// Resolves once this connection has waited too long for a request head (see
    /// [`Peer::deadline`]): the same timeouts the pool twin's tiny_http applies.
    pub(crate) async fn until_idle(&self, header: Duration, keep_alive: Duration) {
        loop {
            match self.deadline(header, keep_alive) {
                Some(at) if at <= Instant::now() => return,
                Some(at) => tokio::time::sleep_until(at.into()).await,
                // Serving: no deadline until it is answered.
                None => self.0.answered.notified().await,
            }
        }
    }

    /// `future` serves one request of this connection: counted as being served until it is
    /// done, and dropped — answered with `gone()`, to nobody — if the client resets the
    /// connection meanwhile (see [`Serving`]).
    pub(crate) fn serving<F: Future>(&self, future: F, gone: fn() -> F::Output) -> Serving<F> {
        self.0.serving.fetch_add(1, Ordering::SeqCst);
        Serving {
            future: Handler::Running { future },
            gone,
            peer: Some(self.clone()),
            half_closed: false,
        }
    }

    /// While a request is served, hyper does not read its connection (it lets a client shut its
    /// sending side and still get its answer, RFC 9112 §9.6), so it would not see a client that
    /// gives up. This looks instead, whenever the socket has news: a reset is a client that has
    /// gone; an end of its sending side is not; bytes (a pipelined request) are left for hyper.
    /// Ready(true) once the client has gone.
    fn poll_gone(&self, cx: &mut Context<'_>, half_closed: &mut bool) -> Poll<bool> {
        while !*half_closed {
            if ready!(self.0.poll_read_ready(cx)).is_err() {
                return Poll::Ready(true);
            }
            if self.gone() {
                self.0.reset.store(true, Ordering::Relaxed);
                return Poll::Ready(true);
            }
            match twin_core::platform::peek_async(&self.0.stream) {
                // The client has shut its sending side: it still waits for its answer, and the
                // socket stays readable from now on, so it is not watched any further.
                Ok(0) => *half_closed = true,
                // Bytes of a next request, or nothing after all: wait for the next news.
                Ok(_) | Err(_) => {
                    let _ = self.0.stream.try_io(tokio::io::Interest::READABLE, || {
                        Err::<(), _>(io::ErrorKind::WouldBlock.into())
                    });
                }
            }
        }
        Poll::Pending
    }

    fn answered(&self) {
        self.0.last_answer.store(self.now(), Ordering::SeqCst);
        self.0.serving.fetch_sub(1, Ordering::SeqCst);
        // A permit, if nobody waits yet: the idle watch then looks again at once.
        self.0.answered.notify_one();
    }

    /// Has the client reset the connection (given up on its request)?
    pub(crate) fn gone(&self) -> bool {
        self.0.reset.load(Ordering::Relaxed) || twin_core::platform::client_gone_async(&self.0)
    }
}

/// Read into a small buffer of its own, then hand hyper only the bytes read: hyper's buffer is
/// written where the request lands and nowhere else (the allocator then touches no more pages
/// than the bytes need — 10,000 connections in flight stay as small as with tokio's own
/// reader, which fills the buffer in place without initialising it, something safe code cannot).
impl hyper::rt::Read for Peer {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let mut chunk = [0u8; 4096];
        let room = buf.remaining().min(chunk.len());
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(&mut chunk[..room]) {
                Ok(n) => {
                    if n > 0 {
                        self.0.last_read.store(self.now(), Ordering::SeqCst);
                    }
                    buf.put_slice(&chunk[..n]);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // hyper reads on right after a request's head, before it hands the request over:
                // a reset met there would drop the request unseen. Said once as "nothing yet",
                // so that the request reaches `handler::skip` (which then sees the reset here)
                // and is logged as skipped; the next read returns the error.
                Err(e)
                    if e.kind() == io::ErrorKind::ConnectionReset
                        && !self.0.reset.swap(true, Ordering::Relaxed) =>
                {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl hyper::rt::Write for Peer {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                written => return Poll::Ready(written),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                written => return Poll::Ready(written),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(twin_core::platform::shutdown_write(&self.0))
    }
}

pin_project_lite::pin_project! {
    /// A request being served ([`Peer::serving`]); done when its response is ready, or when its
    /// client has reset the connection (its handler is then dropped, as hyper drops it when it
    /// sees a client go). The handler's future stays inline: no allocation per request.
    pub(crate) struct Serving<F: Future> {
        #[pin]
        future: Handler<F>,
        gone: fn() -> F::Output,
        peer: Option<Peer>,
        half_closed: bool,
    }

    impl<F: Future> PinnedDrop for Serving<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(peer) = this.project().peer.take() {
                peer.answered();
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The handler's future, until it is done or dropped.
    #[project = HandlerProj]
    #[project_replace = HandlerGone]
    pub(crate) enum Handler<F> {
        Running { #[pin] future: F },
        Over,
    }
}

impl<F: Future> Future for Serving<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        if let HandlerProj::Running { future } = this.future.as_mut().project() {
            if let Poll::Ready(out) = future.poll(cx) {
                this.future.project_replace(Handler::Over);
                if let Some(peer) = this.peer.take() {
                    peer.answered();
                }
                return Poll::Ready(out);
            }
        }
        let gone = match this.peer.as_ref() {
            Some(peer) => peer.poll_gone(cx, this.half_closed),
            None => Poll::Pending,
        };
        if gone.is_ready() {
            // Dropped here: its handler's guards say it ended without an answer.
            this.future.project_replace(Handler::Over);
            if let Some(peer) = this.peer.take() {
                peer.answered();
            }
            return Poll::Ready((this.gone)());
        }
        Poll::Pending
    }
}
