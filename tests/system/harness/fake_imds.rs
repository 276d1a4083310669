//! A fake EC2 instance metadata service (IMDSv2) on a loopback port, for `elb-agent --imds`.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The token the fake hands out and then requires.
const TOKEN: &str = "fake-imds-token";

/// How the fake behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answers like IMDSv2 with these instance id, type and AZ.
    Answering {
        instance_id: &'static str,
        instance_type: &'static str,
        availability_zone: &'static str,
    },
    /// Accepts connections and never answers.
    Silent,
}

/// A running fake; stops accepting when dropped.
pub struct FakeImds {
    pub addr: SocketAddr,
    /// `METHOD path` of every request, with ` (no token)` when a GET lacked the token.
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl FakeImds {
    pub fn start(mode: Mode) -> FakeImds {
        Self::start_at("127.0.0.1", mode)
    }

    /// A fake on `ip` (e.g. a test network's bridge address, which its hosts reach).
    pub fn start_at(ip: &str, mode: Mode) -> FakeImds {
        let listener = TcpListener::bind((ip, 0)).expect("bind fake IMDS");
        let addr = listener.local_addr().expect("fake IMDS address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stopped) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                match mode {
                    Mode::Silent => held.push(stream),
                    Mode::Answering { .. } => {
                        let log = log.clone();
                        std::thread::spawn(move || serve(stream, mode, &log));
                    }
                }
            }
        });
        FakeImds {
            addr,
            requests,
            stop,
        }
    }

    /// The `--imds-endpoint` value for this fake.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FakeImds {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Answers keep-alive requests on one connection until the client closes it.
fn serve(stream: TcpStream, mode: Mode, log: &Mutex<Vec<String>>) {
    let Mode::Answering {
        instance_id,
        instance_type,
        availability_zone,
    } = mode
    else {
        return;
    };
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let has_token = header("x-aws-ec2-metadata-token") == Some(TOKEN);
        let (status, body) = match (method, path) {
            ("PUT", "/latest/api/token")
                if header("x-aws-ec2-metadata-token-ttl-seconds").is_some() =>
            {
                ("200 OK", TOKEN)
            }
            ("GET", _) if !has_token => ("401 Unauthorized", ""),
            ("GET", "/latest/meta-data/instance-id") => ("200 OK", instance_id),
            ("GET", "/latest/meta-data/instance-type") => ("200 OK", instance_type),
            ("GET", "/latest/meta-data/placement/availability-zone") => {
                ("200 OK", availability_zone)
            }
            _ => ("404 Not Found", ""),
        };
        let note = if method == "GET" && !has_token {
            " (no token)"
        } else {
            ""
        };
        log.lock()
            .expect("request log")
            .push(format!("{method} {path}{note}"));
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}
