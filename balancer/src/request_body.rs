//! The body of a request on its way to a target, streamed, never buffered whole.
//!
//! It sits in a shared slot that the outgoing request reads from: if a try fails before
//! anything was read from it (a connect failure, a reset before the body was sent), the same
//! body can go to the next target. The slot also notes what the client got wrong in sending it
//! (bad framing, a body cut short, a stall past the read timeout, a body over the limit), so
//! that a try that failed through the client is never blamed on the target.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

/// What the client got wrong in sending a request body. A try that failed while the body had
/// one failed through the client, never through the target: it is answered as the client's
/// error and counts against no target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientFault {
    /// Malformed framing, e.g. a chunk size that is not hexadecimal.
    BadBody,
    /// The body ended before its length: the client hung up or stopped short.
    Incomplete,
    /// No byte of the body for the read timeout.
    Timeout,
    /// Longer than `limits.max_body_bytes`.
    TooLarge,
}

/// Why a request body could not be read; the try that was sending it fails with this.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("request body: {0}")]
    Client(#[source] hyper::Error),
    #[error("request body over {0} bytes")]
    TooLarge(u64),
    #[error("no request body bytes for {0:?}")]
    Timeout(Duration),
    /// Polled again after one of the above.
    #[error("request body failed earlier")]
    Failed,
}

/// How a request body is read: the limits in force when its request arrived.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimits {
    /// Most bytes; 0 for no limit.
    pub max_bytes: u64,
    /// Longest wait for the next bytes of the body.
    pub read_timeout: Duration,
}

#[derive(Debug)]
struct Slot {
    body: Incoming,
    limits: BodyLimits,
    /// Whether a try has read from the body (it cannot be sent again).
    touched: bool,
    /// Whether the body was read to its end.
    finished: bool,
    received: u64,
    fault: Option<ClientFault>,
    /// The read timeout, armed while the body is waited for.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

/// The body of a request to a target.
#[derive(Debug, Clone)]
pub(crate) struct RequestBody(Option<Arc<Mutex<Slot>>>);

impl RequestBody {
    /// The client's body; an empty one needs no slot.
    pub(crate) fn new(body: Incoming, limits: BodyLimits) -> Self {
        if body.is_end_stream() {
            Self(None)
        } else {
            Self(Some(Arc::new(Mutex::new(Slot {
                body,
                limits,
                touched: false,
                finished: false,
                received: 0,
                fault: None,
                timer: None,
                armed: false,
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

    /// What the client got wrong in sending the body, if anything.
    pub(crate) fn client_fault(&self) -> Option<ClientFault> {
        self.0.as_ref().and_then(|slot| lock(slot).fault)
    }

    /// The bytes of the body read from the client so far.
    pub(crate) fn received(&self) -> u64 {
        self.0.as_ref().map_or(0, |slot| lock(slot).received)
    }

    /// Whether the whole body has been read from the client (an empty one always has): until
    /// then, a target that has not answered may be waiting for the client, not slow.
    pub(crate) fn complete(&self) -> bool {
        self.0.as_ref().is_none_or(|slot| lock(slot).finished)
    }
}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The client's side of a body error: hyper reports a body cut short as an `UnexpectedEof`
/// (or an incomplete message), bad chunk framing as invalid input or data.
fn classify(error: &hyper::Error) -> ClientFault {
    let eof = std::error::Error::source(error)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof);
    if eof || error.is_incomplete_message() || error.is_closed() {
        ClientFault::Incomplete
    } else if error.is_timeout() {
        ClientFault::Timeout
    } else {
        ClientFault::BadBody
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let Some(slot) = &self.0 else {
            return Poll::Ready(None);
        };
        let mut guard = lock(slot);
        let slot = &mut *guard;
        slot.touched = true;
        if slot.fault.is_some() {
            return Poll::Ready(Some(Err(BodyError::Failed)));
        }
        match Pin::new(&mut slot.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                slot.armed = false;
                if let Some(data) = frame.data_ref() {
                    slot.received += data.len() as u64;
                    let max = slot.limits.max_bytes;
                    if max > 0 && slot.received > max {
                        slot.fault = Some(ClientFault::TooLarge);
                        return Poll::Ready(Some(Err(BodyError::TooLarge(max))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                slot.fault = Some(classify(&e));
                Poll::Ready(Some(Err(BodyError::Client(e))))
            }
            Poll::Ready(None) => {
                slot.finished = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let wait = slot.limits.read_timeout;
                let timer = slot
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(wait)));
                if !slot.armed {
                    timer.as_mut().reset(Instant::now() + wait);
                    slot.armed = true;
                }
                if timer.as_mut().poll(cx).is_ready() {
                    slot.fault = Some(ClientFault::Timeout);
                    return Poll::Ready(Some(Err(BodyError::Timeout(wait))));
                }
                Poll::Pending
            }
        }
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
