//! How an AWS call fails: AWS answered with an error code, or no answer came.

/// A failed AWS call, after its retries.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// AWS answered with an error (EC2's `<Response><Errors><Error>` or the Query protocol's
    /// `<ErrorResponse><Error>`).
    #[error("{code}: {message}")]
    Service {
        /// The HTTP status.
        status: u16,
        /// AWS's error code (`UnauthorizedOperation`, `LoadBalancerNotFound`, ...).
        code: String,
        /// AWS's message.
        message: String,
    },
    /// The request got no answer: DNS, connection, TLS, timeout.
    #[error("{0}")]
    Transport(String),
    /// An answer came that is not what the API sends: not XML, or without a field the call
    /// must return.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The credential chain gave no credentials.
    #[error("no credentials: {0}")]
    Credentials(String),
}

impl AwsError {
    /// AWS's error code, when AWS answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether AWS answered with `code`.
    pub fn is(&self, code: &str) -> bool {
        self.code() == Some(code)
    }
}

/// An error and its sources, as one line of their messages.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = s.source();
    }
    line
}
