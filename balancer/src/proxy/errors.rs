//! The answers the balancer makes itself: never 200, always a JSON body naming the group (when
//! there is one) and a stable reason code.

use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::ResponseBody;
use crate::request_body::ClientFault;

/// Why the balancer answered itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// 404: no rule matched and there is no default group.
    NoRule,
    /// 400: conflicting or duplicate framing headers (request smuggling).
    BadFraming,
    /// 400: an HTTP/1.1 request without `Host`, or with more than one (RFC 9112 3.2).
    MissingHost,
    /// 400, 408 or 413: the client failed to send its body.
    Client(ClientFault),
    /// 503: no target to send to.
    NoTarget,
    /// 503: the chosen target's queue was full.
    QueueFull,
    /// 503: the request waited in the target's queue for the group's queue timeout.
    QueueTimeout,
    /// 502: no connection to any tried target.
    ConnectFailed,
    /// 502: the target closed or reset the connection before its response head, or sent a
    /// malformed one.
    TargetReset,
    /// 504: no response head within the group's response timeout.
    TargetTimeout,
}

impl Failure {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Self::NoRule => StatusCode::NOT_FOUND,
            Self::BadFraming
            | Self::MissingHost
            | Self::Client(ClientFault::BadBody | ClientFault::Incomplete) => {
                StatusCode::BAD_REQUEST
            }
            Self::Client(ClientFault::Timeout) => StatusCode::REQUEST_TIMEOUT,
            Self::Client(ClientFault::TooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NoTarget | Self::QueueFull | Self::QueueTimeout => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::ConnectFailed | Self::TargetReset => StatusCode::BAD_GATEWAY,
            Self::TargetTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The `reason` field of the body, and the `reason` label of the client error metric.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::NoRule => "no_rule",
            Self::BadFraming => "bad_framing",
            Self::MissingHost => "missing_host",
            Self::Client(ClientFault::BadBody) => "bad_body",
            Self::Client(ClientFault::Incomplete) => "incomplete_body",
            Self::Client(ClientFault::Timeout) => "client_timeout",
            Self::Client(ClientFault::TooLarge) => "body_too_large",
            Self::NoTarget => "no_target",
            Self::QueueFull => "queue_full",
            Self::QueueTimeout => "queue_timeout",
            Self::ConnectFailed => "connect_failed",
            Self::TargetReset => "target_reset",
            Self::TargetTimeout => "target_timeout",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::NoRule => "no rule matched the request",
            Self::BadFraming => "conflicting Content-Length or Transfer-Encoding headers",
            Self::MissingHost => "an HTTP/1.1 request needs exactly one Host header",
            Self::Client(ClientFault::BadBody) => "the request body is malformed",
            Self::Client(ClientFault::Incomplete) => "the request body ended early",
            Self::Client(ClientFault::Timeout) => "the request body was not sent in time",
            Self::Client(ClientFault::TooLarge) => "the request body is over the limit",
            Self::NoTarget => "no healthy target",
            Self::QueueFull => "every target is at its limit and its queue is full",
            Self::QueueTimeout => "every target stayed at its limit for the queue timeout",
            Self::ConnectFailed => "could not connect to a target",
            Self::TargetReset => "the target closed the connection without an answer",
            Self::TargetTimeout => "the target did not answer in time",
        }
    }

    /// Whether the client sent something wrong (the 4xx the balancer makes), as against the
    /// balancer or a target failing it.
    pub(crate) fn is_clients(self) -> bool {
        self.status().is_client_error() && self != Self::NoRule
    }

    /// The answer, for a request routed to `group` (if any).
    pub(crate) fn answer(self, group: Option<&str>) -> Response<ResponseBody> {
        let body = proto::BalancerError {
            schema: proto::SCHEMA,
            status: self.status().as_u16(),
            error: self.message().into(),
            reason: self.code().into(),
            group: group.map(String::from),
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = Response::new(ResponseBody::full(json));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.is_clients() {
            // The rest of the stream cannot be trusted (or its body was left unread): hyper
            // closes after this answer.
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn failures_are_never_200_and_name_the_group_and_reason() {
        let response = Failure::TargetTimeout.answer(Some("cluster1"));
        assert_eq!(response.status(), 504);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let error: proto::BalancerError = serde_json::from_slice(&body).unwrap();
        assert_eq!(error.group.as_deref(), Some("cluster1"));
        assert_eq!(error.reason, "target_timeout");
        assert_eq!(error.status, 504);
    }

    #[test]
    fn statuses_follow_alb() {
        assert_eq!(Failure::NoTarget.status(), 503);
        assert_eq!(Failure::ConnectFailed.status(), 502);
        assert_eq!(Failure::TargetReset.status(), 502);
        assert_eq!(Failure::NoRule.status(), 404);
    }

    #[test]
    fn a_framing_error_closes_the_connection() {
        assert_eq!(
            Failure::BadFraming.answer(None).headers()[CONNECTION],
            "close"
        );
    }

    #[test]
    fn client_faults_are_4xx_and_close_the_connection() {
        let cases = [
            (ClientFault::BadBody, 400, "bad_body"),
            (ClientFault::Incomplete, 400, "incomplete_body"),
            (ClientFault::Timeout, 408, "client_timeout"),
            (ClientFault::TooLarge, 413, "body_too_large"),
        ];
        for (fault, status, code) in cases {
            let failure = Failure::Client(fault);
            assert_eq!((failure.status().as_u16(), failure.code()), (status, code));
            assert!(failure.is_clients());
            assert_eq!(failure.answer(None).headers()[CONNECTION], "close");
        }
        assert!(Failure::MissingHost.is_clients());
        for theirs in [
            Failure::NoRule,
            Failure::QueueTimeout,
            Failure::ConnectFailed,
            Failure::TargetTimeout,
        ] {
            assert!(!theirs.is_clients(), "{theirs:?}");
        }
    }
}
