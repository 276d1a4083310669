//! Command-line flags (each also readable from an `ELB_AGENT_*` environment variable).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

/// The elb instance agent: answers with the hostname and live load stats of this host.
#[derive(Debug, Parser)]
#[command(name = "elb-agent", version)]
pub(crate) struct Cli {
    /// Address to listen on. Port 0 picks a free port; the bound address is printed on stdout
    /// as `listening on <addr>`.
    #[arg(long, env = "ELB_AGENT_LISTEN", default_value_t = SocketAddr::from(([0, 0, 0, 0], proto::AGENT_PORT)))]
    pub listen: SocketAddr,

    /// Cluster this instance belongs to, reported as `cluster`.
    #[arg(long, env = "ELB_AGENT_CLUSTER")]
    pub cluster: Option<String>,

    /// EC2 instance id. Wins over instance metadata.
    #[arg(long, env = "ELB_AGENT_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// EC2 instance type. Wins over instance metadata.
    #[arg(long, env = "ELB_AGENT_INSTANCE_TYPE")]
    pub instance_type: Option<String>,

    /// Availability zone. Wins over instance metadata.
    #[arg(long, env = "ELB_AGENT_AZ")]
    pub az: Option<String>,

    /// Read instance id, type and AZ from EC2 instance metadata (IMDSv2) at start, for those not
    /// given by flags. Bounded by a 1 s timeout; on failure the agent starts without them.
    #[arg(long, env = "ELB_AGENT_IMDS")]
    pub imds: bool,

    /// Instance metadata endpoint, `http://<ip>:<port>` (an IP literal: the agent does no DNS).
    #[arg(
        long,
        env = "ELB_AGENT_IMDS_ENDPOINT",
        default_value = "http://169.254.169.254:80",
        value_parser = crate::imds::parse_endpoint
    )]
    pub imds_endpoint: SocketAddr,

    /// Interval of the background stats sampler (`250ms`, `1s`, `1.5s`).
    #[arg(long, env = "ELB_AGENT_SAMPLE_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub sample_interval: Duration,

    /// Window of the request latency summary.
    #[arg(long, env = "ELB_AGENT_LATENCY_WINDOW", default_value = "10s", value_parser = parse_duration)]
    pub latency_window: Duration,

    /// How long a client may take to send a request's headers (idle keep-alive included) before
    /// its connection is closed.
    #[arg(long, env = "ELB_AGENT_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub read_timeout: Duration,

    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish before the agent exits
    /// anyway (with status 1).
    #[arg(long, env = "ELB_AGENT_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub grace: Duration,

    /// Serve `GET /sleep?ms=N` (answers after N ms, at most 30000) and `GET /work?us=N` (burns N
    /// µs of CPU, at most 100000, then answers as `/`): a deliberately slow and a deliberately costly
    /// backend for load-balancer and shutdown experiments. Off by default.
    #[arg(long, env = "ELB_AGENT_ENABLE_DEBUG_ENDPOINTS")]
    pub enable_debug_endpoints: bool,
}

/// Parses `250ms`, `2s`, `1.5s` or a bare number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 250ms, 2s or 1.5s"))?;
    Duration::try_from_secs_f64(value * scale)
        .map_err(|_| format!("`{text}` is not a non-negative duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_ms_s_and_bare_seconds() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn bad_durations_are_refused() {
        assert!(parse_duration("").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1h").is_err());
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let cli = Cli::try_parse_from(["elb-agent"]).unwrap();
        assert_eq!(cli.listen, "0.0.0.0:8000".parse().unwrap());
        assert_eq!(cli.sample_interval, Duration::from_secs(1));
        assert!(!cli.imds);
        assert!(!cli.enable_debug_endpoints);
    }
}
