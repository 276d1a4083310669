//! The answers the balancer makes itself: never 200, always a JSON body naming the group (when
//! there is one) and a stable reason code.

use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::ResponseBody;

/// Why the balancer answered itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// 404: no rule matched and there is no default group.
    NoRule,
    /// 400: conflicting or duplicate framing headers (request smuggling).
    BadFraming,
    /// 503: no target to send to.
    NoTarget,
    /// 502: no connection to any tried target.
    ConnectFailed,
    /// 502: the target closed or reset the connection before its response head.
    TargetReset,
    /// 504: no response head within the group's response timeout.
    TargetTimeout,
}

impl Failure {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Self::NoRule => StatusCode::NOT_FOUND,
            Self::BadFraming => StatusCode::BAD_REQUEST,
            Self::NoTarget => StatusCode::SERVICE_UNAVAILABLE,
            Self::ConnectFailed | Self::TargetReset => StatusCode::BAD_GATEWAY,
            Self::TargetTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The `reason` field of the body.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::NoRule => "no_rule",
            Self::BadFraming => "bad_framing",
            Self::NoTarget => "no_target",
            Self::ConnectFailed => "connect_failed",
            Self::TargetReset => "target_reset",
            Self::TargetTimeout => "target_timeout",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::NoRule => "no rule matched the request",
            Self::BadFraming => "conflicting Content-Length or Transfer-Encoding headers",
            Self::NoTarget => "no healthy target",
            Self::ConnectFailed => "could not connect to a target",
            Self::TargetReset => "the target closed the connection without an answer",
            Self::TargetTimeout => "the target did not answer in time",
        }
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
        if self == Self::BadFraming {
            // The rest of the stream cannot be trusted: hyper closes after this answer.
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
}
