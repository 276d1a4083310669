//! Bodies, streamed both ways, never buffered whole.
//!
//! A request body sits in a shared slot that the outgoing request reads from: if a try fails
//! before anything was read from it (a connect failure, a reset before the body was sent),
//! the same body can go to the next target. A response body carries the lease of its
//! connection: the request counts as in flight on the target until its body has been passed
//! on, and then the connection goes back to the pool.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::pool::Lease;

#[derive(Debug)]
struct Slot {
    body: Incoming,
    /// Whether a try has read from the body (it cannot be sent again).
    touched: bool,
}

/// The body of a request to a target.
#[derive(Debug, Clone)]
pub(crate) struct RequestBody(Option<Arc<Mutex<Slot>>>);

impl RequestBody {
    /// The client's body; an empty one needs no slot.
    pub(crate) fn new(body: Incoming) -> Self {
        if body.is_end_stream() {
            Self(None)
        } else {
            Self(Some(Arc::new(Mutex::new(Slot {
                body,
                touched: false,
            }))))
        }
    }

    /// No body.
    #[cfg(test)]
    pub(crate) fn empty() -> Self {
        Self(None)
    }

    /// Whether another try can send the body whole: nothing has been read from it yet.
    pub(crate) fn resendable(&self) -> bool {
        self.0.as_ref().is_none_or(|slot| !lock(slot).touched)
    }
}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let Some(slot) = &self.0 else {
            return Poll::Ready(None);
        };
        let mut slot = lock(slot);
        slot.touched = true;
        Pin::new(&mut slot.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .as_ref()
            .is_none_or(|slot| lock(slot).body.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.0.as_ref().map_or_else(
            || SizeHint::with_exact(0),
            |slot| lock(slot).body.size_hint(),
        )
    }
}

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
