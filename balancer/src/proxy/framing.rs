//! Request smuggling: a request head with both `Content-Length` and `Transfer-Encoding`.
//!
//! RFC 9112 6.3 lets `Transfer-Encoding` win and hyper does so, dropping `Content-Length`
//! before the request reaches the balancer, which therefore cannot see the conflict in the
//! parsed request. [`FramingWatch`] sees it in the bytes instead: it wraps a client connection
//! and scans every line start for the two header names (case-insensitively); when a head that
//! carried both ends, it raises a flag that the request path reads (and clears) to answer 400
//! and close. The scan is a few instructions a byte, and only looks at the first 18 bytes of a
//! line.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const CONTENT_LENGTH: &[u8] = b"content-length:";
const TRANSFER_ENCODING: &[u8] = b"transfer-encoding:";

/// The state of the scan between reads.
#[derive(Debug, Default)]
struct Scanner {
    /// The current line's first bytes, lowercased.
    start: [u8; TRANSFER_ENCODING.len()],
    /// Bytes of the current line so far, `\r` excluded (saturating).
    length: usize,
    content_length: bool,
    transfer_encoding: bool,
}

impl Scanner {
    /// Feeds bytes; returns whether a head that carried both headers ended in them.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        let mut conflict = false;
        for &b in bytes {
            match b {
                b'\n' => conflict |= self.end_line(),
                b'\r' => {}
                _ => {
                    if let Some(slot) = self.start.get_mut(self.length) {
                        *slot = b.to_ascii_lowercase();
                    }
                    self.length = self.length.saturating_add(1);
                }
            }
        }
        conflict
    }

    fn end_line(&mut self) -> bool {
        let line = &self.start[..self.length.min(self.start.len())];
        let blank = self.length == 0;
        self.length = 0;
        if blank {
            let both = self.content_length && self.transfer_encoding;
            self.content_length = false;
            self.transfer_encoding = false;
            return both;
        }
        self.content_length |= line.starts_with(CONTENT_LENGTH);
        self.transfer_encoding |= line.starts_with(TRANSFER_ENCODING);
        false
    }
}

/// A client connection whose reads are scanned for conflicting framing headers.
pub(crate) struct FramingWatch<T> {
    inner: T,
    scanner: Scanner,
    conflict: Arc<AtomicBool>,
}

impl<T> FramingWatch<T> {
    /// Wraps `inner`; `conflict` is raised when a head with both headers has been read.
    pub(crate) fn new(inner: T, conflict: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            scanner: Scanner::default(),
            conflict,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FramingWatch<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let this = &mut *self;
        if this.scanner.feed(&buf.filled()[before..]) {
            this.conflict.store(true, Relaxed);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FramingWatch<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict(chunks: &[&[u8]]) -> bool {
        let mut scanner = Scanner::default();
        chunks
            .iter()
            .fold(false, |seen, chunk| seen | scanner.feed(chunk))
    }

    #[test]
    fn both_headers_in_one_head_are_a_conflict_in_either_order_and_case() {
        assert!(conflict(&[
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        ]));
        assert!(conflict(&[
            b"POST / HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\ncontent-length: 5\r\n\r\n"
        ]));
    }

    #[test]
    fn a_head_split_across_reads_is_still_seen() {
        assert!(conflict(&[
            b"POST / HTTP/1.1\r\nContent-Len",
            b"gth: 5\r\nTransfer-Enc",
            b"oding: chunked\r",
            b"\n\r",
            b"\n",
        ]));
    }

    #[test]
    fn one_framing_header_per_head_is_fine_even_across_keep_alive_requests() {
        assert!(!conflict(&[
            b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ]));
        assert!(!conflict(&[
            b"GET / HTTP/1.1\r\nX-Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
        ]));
    }
}
