//! One try: a request sent to one target on a keep-alive connection of this worker, up to the
//! response head.

use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::config::TargetGroup;
use crate::pool::{self, Sender};
use crate::request_body::RequestBody;
use crate::target::Target;

/// How a try failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum TryError {
    /// Nothing was sent: no connection could be made, or it closed before the request was
    /// written. Any request may go to another target.
    #[error("{0}")]
    NotSent(String),
    /// The connection failed after the request was (perhaps) sent, before the response head.
    #[error(transparent)]
    Reset(hyper::Error),
}

/// Sends `request` to `target` on this worker's most recently used idle connection to it, or
/// on a new one. A pooled connection found closed before the request was written is replaced
/// by another within the same try (nothing was sent, and the target is the same). A new
/// connection is opened only under the target's [`Target::connecting`] bound; when its turn
/// comes, a connection that came back to the pool meanwhile is taken instead. Returns the
/// response head and the connection, to be returned to the pool with the body.
pub(super) async fn send(
    target: &Target,
    mut request: Request<RequestBody>,
    group: &TargetGroup,
) -> Result<(Response<Incoming>, Sender), TryError> {
    let worker = crate::worker::index();
    let idle = || {
        target
            .pools
            .take(worker, tokio::time::Instant::now(), group.idle_timeout())
    };
    let mut slot = None;
    loop {
        if let Some(mut sender) = idle() {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, sender)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(TryError::Reset(e.into_error())),
                },
            }
            continue;
        }
        if slot.is_some() {
            break;
        }
        slot = Some(target.connecting.acquire().await);
    }
    let mut sender = pool::connect(target.address, group.connect_timeout())
        .await
        .map_err(|e| TryError::NotSent(e.to_string()))?;
    drop(slot);
    match sender.try_send_request(request).await {
        Ok(response) => Ok((response, sender)),
        Err(mut e) => match e.take_message() {
            Some(_) => Err(TryError::NotSent(e.into_error().to_string())),
            None => Err(TryError::Reset(e.into_error())),
        },
    }
}
