//! hyper's own refusals, answered in the twins' words.
//!
//! hyper refuses a head with more than 100 fields or over 32 KiB while parsing it, before any
//! handler runs, and answers `431` with an empty body. The pool twin reads such a head whole and
//! answers the shared JSON 431. So that both twins answer alike, each connection's writes pass
//! through [`JsonRefusals`], which swaps hyper's empty 431 for the shared one. Nothing else is
//! touched: hyper's empty 400 for bytes that are not HTTP is what tiny_http sends too.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use twin_core::limits;
use twin_core::reply::worker_name;

/// hyper's refusal as it writes it: a 431 status line, and no body (the twins' 431 has one).
fn is_hyper_431(buf: &[u8]) -> bool {
    buf.starts_with(b"HTTP/1.1 431 ")
        && buf
            .windows(21)
            .any(|w| w.eq_ignore_ascii_case(b"\r\ncontent-length: 0\r\n"))
}

/// The shared 431, as bytes on the wire.
fn shared_431(worker: usize) -> Vec<u8> {
    let reply = limits::head_too_large();
    format!(
        "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: {}\r\nconnection: close\r\n\
         x-worker: {}\r\ncontent-length: {}\r\n\r\n{}",
        reply.content_type,
        worker_name(worker),
        reply.body.len(),
        reply.body
    )
    .into_bytes()
}

/// A connection's IO, with hyper's 431 rewritten (see the module docs).
#[derive(Debug)]
pub(crate) struct JsonRefusals<T> {
    inner: T,
    worker: usize,
    /// The shared 431 and how much of it is written, once hyper has refused a head.
    swapped: Option<(Vec<u8>, usize)>,
}

impl<T> JsonRefusals<T> {
    pub(crate) fn new(inner: T, worker: usize) -> JsonRefusals<T> {
        JsonRefusals {
            inner,
            worker,
            swapped: None,
        }
    }
}

impl<T: Read + Unpin> Read for JsonRefusals<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for JsonRefusals<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.swapped.is_none() && is_hyper_431(buf) {
            this.swapped = Some((shared_431(this.worker), 0));
        }
        let Some((bytes, written)) = &mut this.swapped else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        // Write the shared answer in place of hyper's, then take (and drop) whatever hyper
        // writes after it: the connection closes after a refusal.
        while *written < bytes.len() {
            match Pin::new(&mut this.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                other => return other,
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    // Not vectored: hyper then hands over each response head in one buffer, where a refusal
    // can be recognised (it flattens head and body into that buffer; a copy of a few hundred
    // bytes per response).
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_empty_431_is_recognised() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
                      content-length: 0\r\ndate: x\r\n\r\n";
        assert!(is_hyper_431(hyper));
        let ours = shared_431(2);
        assert!(!is_hyper_431(&ours), "the twins' own 431 has a body");
        assert!(!is_hyper_431(
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
        ));
        let text = String::from_utf8(ours).unwrap_or_default();
        assert!(text.contains("x-worker: worker2\r\n"), "{text}");
        assert!(text.ends_with(&limits::head_too_large().body), "{text}");
    }
}
