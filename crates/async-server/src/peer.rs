//! A connection's socket, shared by hyper (which reads and writes it) and the pick-up (which only
//! looks: has the client gone?).
//!
//! A client that gives up — `burst` on Ctrl-C, the stage's Esc or `POST /cancel` — resets its
//! connections. A request it left waiting behind a frozen loop must not tie that loop up for
//! nobody when the loop comes back: the pick-up asks [`Peer::gone`] first and skips it, with a
//! `499` line in the log, as the pool twin does at its pick-up. hyper owns the connection, so the
//! socket is shared through an `Arc` and hyper reads and writes it through [`Peer`], built on
//! tokio's `&self` readiness calls.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::net::TcpStream;

/// One connection's socket; clones share it.
#[derive(Debug, Clone)]
pub(crate) struct Peer(Arc<Socket>);

#[derive(Debug)]
pub(crate) struct Socket {
    stream: TcpStream,
    /// A read met the client's reset (which the socket then no longer shows).
    reset: AtomicBool,
}

impl std::ops::Deref for Socket {
    type Target = TcpStream;
    fn deref(&self) -> &TcpStream {
        &self.stream
    }
}

impl Peer {
    pub(crate) fn new(stream: TcpStream) -> Peer {
        Peer(Arc::new(Socket {
            stream,
            reset: AtomicBool::new(false),
        }))
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
