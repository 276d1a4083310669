//! The body of an answer to a client, streamed, never buffered whole; and the lease of the
//! target connection it comes on.
//!
//! A target's response body carries the lease of its connection: the request counts as in
//! flight on the target until its body has been passed on, and then the connection goes back
//! to the pool.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Instant;

use crate::access_log::Pending;
use crate::pool::Sender;
use crate::target::InFlight;

/// The body of an answer to a client, and the access log's record of its request, sent when
/// the body has been passed on or abandoned.
#[derive(Debug)]
pub(crate) struct ResponseBody {
    inner: Inner,
    log: Option<Pending>,
    /// Whether the body's end has been passed on.
    ended: bool,
}

#[derive(Debug)]
enum Inner {
    /// An answer the balancer makes itself (errors, admin documents).
    Full(Option<Bytes>),
    /// A target's answer, streamed. `body` is declared first so that it drops first: the
    /// connection learns that an unfinished body was abandoned before it is pooled again.
    Upstream { body: Incoming, _lease: Lease },
}

impl ResponseBody {
    /// An answer the balancer makes itself.
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        Self::of(Inner::Full(Some(bytes.into())))
    }

    /// No body (a 101's).
    pub(crate) fn empty() -> Self {
        Self::of(Inner::Full(None))
    }

    /// A target's answer, holding its connection's `lease` until passed on.
    pub(crate) fn upstream(body: Incoming, lease: Lease) -> Self {
        Self::of(Inner::Upstream {
            body,
            _lease: lease,
        })
    }

    fn of(inner: Inner) -> Self {
        Self {
            inner,
            log: None,
            ended: false,
        }
    }

    /// This body sending `log`'s line when it has been passed on (or abandoned).
    pub(crate) fn logged(mut self, log: Pending) -> Self {
        self.log = Some(log);
        self
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(mut log) = self.log.take() {
            log.ended(self.ended || self.is_end_stream());
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.inner {
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Upstream { body, .. } => Pin::new(body).poll_frame(cx),
        };
        if let Some(log) = &mut this.log {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => log.sent(frame.data_ref().map_or(0, Bytes::len)),
                Poll::Ready(Some(Err(_))) => log.target_body_failed(),
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(bytes) => bytes.is_none(),
            Inner::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Inner::Upstream { body, .. } => body.size_hint(),
        }
    }
}

/// A connection lent to one request, counted in flight on its target; back in the idle list of
/// the worker that took it when dropped.
#[derive(Debug)]
pub(crate) struct Lease {
    sender: Option<Sender>,
    worker: usize,
    in_flight: InFlight,
}

impl Lease {
    pub(crate) fn new(sender: Sender, worker: usize, in_flight: InFlight) -> Self {
        Self {
            sender: Some(sender),
            worker,
            in_flight,
        }
    }

    /// The lease of a connection that goes back to no pool (a WebSocket handshake's): it only
    /// keeps the request in flight until the body has been passed on.
    pub(crate) fn alone(worker: usize, in_flight: InFlight) -> Self {
        Self {
            sender: None,
            worker,
            in_flight,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            self.in_flight
                .target()
                .pools
                .put(self.worker, sender, Instant::now());
        }
    }
}
