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

use crate::pool::Sender;
use crate::target::InFlight;

/// The body of an answer to a client.
#[derive(Debug)]
pub(crate) enum ResponseBody {
    /// An answer the balancer makes itself (errors, admin documents).
    Full(Option<Bytes>),
    /// A target's answer, streamed. `body` is declared first so that it drops first: the
    /// connection learns that an unfinished body was abandoned before it is pooled again.
    Upstream { body: Incoming, _lease: Lease },
}

impl ResponseBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Full(Some(bytes.into()))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Upstream { body, .. } => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Upstream { body, .. } => body.size_hint(),
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
