//! The HTTP/1.1 client that `stats` and `bench` talk to agents with: one keep-alive hyper
//! connection over a plain `TcpStream`, GET only, one request at a time, bodies read whole; and
//! the one-shot `/healthz` probe that deploy and the local provider wait on.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, HOST};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Error;
use proto::AGENT_PORT;

/// `GET path` on `addr` within `timeout` (connect to last body byte), a 2xx answer's body
/// parsed as JSON; else why not, in the words `elb stats` shows: `timed out after 1000 ms`,
/// `connection refused`, `HTTP 500`, `bad JSON: ...`.
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    addr: SocketAddr,
    path: &str,
    timeout: std::time::Duration,
) -> Result<T, String> {
    let body = get_body(addr, path, timeout).await?;
    serde_json::from_slice(&body).map_err(|e| format!("bad JSON: {e}"))
}

/// `GET path` on `addr` within `timeout`, a 2xx answer's body; else why not, in the words of
/// [`get_json`].
pub(crate) async fn get_body(
    addr: SocketAddr,
    path: &str,
    timeout: std::time::Duration,
) -> Result<Bytes, String> {
    let exchange = async {
        let mut connection = Connection::open(&Endpoint::agent(addr)).await?;
        connection.get(path).await
    };
    let (status, body) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("timed out after {} ms", timeout.as_millis()))?
        .map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    Ok(body)
}

/// Where requests go: a socket address and the `Host` header to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The resolved address.
    pub(crate) addr: SocketAddr,
    /// `host[:port]` as the user or the cloud named it.
    pub(crate) host: HeaderValue,
    /// Path prefix every request path is appended to (`""` or `/prefix`, no trailing slash).
    pub(crate) prefix: String,
}

impl Endpoint {
    /// An agent reached directly at `addr`.
    pub(crate) fn agent(addr: SocketAddr) -> Self {
        Self {
            addr,
            host: HeaderValue::from_str(&addr.to_string()).expect("an address is a valid header"),
            prefix: String::new(),
        }
    }

    /// Parses and resolves `http://host[:port][/prefix]` (a name is resolved once, here).
    pub(crate) async fn from_url(url: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Usage(format!("bad --target `{url}`: {why}"));
        let uri: Uri = url
            .parse()
            .map_err(|e| bad(&format!("{e}; expected http://host:port")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => return Err(bad(&format!("{other} is not supported, use http://"))),
            None => return Err(bad("missing http://")),
        }
        let authority = uri.authority().ok_or_else(|| bad("missing the host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((authority.host(), port))
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| bad(&format!("cannot resolve {}", authority.host())))?;
        Ok(Self {
            addr,
            host: HeaderValue::from_str(authority.as_str()).map_err(|_| bad("bad host"))?,
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    /// TCP connect failed.
    #[error("{}", short_io(.0))]
    Connect(#[source] io::Error),
    /// The connection failed during the exchange (closed, reset, bad HTTP).
    #[error("{}", exchange_reason(.0))]
    Exchange(#[source] hyper::Error),
    /// The server closed the connection.
    #[error("connection closed")]
    Closed,
}

/// The root cause of a failed exchange: `connection reset` rather than hyper's bare
/// `connection error`.
fn exchange_reason(e: &hyper::Error) -> String {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(inner) = cause {
        if let Some(io) = inner.downcast_ref::<io::Error>() {
            return short_io(io);
        }
        cause = inner.source();
    }
    if e.is_incomplete_message() {
        "connection closed before the answer".into()
    } else {
        e.to_string()
    }
}

/// `connection refused` rather than `Connection refused (os error 111)`.
fn short_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        io::ErrorKind::BrokenPipe => "connection closed (broken pipe)".into(),
        io::ErrorKind::TimedOut => "connect timed out".into(),
        _ => e.to_string(),
    }
}

/// hyper's side of a connection: the future that reads and writes the socket.
type Driver = Pin<Box<http1::Connection<TokioIo<TcpStream>, Empty<Bytes>>>>;

/// One keep-alive HTTP/1.1 connection to an endpoint.
///
/// The connection is driven by [`Connection::get`] itself rather than by a task of its own: with
/// one request at a time there is nothing to do between requests, and the answer then reaches
/// the caller without waking another task (the load generator's hot path).
pub(crate) struct Connection {
    sender: SendRequest<Empty<Bytes>>,
    /// `None` once the connection has ended.
    driver: Option<Driver>,
    host: HeaderValue,
    prefix: String,
}

impl Connection {
    /// Connects (TCP_NODELAY) and runs the HTTP/1 handshake.
    pub(crate) async fn open(endpoint: &Endpoint) -> Result<Self, HttpError> {
        let stream = TcpStream::connect(endpoint.addr)
            .await
            .map_err(HttpError::Connect)?;
        stream.set_nodelay(true).map_err(HttpError::Connect)?;
        let (sender, driver) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(HttpError::Exchange)?;
        Ok(Self {
            sender,
            driver: Some(Box::pin(driver)),
            host: endpoint.host.clone(),
            prefix: endpoint.prefix.clone(),
        })
    }

    /// `GET path` (after the endpoint's prefix); the whole body.
    pub(crate) async fn get(&mut self, path: &str) -> Result<(StatusCode, Bytes), HttpError> {
        let uri = if self.prefix.is_empty() {
            path.to_owned()
        } else {
            format!("{}{path}", self.prefix)
        };
        let request = Request::get(uri)
            .header(HOST, self.host.clone())
            .body(Empty::new())
            .expect("a GET with a valid path and host is a valid request");
        let Some(mut driver) = self.driver.take() else {
            return Err(HttpError::Closed);
        };
        let sender = &mut self.sender;
        let exchange = async {
            sender.ready().await.map_err(HttpError::Exchange)?;
            let response = sender
                .send_request(request)
                .await
                .map_err(HttpError::Exchange)?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(HttpError::Exchange)?
                .to_bytes();
            Ok((status, body))
        };
        tokio::pin!(exchange);
        let ended = tokio::select! {
            biased;
            result = &mut exchange => {
                self.driver = Some(driver);
                return result;
            }
            ended = driver.as_mut() => ended,
        };
        // The server closed the connection, possibly right after a whole answer (which the
        // driver handed over before ending): the exchange finishes from what was received.
        exchange.await.map_err(|e| match (e, ended) {
            (HttpError::Exchange(_), Err(cause)) => HttpError::Exchange(cause),
            (e, _) => e,
        })
    }
}

/// One `GET /healthz` to the agent on `host` (port 8000), on a connection of its own; returns
/// the answer's status code. Health is judged by this status, never by a TCP connect: a cut
/// host times out, a stopped one refuses, a broken one answers something else.
pub(crate) async fn healthz_status(host: &str) -> io::Result<u16> {
    let mut stream = TcpStream::connect((host, AGENT_PORT)).await?;
    let request =
        format!("GET /healthz HTTP/1.1\r\nHost: {host}:{AGENT_PORT}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < 12 {
        match stream.read(&mut head[len..]).await? {
            0 => break,
            n => len += n,
        }
    }
    std::str::from_utf8(&head[..len])
        .ok()
        .and_then(|text| text.strip_prefix("HTTP/1.1 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other("it did not answer HTTP/1.1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_target_url_keeps_host_port_and_prefix() {
        let e = Endpoint::from_url("http://127.0.0.1:8080/lb/")
            .await
            .unwrap();
        assert_eq!(e.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(e.host, "127.0.0.1:8080");
        assert_eq!(e.prefix, "/lb");
        let e = Endpoint::from_url("http://127.0.0.1").await.unwrap();
        assert_eq!((e.addr.port(), e.prefix.as_str()), (80, ""));
    }

    #[tokio::test]
    async fn https_and_garbage_targets_are_usage_errors() {
        for bad in ["https://127.0.0.1", "127.0.0.1:80", "http://"] {
            let err = Endpoint::from_url(bad).await.unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}: {err}");
            assert!(err.to_string().contains("--target"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_refused_connection_says_so() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = Connection::open(&Endpoint::agent(addr))
            .await
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "connection refused");
    }
}
