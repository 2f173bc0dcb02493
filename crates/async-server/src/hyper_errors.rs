//! hyper's own refusals, answered in the twins' words.
//!
//! hyper refuses a head it cannot parse or frame (`400`), or one with more than 100 fields or
//! over 32 KiB (`431`), before any handler runs, with an empty body. The pool's tiny_http refuses
//! the same heads (it parses them the same way) with twin-core's JSON refusal. So that both twins
//! answer alike, each connection's writes pass through [`JsonRefusals`], which swaps hyper's empty
//! refusal for that same one.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use twin_core::{head, ServerKind};

/// hyper's refusal as it writes it: a 400, 414 or 431 status line, and no body (every answer of
/// the twins has one). Its status, if it is one.
fn hyper_refusal(buf: &[u8]) -> Option<u16> {
    let status = [400, 414, 431]
        .into_iter()
        .find(|s| buf.starts_with(format!("HTTP/1.1 {s} ").as_bytes()))?;
    buf.windows(21)
        .any(|w| w.eq_ignore_ascii_case(b"\r\ncontent-length: 0\r\n"))
        .then_some(status)
}

/// The shared refusal, as bytes on the wire.
fn shared(status: u16) -> Vec<u8> {
    head::refusal_bytes(&head::refusal(status), ServerKind::EventLoop)
}

/// A connection's IO, with hyper's 431 rewritten (see the module docs).
#[derive(Debug)]
pub(crate) struct JsonRefusals<T> {
    inner: T,
    /// The shared 431 and how much of it is written, once hyper has refused a head.
    swapped: Option<(Vec<u8>, usize)>,
}

impl<T> JsonRefusals<T> {
    pub(crate) fn new(inner: T) -> JsonRefusals<T> {
        JsonRefusals {
            inner,
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
        if this.swapped.is_none() {
            if let Some(status) = hyper_refusal(buf) {
                this.swapped = Some((shared(status), 0));
            }
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
    fn only_hypers_empty_refusals_are_recognised() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
                      content-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(hyper_refusal(hyper), Some(431));
        let bad = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(hyper_refusal(bad), Some(400));
        assert_eq!(
            hyper_refusal(&shared(400)),
            None,
            "the twins' own has a body"
        );
        assert_eq!(
            hyper_refusal(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
            None
        );
        let text = String::from_utf8(shared(431)).unwrap_or_default();
        assert!(
            text.ends_with(&twin_core::limits::head_too_large().body),
            "{text}"
        );
    }
}
