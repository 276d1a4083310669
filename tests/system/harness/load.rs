//! Client load for the balancer tests: a blocking keep-alive HTTP/1.1 client, and a set of such
//! clients sending GETs in a loop on their own threads, recording every answer.

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::raw_http::{self, HttpResponse};

/// One keep-alive connection; reconnects when the server closed the last one.
pub struct KeepAlive {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl KeepAlive {
    /// A client of `addr` (connects on first use).
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, stream: None }
    }

    /// `GET path`; on an I/O error the connection is dropped and the error returned.
    pub fn get(&mut self, path: &str) -> io::Result<HttpResponse> {
        let result = self.try_get(path);
        match &result {
            Ok(response) if response.header("connection").is_none_or(|c| c != "close") => {}
            _ => self.stream = None,
        }
        result
    }

    fn try_get(&mut self, path: &str) -> io::Result<HttpResponse> {
        if self.stream.is_none() {
            let stream = raw_http::connect(self.addr)?;
            // One write per request and no Nagle: no delayed-ACK stalls of 40 ms.
            stream.set_nodelay(true)?;
            self.stream = Some(BufReader::new(stream));
        }
        let stream = self.stream.as_mut().expect("connected");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        stream.get_mut().write_all(request.as_bytes())?;
        raw_http::read_response(stream)
    }
}

/// What one request got.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The status, or the I/O error that ended the request.
    pub result: Result<u16, String>,
    /// The agent's `ec2_instance_id` (its `--instance-id`) from a JSON answer that has one.
    pub served_by: Option<String>,
    /// The balancer's error `reason` from a JSON error body that has one.
    pub reason: Option<String>,
    /// When it was sent, from the load's start.
    pub sent_at: Duration,
    /// How long it took.
    pub took: Duration,
}

impl Outcome {
    /// Whether it ended in a 200.
    pub fn ok(&self) -> bool {
        self.result == Ok(200)
    }
}

/// Sends one GET and describes the outcome.
pub fn send(client: &mut KeepAlive, path: &str, started: Instant) -> Outcome {
    let sent = Instant::now();
    let result = client.get(path);
    let took = sent.elapsed();
    let (served_by, reason) = match &result {
        Ok(response) => {
            let json: Option<serde_json::Value> = serde_json::from_slice(&response.body).ok();
            let field = |name: &str| {
                json.as_ref()
                    .and_then(|j| j.get(name))
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            };
            (field("ec2_instance_id"), field("reason"))
        }
        Err(_) => (None, None),
    };
    Outcome {
        result: result.map(|r| r.status).map_err(|e| e.to_string()),
        served_by,
        reason,
        sent_at: sent.duration_since(started),
        took,
    }
}

/// `clients` keep-alive clients sending `GET path` in a loop until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    threads: Vec<JoinHandle<()>>,
    /// When the load started.
    pub started: Instant,
}

impl Load {
    /// Starts `clients` threads against `addr`.
    pub fn start(addr: SocketAddr, path: &str, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let threads = (0..clients)
            .map(|_| {
                let (stop, outcomes, path) = (stop.clone(), outcomes.clone(), path.to_string());
                std::thread::spawn(move || {
                    let mut client = KeepAlive::new(addr);
                    while !stop.load(Ordering::Relaxed) {
                        let outcome = send(&mut client, &path, started);
                        outcomes.lock().expect("outcomes").push(outcome);
                    }
                })
            })
            .collect();
        Self {
            stop,
            outcomes,
            threads,
            started,
        }
    }

    /// How many requests have been answered so far.
    pub fn count(&self) -> usize {
        self.outcomes.lock().expect("outcomes").len()
    }

    /// Waits until `n` more requests than now have been answered, for at most `timeout`.
    pub fn wait_for_more(&self, n: usize, timeout: Duration) {
        let target = self.count() + n;
        let deadline = Instant::now() + timeout;
        while self.count() < target {
            assert!(
                Instant::now() < deadline,
                "the load got {} answers, not {target}, within {timeout:?}",
                self.count()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the clients (each finishes its request in progress) and returns every outcome.
    pub fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().expect("a load thread panicked");
        }
        std::mem::take(&mut *self.outcomes.lock().expect("outcomes"))
    }
}

/// The outcomes that were not a 200, for assertions and their messages.
pub fn failures(outcomes: &[Outcome]) -> Vec<&Outcome> {
    outcomes.iter().filter(|o| !o.ok()).collect()
}

/// `clients` keep-alive clients each sending `per_client` `GET path` one after another;
/// returns every outcome.
pub fn run(addr: SocketAddr, path: &str, clients: usize, per_client: usize) -> Vec<Outcome> {
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let path = path.to_string();
            std::thread::spawn(move || {
                let mut client = KeepAlive::new(addr);
                (0..per_client)
                    .map(|_| send(&mut client, &path, started))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().expect("a client thread panicked"))
        .collect()
}
