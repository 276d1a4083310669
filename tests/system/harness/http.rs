//! A shared tokio runtime and a one-shot hyper HTTP/1.1 client to a loopback port.
//!

use std::sync::OnceLock;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, HOST};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

/// The runtime that the harness's async pieces (shim, clients) share across tests.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("build the test runtime")
    })
}

/// Sends `request` on a fresh connection to `127.0.0.1:port` and returns the whole answer;
/// errors are described as text.
pub async fn send(port: u16, mut request: Request<Full<Bytes>>) -> Result<Response<Bytes>, String> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect to 127.0.0.1:{port}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with 127.0.0.1:{port}: {e}"))?;
    tokio::spawn(connection);
    if !request.headers().contains_key(HOST) {
        let host = HeaderValue::from_str(&format!("127.0.0.1:{port}"))
            .map_err(|e| format!("host header: {e}"))?;
        request.headers_mut().insert(HOST, host);
    }
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request to 127.0.0.1:{port}: {e}"))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("reading the answer from 127.0.0.1:{port}: {e}"))?
        .to_bytes();
    Ok(Response::from_parts(parts, body))
}
