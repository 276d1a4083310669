//! A target that is not an agent: it passes health checks (`GET /healthz` answers 200) and
//! misbehaves on every other request, answering a 500 at once, hanging up without an answer, or
//! echoing the request head it got (with hop-by-hop headers of its own); or, as most
//! applications do, answers only once it has read the whole request body. Stopped and joined on
//! drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What a request other than `/healthz` gets.
#[derive(Debug, Clone, Copy)]
pub enum Misbehaviour {
    /// `500 Internal Server Error`, at once.
    Answer500,
    /// The connection closes once the head has been read.
    HangUp,
    /// 200 with the request head as the body, and the response headers `Connection:
    /// x-internal`, `X-Internal`, `Keep-Alive` and `Proxy-Authenticate`, which are hop-by-hop.
    Echo,
    /// 200 with the body's length as the body, once the whole body (`Content-Length`) is read.
    AwaitBody,
}

/// A misbehaving target on 127.0.0.1.
pub struct StubTarget {
    /// Its address.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StubTarget {
    /// Listens on 127.0.0.1:0 and serves each connection on a thread of its own.
    pub fn start(misbehaviour: Misbehaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("bound");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let flag = flag.clone();
                        std::thread::spawn(move || serve(stream, misbehaviour, &flag));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

/// Answers requests on `stream` until the client closes it, `stop` is raised, or it hangs up.
fn serve(stream: TcpStream, misbehaviour: Misbehaviour, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut path = None;
    let mut head = String::new();
    let mut length = 0;
    while !stop.load(Relaxed) {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(_) => continue,
        }
        head.push_str(&line);
        if path.is_none() {
            path = line.split(' ').nth(1).map(str::to_string);
            continue;
        }
        if line != "\r\n" {
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            continue;
        }
        let echo;
        let answer = match (path.take().as_deref(), misbehaviour) {
            (Some("/healthz"), _) => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            (_, Misbehaviour::Answer500) => {
                "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
            }
            (_, Misbehaviour::HangUp) => return,
            (_, Misbehaviour::Echo) => {
                echo = format!(
                    "HTTP/1.1 200 OK\r\nConnection: x-internal\r\nX-Internal: 1\r\n\
                     Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nX-Kept: 1\r\n\
                     Content-Length: {}\r\n\r\n{head}",
                    head.len()
                );
                &echo
            }
            (_, Misbehaviour::AwaitBody) => {
                let body = length;
                if !read_body(&mut reader, body, stop) {
                    return;
                }
                echo = format!("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n{body:04}");
                &echo
            }
        };
        length = 0;
        head.clear();
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// Reads `length` body bytes, through read timeouts; false if the client closed first or
/// `stop` was raised.
fn read_body(reader: &mut impl Read, length: usize, stop: &AtomicBool) -> bool {
    let mut left = length;
    let mut buf = [0u8; 4096];
    while left > 0 && !stop.load(Relaxed) {
        match reader.read(&mut buf[..left.min(4096)]) {
            Ok(0) => return false,
            Ok(n) => left -= n,
            Err(_) => continue,
        }
    }
    left == 0
}

impl Drop for StubTarget {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
