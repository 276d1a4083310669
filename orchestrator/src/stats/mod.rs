//! Reading every agent's `/stats` at once: one task per agent, each with its own timeout, so a
//! dead or slow agent costs its own timeout and nothing more. `view.rs` turns the readings into
//! the rows and tables `elb stats` prints.

pub(crate) mod publish;
pub(crate) mod view;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proto::StatsSnapshot;

use crate::cloud::Instance;
use proto::AGENT_PORT;

/// An agent to ask: the instance it runs on and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Agent {
    /// Instance id.
    pub(crate) id: String,
    /// The instance's cluster.
    pub(crate) cluster: String,
    /// The instance type.
    pub(crate) instance_type: String,
    /// `ip:8000`, or `None` when the instance has no usable address.
    pub(crate) addr: Option<SocketAddr>,
    /// The instance's state; only a `running` instance's agent is asked.
    pub(crate) state: String,
}

impl Agent {
    /// The agent of a running instance, on [`AGENT_PORT`].
    pub(crate) fn of(instance: &Instance) -> Self {
        Self {
            id: instance.id.clone(),
            cluster: instance.cluster.clone(),
            instance_type: instance.instance_type.clone(),
            addr: instance
                .address()
                .and_then(|a| a.parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, AGENT_PORT)),
            state: instance.state.clone(),
        }
    }

    /// Whether the instance runs, so its agent may answer.
    pub(crate) fn running(&self) -> bool {
        self.state == "running"
    }
}

/// One agent's answer to one poll.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    /// Who was asked.
    pub(crate) agent: Agent,
    /// The snapshot, or why there is none (`connection refused`, `timed out after 1000 ms`,
    /// `HTTP 500`, `bad JSON: ...`).
    pub(crate) result: Result<StatsSnapshot, String>,
}

impl Reading {
    /// The snapshot, if the agent answered.
    pub(crate) fn snapshot(&self) -> Option<&StatsSnapshot> {
        self.result.as_ref().ok()
    }
}

/// The instance's CPU as [`InstanceCpu::over`](proto::InstanceCpu::over) gives it: exact over
/// the window between `previous` and `now` when both are snapshots of the same agent run with
/// instance figures, else the agent's own last interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CpuFigures {
    /// Share of the instance's capacity, 0-100.
    pub(crate) usage_percent: f64,
    /// Share of the host's CPU time held back (throttled or stolen), 0-100; `None` from an agent
    /// too old to report it.
    pub(crate) throttled_percent: Option<f64>,
}

impl CpuFigures {
    /// The figures of `now`, over the window since `previous` where possible. From an agent
    /// without instance figures: its host's busy share, and no throttling.
    pub(crate) fn of(previous: Option<&StatsSnapshot>, now: &StatsSnapshot) -> Self {
        let Some(instance) = &now.instance else {
            return Self {
                usage_percent: now.cpu.busy_percent,
                throttled_percent: None,
            };
        };
        let window = previous
            .filter(|p| p.started_at_unix_ms == now.started_at_unix_ms)
            .and_then(|p| p.instance.as_ref().map(|i| (p.uptime_secs, &i.cpu)))
            .filter(|(uptime, _)| now.uptime_secs > *uptime)
            .map(|(uptime, before)| instance.cpu.over(before, now.uptime_secs - uptime));
        match window {
            Some(w) => Self {
                usage_percent: w.usage_percent,
                throttled_percent: Some(w.throttled_percent),
            },
            None => Self {
                usage_percent: instance.cpu.usage_percent,
                throttled_percent: Some(instance.cpu.throttled_percent),
            },
        }
    }
}

/// Milliseconds since the epoch, now (the clock the agents' `sampled_at_unix_ms` uses).
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Asks every agent for `/stats` concurrently, each with `timeout`; readings come back in the
/// order of `agents`. An instance that is not running is not asked: its reading is down with
/// `instance <state>`.
pub(crate) async fn poll(agents: &[Agent], timeout: Duration) -> Vec<Reading> {
    let started = Instant::now();
    let tasks: Vec<_> = agents
        .iter()
        .map(|agent| {
            let (addr, running) = (agent.addr, agent.running());
            let state = agent.state.clone();
            tokio::spawn(async move {
                match addr {
                    _ if !running => Err(format!("instance {state}")),
                    Some(addr) => fetch(addr, timeout).await,
                    None => Err("no IP address".to_owned()),
                }
            })
        })
        .collect();
    let mut readings = Vec::with_capacity(agents.len());
    for (agent, task) in agents.iter().zip(tasks) {
        let result = task
            .await
            .unwrap_or_else(|e| Err(format!("internal error: {e}")));
        readings.push(Reading {
            agent: agent.clone(),
            result,
        });
    }
    tracing::debug!(agents = agents.len(), elapsed = ?started.elapsed(), "stats poll");
    readings
}

/// `GET /stats` on one agent, within `timeout` from connect to the last body byte.
pub(crate) async fn fetch(addr: SocketAddr, timeout: Duration) -> Result<StatsSnapshot, String> {
    crate::http::get_json(addr, "/stats", timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server that answers every connection with `response` (or never, when `None`).
    async fn serve(response: Option<&'static str>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = socket.read(&mut buf).await;
                    match response {
                        Some(r) => socket.write_all(r.as_bytes()).await.unwrap(),
                        None => tokio::time::sleep(Duration::from_secs(30)).await,
                    }
                });
            }
        });
        addr
    }

    fn agent(addr: Option<SocketAddr>) -> Agent {
        Agent {
            id: "i-1".into(),
            cluster: "c1".into(),
            instance_type: "t3.micro".into(),
            addr,
            state: "running".into(),
        }
    }

    #[tokio::test]
    async fn every_kind_of_failure_has_its_own_reason() {
        let http500 = serve(Some(
            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n",
        ))
        .await;
        let garbage = serve(Some("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nnope!")).await;
        let silent = serve(None).await;
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let agents = [
            agent(Some(http500)),
            agent(Some(garbage)),
            agent(Some(silent)),
            agent(Some(closed)),
            agent(None),
            Agent {
                state: "stopped".into(),
                ..agent(Some(closed))
            },
        ];
        let started = Instant::now();
        let reasons: Vec<String> = poll(&agents, Duration::from_millis(300))
            .await
            .into_iter()
            .map(|r| r.result.unwrap_err())
            .collect();
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "concurrent"
        );
        assert_eq!(reasons[0], "HTTP 500");
        assert!(reasons[1].starts_with("bad JSON: "), "{}", reasons[1]);
        assert_eq!(reasons[2], "timed out after 300 ms");
        assert_eq!(reasons[3], "connection refused");
        assert_eq!(reasons[4], "no IP address");
        assert_eq!(reasons[5], "instance stopped", "not asked");
    }

    #[test]
    fn instance_cpu_is_exact_over_two_snapshots_else_the_agents_last_interval() {
        use crate::stats::view::tests::{snapshot, with_instance};
        let before = with_instance(snapshot(0, 1_000, 90.0), 10.0, 1.0, 0.5);
        let now = with_instance(snapshot(0, 3_000, 90.0), 12.0, 1.2, 0.9);
        // 0.2 s of a 0.2-core quota in 2 s: half; 0.4 s held back of 2 s x 2 host cores.
        let cpu = CpuFigures::of(Some(&before), &now);
        assert!((cpu.usage_percent - 50.0).abs() < 1e-9, "{cpu:?}");
        assert!(
            (cpu.throttled_percent.unwrap() - 10.0).abs() < 1e-9,
            "{cpu:?}"
        );
        let alone = CpuFigures::of(None, &now);
        assert_eq!(
            (alone.usage_percent, alone.throttled_percent),
            (40.0, Some(4.0))
        );
        let old_agent = CpuFigures::of(None, &snapshot(0, 1_000, 90.0));
        assert_eq!(
            (old_agent.usage_percent, old_agent.throttled_percent),
            (90.0, None)
        );
    }

    #[test]
    fn an_instance_is_reached_on_its_public_address_at_the_app_port() {
        let instance = Instance {
            id: "i-1".into(),
            name: "p-c1".into(),
            cluster: "c1".into(),
            instance_type: "t3.micro".into(),
            az: "a".into(),
            public_ip: Some("203.0.113.7".into()),
            private_ip: Some("10.0.0.7".into()),
            state: "running".into(),
            role: None,
            launched_at_unix_ms: None,
        };
        let a = Agent::of(&instance);
        assert_eq!(a.addr, Some("203.0.113.7:8000".parse().unwrap()));
        assert_eq!(a.cluster, "c1");
    }
}
