//! EC2 instance metadata (IMDSv2): a session token first, then instance id, type and AZ.
//!
//! Used only with `--imds`, once at start, bounded by one timeout for the whole exchange. The
//! endpoint is an IP literal: the static binary does no DNS.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Longest metadata answer accepted; real ones are a few dozen bytes.
const MAX_ANSWER_BYTES: usize = 4096;
/// Lifetime asked for the session token: it is only used during start-up.
const TOKEN_TTL_SECS: &str = "60";

/// What instance metadata tells about this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InstanceFacts {
    pub instance_id: String,
    pub instance_type: String,
    pub availability_zone: String,
}

/// Instance metadata could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImdsError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("the {0} is not a valid header value")]
    BadHeader(&'static str),
    #[error("{path}: HTTP status {status}")]
    Status {
        path: &'static str,
        status: StatusCode,
    },
    #[error("{path}: {reason}")]
    Answer { path: &'static str, reason: String },
    #[error("the server closed the connection early")]
    Closed,
}

/// Parses `http://<ip>[:<port>][/]` into a socket address (port 80 by default).
pub(crate) fn parse_endpoint(text: &str) -> Result<SocketAddr, String> {
    let bad = || format!("`{text}` is not an endpoint like http://169.254.169.254:80");
    let rest = text.strip_prefix("http://").ok_or_else(bad)?;
    let host_port = rest.trim_end_matches('/');
    host_port
        .parse::<SocketAddr>()
        .or_else(|_| format!("{host_port}:80").parse::<SocketAddr>())
        .map_err(|_| bad())
}

/// Reads instance id, type and AZ from the metadata service at `addr`, within `timeout`.
pub(crate) async fn fetch(addr: SocketAddr, timeout: Duration) -> Result<InstanceFacts, ImdsError> {
    tokio::time::timeout(timeout, fetch_unbounded(addr))
        .await
        .map_err(|_| ImdsError::Timeout(timeout))?
}

async fn fetch_unbounded(addr: SocketAddr) -> Result<InstanceFacts, ImdsError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| ImdsError::Connect { addr, source })?;
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    let host =
        HeaderValue::from_str(&addr.to_string()).map_err(|_| ImdsError::BadHeader("host"))?;
    let exchange = async {
        let token = call(
            &mut sender,
            &host,
            Method::PUT,
            "/latest/api/token",
            (
                "x-aws-ec2-metadata-token-ttl-seconds",
                HeaderValue::from_static(TOKEN_TTL_SECS),
            ),
        )
        .await?;
        let token = HeaderValue::from_str(&token).map_err(|_| ImdsError::BadHeader("token"))?;
        let mut get = async |path: &'static str| {
            let auth = ("x-aws-ec2-metadata-token", token.clone());
            call(&mut sender, &host, Method::GET, path, auth).await
        };
        Ok(InstanceFacts {
            instance_id: get("/latest/meta-data/instance-id").await?,
            instance_type: get("/latest/meta-data/instance-type").await?,
            availability_zone: get("/latest/meta-data/placement/availability-zone").await?,
        })
    };
    // The connection future drives the socket; it only finishes first if the server hangs up.
    tokio::select! {
        facts = exchange => facts,
        closed = connection => Err(closed.err().map_or(ImdsError::Closed, ImdsError::Http)),
    }
}

/// One request on the keep-alive connection; returns the trimmed answer text.
async fn call(
    sender: &mut SendRequest<Empty<Bytes>>,
    host: &HeaderValue,
    method: Method,
    path: &'static str,
    (name, value): (&'static str, HeaderValue),
) -> Result<String, ImdsError> {
    let mut request = Request::new(Empty::new());
    *request.method_mut() = method;
    *request.uri_mut() = hyper::Uri::from_static(path);
    request.headers_mut().insert(HOST, host.clone());
    request.headers_mut().insert(name, value);
    let response = sender.send_request(request).await?;
    if response.status() != StatusCode::OK {
        return Err(ImdsError::Status {
            path,
            status: response.status(),
        });
    }
    let answer = |reason: String| ImdsError::Answer { path, reason };
    let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| answer(e.to_string()))?
        .to_bytes();
    let text = std::str::from_utf8(&body).map_err(|_| answer("not UTF-8".into()))?;
    Ok(text.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_http_ip_literals_with_port_80_by_default() {
        assert_eq!(
            parse_endpoint("http://169.254.169.254"),
            Ok("169.254.169.254:80".parse().unwrap())
        );
        assert_eq!(
            parse_endpoint("http://127.0.0.1:4321/"),
            Ok("127.0.0.1:4321".parse().unwrap())
        );
        assert_eq!(
            parse_endpoint("http://[::1]:80"),
            Ok("[::1]:80".parse().unwrap())
        );
        assert!(parse_endpoint("https://169.254.169.254").is_err());
        assert!(parse_endpoint("http://metadata.internal").is_err());
    }
}
