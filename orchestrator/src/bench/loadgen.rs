//! The load generator: `concurrency` keep-alive connections, each a task that takes the next
//! request number from a shared counter until `requests` are sent, so exactly that many go out
//! however fast each connection is. Connection `i` goes to endpoint `i mod n` (round-robin over
//! the cluster's instances). Each task keeps its own samples; they are merged at the end, so the
//! hot path shares nothing but two atomic counters.
//!
//! With a [`Schedule`] the load is open loop: request `n` is not sent before it is due, and its
//! latency counts from when it was due (see `schedule.rs`); the connections are then only the
//! pool the due requests go out on.
//!
//! Like `wrk -t`, the connections are dealt over one thread per core this process may run on,
//! each with a single-threaded runtime: a connection's work never moves between threads, and
//! the command's own runtime stays free for the progress bar.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::{oneshot, Barrier};

use super::schedule::Schedule;
use crate::http::{Connection, Endpoint};

/// `served_by` of a request whose answer named no instance.
pub(crate) const UNKNOWN: u32 = u32::MAX;

/// One request as measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    /// When it was sent (open loop: when it was due), from the start of the run.
    pub(crate) start_us: u64,
    /// From sending the request (open loop: from when it was due) to the last byte of the
    /// answer.
    pub(crate) latency_us: u32,
    /// HTTP status; 0 when no answer came (see [`Run::errors`]).
    pub(crate) status: u16,
    /// Index into [`Run::instances`], or [`UNKNOWN`].
    pub(crate) served_by: u32,
}

impl Sample {
    /// A 2xx answer.
    pub(crate) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// What to send.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    /// Where; connections are spread over them round-robin.
    pub(crate) endpoints: Vec<Endpoint>,
    /// The path of every request, e.g. `/cluster1`.
    pub(crate) path: String,
    /// How many requests in all.
    pub(crate) requests: u64,
    /// How many connections, each with one request in flight.
    pub(crate) concurrency: usize,
    /// Longest wait for one answer; a request that takes longer counts as an error.
    pub(crate) timeout: Duration,
    /// Open loop: when each request is due (its length then sets `requests`); `None` sends
    /// each connection's next request as soon as its last one is answered.
    pub(crate) schedule: Option<Arc<Schedule>>,
}

/// The measured run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Run {
    /// One per request sent, in no particular order.
    pub(crate) samples: Vec<Sample>,
    /// Instances named by the answers (`ec2_instance_id`, else `hostname`).
    pub(crate) instances: Vec<String>,
    /// Requests without an answer, by reason.
    pub(crate) errors: BTreeMap<String, u64>,
    /// From the first request sent to the last answer.
    pub(crate) elapsed: Duration,
}

/// The part of an agent's answer that says who served it; the rest is skipped unparsed.
#[derive(Deserialize)]
struct ServedBy<'a> {
    #[serde(borrow, default)]
    ec2_instance_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    hostname: Option<Cow<'a, str>>,
}

/// The key the agent's answer names its instance with, as the agent writes it (compact JSON).
const ID_KEY: &[u8] = br#""ec2_instance_id":""#;

/// The instance an answer body names, if it is an agent's JSON answer: `ec2_instance_id`, else
/// `hostname`. The agent writes the id near the start of a ~1 KiB body, so a plain id (no
/// escapes) is read where it stands; anything else goes through the JSON parser.
pub(crate) fn served_by(body: &[u8]) -> Option<Cow<'_, str>> {
    let plain_id = body
        .windows(ID_KEY.len())
        .position(|w| w == ID_KEY)
        .and_then(|at| {
            let value = &body[at + ID_KEY.len()..];
            let end = value.iter().position(|&b| b == b'"' || b == b'\\')?;
            (value[end] == b'"').then(|| std::str::from_utf8(&value[..end]).ok())?
        });
    if let Some(id) = plain_id {
        return Some(Cow::Borrowed(id));
    }
    let answer: ServedBy = serde_json::from_slice(body).ok()?;
    answer.ec2_instance_id.or(answer.hostname)
}

/// Per-connection results, merged into a [`Run`] at the end.
#[derive(Default)]
struct Part {
    samples: Vec<Sample>,
    instances: Vec<String>,
    errors: BTreeMap<String, u64>,
    /// When this connection's last request ended.
    finished: Option<Instant>,
}

/// Sends `load`; `done` counts answered requests as they come (for a progress bar).
/// Connections are opened before the clock starts, as `wrk` does.
pub(crate) async fn run(load: &Load, done: Arc<AtomicU64>) -> Run {
    let next = Arc::new(AtomicU64::new(0));
    let concurrency = load.concurrency.max(1);
    let ready = Arc::new(Barrier::new(concurrency + 1));
    let epoch = Instant::now();
    let start = Arc::new(OnceLock::new());
    let workers = (0..concurrency).map(|slot| Worker {
        schedule: load.schedule.clone(),
        start: start.clone(),
        endpoint: load.endpoints[slot % load.endpoints.len()].clone(),
        path: load.path.clone(),
        requests: load.requests,
        concurrency,
        timeout: load.timeout,
        epoch,
        next: next.clone(),
        done: done.clone(),
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut groups: Vec<Vec<Worker>> = (0..cores.min(concurrency)).map(|_| Vec::new()).collect();
    let threads = groups.len();
    for (slot, worker) in workers.enumerate() {
        groups[slot % threads].push(worker);
    }
    let mut results = Vec::with_capacity(groups.len());
    for group in groups {
        let (tx, rx) = oneshot::channel();
        results.push(rx);
        let load = connections(group, ready.clone());
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => {
                std::thread::spawn(move || tx.send(runtime.block_on(load)));
            }
            Err(e) => {
                // Not expected (a runtime needs little more than an epoll instance): this group
                // then shares the command's runtime.
                tracing::warn!(error = %e, "no runtime of its own for a load thread");
                tokio::spawn(async move { tx.send(load.await) });
            }
        }
    }
    ready.wait().await;
    let started = Instant::now();
    let offset_us = started.duration_since(epoch).as_micros() as u64;
    let mut run = Run::default();
    let mut finished = started;
    let mut parts = Vec::with_capacity(concurrency);
    for result in results {
        parts.extend(result.await.unwrap_or_default());
    }
    for part in parts {
        finished = finished.max(part.finished.unwrap_or(started));
        let map: Vec<u32> = part
            .instances
            .iter()
            .map(|name| intern(&mut run.instances, name))
            .collect();
        run.samples.extend(part.samples.into_iter().map(|mut s| {
            s.start_us = s.start_us.saturating_sub(offset_us);
            if s.served_by != UNKNOWN {
                s.served_by = map[s.served_by as usize];
            }
            s
        }));
        for (reason, n) in part.errors {
            *run.errors.entry(reason).or_default() += n;
        }
    }
    run.elapsed = finished.duration_since(started);
    run
}

/// Runs `workers` on the current runtime, each on its own connection opened before the
/// barrier; returns their parts once all are done.
async fn connections(workers: Vec<Worker>, ready: Arc<Barrier>) -> Vec<Part> {
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|worker| {
            let ready = ready.clone();
            tokio::spawn(async move {
                let connection = Connection::open(&worker.endpoint).await.ok();
                ready.wait().await;
                worker.run(connection).await
            })
        })
        .collect();
    let mut parts = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(part) = task.await {
            parts.push(part);
        }
    }
    parts
}

/// The index of `name` in `names`, added at the end if new. Runs see a handful of instances,
/// so a scan beats hashing.
fn intern(names: &mut Vec<String>, name: &str) -> u32 {
    let index = match names.iter().position(|n| n == name) {
        Some(i) => i,
        None => {
            names.push(name.to_owned());
            names.len() - 1
        }
    };
    index as u32
}

/// One connection's share of the load.
struct Worker {
    schedule: Option<Arc<Schedule>>,
    /// The run's start, set by the first worker past the barrier: request `n` is due at
    /// `start + schedule.due(n)`.
    start: Arc<OnceLock<Instant>>,
    endpoint: Endpoint,
    path: String,
    requests: u64,
    concurrency: usize,
    timeout: Duration,
    epoch: Instant,
    next: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
}

impl Worker {
    /// Sends requests until the shared counter reaches the total. A failed connection is
    /// reopened for the next request.
    async fn run(self, mut connection: Option<Connection>) -> Part {
        let share = self.requests / self.concurrency as u64 + 1;
        let mut part = Part {
            samples: Vec::with_capacity(share.min(1 << 20) as usize),
            ..Part::default()
        };
        let start = *self.start.get_or_init(Instant::now);
        loop {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            if n >= self.requests {
                break;
            }
            let sent = match &self.schedule {
                Some(schedule) => {
                    let due = start + schedule.due(n);
                    tokio::time::sleep_until(due.into()).await;
                    due
                }
                None => Instant::now(),
            };
            let outcome = tokio::time::timeout(self.timeout, async {
                if connection.is_none() {
                    connection = Some(Connection::open(&self.endpoint).await?);
                }
                let open = connection.as_mut().expect("opened above");
                open.get(&self.path).await
            })
            .await;
            let ended = Instant::now();
            part.finished = Some(ended);
            let latency_us = ended.duration_since(sent).as_micros().min(u32::MAX as u128) as u32;
            let start_us = sent.duration_since(self.epoch).as_micros() as u64;
            let (status, served_by) = match outcome {
                Ok(Ok((status, body))) => {
                    let served =
                        served_by(&body).map_or(UNKNOWN, |name| intern(&mut part.instances, &name));
                    (status.as_u16(), served)
                }
                failed => {
                    let reason = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("timed out after {} ms", self.timeout.as_millis()),
                    };
                    connection = None;
                    *part.errors.entry(reason).or_default() += 1;
                    (0, UNKNOWN)
                }
            };
            part.samples.push(Sample {
                start_us,
                latency_us,
                status,
                served_by,
            });
            self.done.fetch_add(1, Ordering::Relaxed);
        }
        part
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serving_instance_is_the_ec2_id_else_the_hostname() {
        let body = br#"{"message":"m","hostname":"h","ec2_instance_id":"i-1","stats":{"x":[1,2]}}"#;
        assert_eq!(served_by(body).as_deref(), Some("i-1"));
        assert_eq!(served_by(br#"{"hostname":"h"}"#).as_deref(), Some("h"));
        assert_eq!(served_by(br#"{"error":"not found"}"#), None);
        assert_eq!(served_by(b"<html>"), None);
        let spaced = br#"{"ec2_instance_id" : "i-2", "hostname": "h"}"#;
        assert_eq!(served_by(spaced).as_deref(), Some("i-2"), "any JSON layout");
        let escaped = br#"{"ec2_instance_id":"i-\u0033","hostname":"h"}"#;
        assert_eq!(
            served_by(escaped).as_deref(),
            Some("i-3"),
            "escapes are decoded"
        );
        let agent = serde_json::to_vec(&serde_json::json!({
            "schema": 1, "message": "m", "instance_id": "h", "hostname": "h",
            "ec2_instance_id": "i-0123", "stats": {"requests": {"total": 1}}
        }))
        .unwrap();
        assert_eq!(served_by(&agent).as_deref(), Some("i-0123"));
    }

    #[tokio::test]
    async fn exactly_the_requested_number_is_sent_even_when_nothing_answers() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let load = Load {
            endpoints: vec![Endpoint::agent(closed)],
            path: "/cluster1".into(),
            requests: 37,
            concurrency: 4,
            timeout: Duration::from_secs(5),
            schedule: None,
        };
        let done = Arc::new(AtomicU64::new(0));
        let run = run(&load, done.clone()).await;
        assert_eq!(run.samples.len(), 37);
        assert_eq!(done.load(Ordering::Relaxed), 37);
        assert_eq!(run.errors["connection refused"], 37);
        assert!(run
            .samples
            .iter()
            .all(|s| !s.ok() && s.served_by == UNKNOWN));
    }

    /// Serves `GET`s on loopback with keep-alive, answering at once except request number
    /// `stall_at` (from 0), which waits `stall` first.
    async fn stalling_server(stall_at: u64, stall: Duration) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicU64::new(0));
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let served = served.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        buf.drain(..end);
                        if served.fetch_add(1, Ordering::Relaxed) == stall_at {
                            tokio::time::sleep(stall).await;
                        }
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// Requests whose measured latency is at least `ms`.
    fn slow(run: &Run, ms: u32) -> usize {
        run.samples
            .iter()
            .filter(|s| s.latency_us >= ms * 1000)
            .count()
    }

    /// One 200 ms stall of the server: the closed-loop client waits it out on one request and
    /// shows one slow answer; the open-loop client at 200 requests/s shows the ~40 requests that
    /// were due during the stall as slow too, each by how long it waited for its turn.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stall_shows_in_open_loop_latencies_and_hides_in_closed_loop_ones() {
        let stall = Duration::from_millis(200);
        let load = |addr, schedule| Load {
            endpoints: vec![Endpoint::agent(addr)],
            path: "/".into(),
            requests: 200,
            concurrency: 1,
            timeout: Duration::from_secs(5),
            schedule,
        };
        let closed = run(
            &load(stalling_server(50, stall).await, None),
            Arc::new(AtomicU64::new(0)),
        )
        .await;
        let schedule = Arc::new(Schedule::constant(200.0, 200));
        let open = run(
            &load(stalling_server(50, stall).await, Some(schedule)),
            Arc::new(AtomicU64::new(0)),
        )
        .await;
        assert_eq!(closed.samples.len(), 200);
        assert_eq!(open.samples.len(), 200);
        assert!(closed.samples.iter().chain(&open.samples).all(Sample::ok));
        assert_eq!(
            slow(&closed, 100),
            1,
            "closed loop: only the stalled request"
        );
        let open_slow = slow(&open, 100);
        assert!(
            (10..=45).contains(&open_slow),
            "open loop: the requests due during the stall wait for it too ({open_slow})"
        );
        // Open loop keeps to the rate: 200 requests at 200/s take about a second.
        assert!(
            open.elapsed >= Duration::from_millis(950),
            "{:?}",
            open.elapsed
        );
    }
}
