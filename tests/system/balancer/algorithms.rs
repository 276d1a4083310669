//! Each algorithm's defining property against real agents: who gets how many requests, read
//! from the agents' own answers (each names its `--instance-id`).
//!
//! The slow target is an agent in a cgroup of its own with 1 ms of CPU per 100 ms: under load
//! the kernel throttles it as it does a small instance type, and its answers take tens of ms
//! where the others' take one or less.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proto::balancer_config::{Algorithm, HealthCheck, TargetGroup};

use super::served;
use crate::harness::balancer::{agent, agent_args, config, group, target};
use crate::harness::load::{self, failures, Load};
use crate::harness::stub_target::{Misbehaviour, StubTarget};
use crate::harness::{Agent, Balancer, CpuLimit, HostCpu, KeepAlive};

/// An agent throttled to 1 ms of CPU per 100 ms, with its limit (dropped after the agent).
struct SlowAgent {
    agent: Agent,
    limit: CpuLimit,
}

impl SlowAgent {
    /// Periods in which the kernel throttled it so far.
    fn throttled(&self) -> u64 {
        crate::harness::local::cpu_stat(&self.limit.dir, "nr_throttled")
    }

    fn start(id: &str) -> Self {
        let agent = agent("c", id);
        let limit = CpuLimit::apply(
            agent.pid(),
            Duration::from_millis(1),
            Duration::from_millis(100),
        );
        Self { agent, limit }
    }
}

/// A group whose health checks tolerate a throttled agent (answers within a 100 ms period or
/// two) and never flip during a test: every 300 ms, 250 ms timeout, 5 failures to go unhealthy.
fn tolerant_group(name: &str, algorithm: Algorithm, agents: &[(&str, &Agent)]) -> TargetGroup {
    let targets = agents.iter().map(|(id, a)| target(id, a.addr)).collect();
    TargetGroup {
        health_check: HealthCheck {
            interval_ms: 300,
            timeout_ms: 250,
            healthy_threshold: 1,
            unhealthy_threshold: 5,
            ..HealthCheck::default()
        },
        ..group(name, algorithm, targets)
    }
}

/// The share of `outcomes` that `id` served, after checking that all were answered 200.
fn share(outcomes: &[load::Outcome], id: &str) -> f64 {
    let failed = failures(outcomes);
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    let counts = served(outcomes);
    *counts.get(id).unwrap_or(&0) as f64 / outcomes.len() as f64
}

/// The median time of the requests `id` served.
fn median_took(outcomes: &[load::Outcome], id: &str) -> Duration {
    let mut took: Vec<Duration> = outcomes
        .iter()
        .filter(|o| o.served_by.as_deref() == Some(id))
        .map(|o| o.took)
        .collect();
    took.sort();
    *took
        .get(took.len() / 2)
        .unwrap_or_else(|| panic!("{id} served nothing"))
}

#[test]
fn round_robin_gives_every_target_its_turn_within_one() {
    let agents: Vec<Agent> = (0..3).map(|i| agent("c", &format!("i-{i}"))).collect();
    let targets = agents
        .iter()
        .enumerate()
        .map(|(i, a)| target(&format!("i-{i}"), a.addr))
        .collect();
    let balancer = Balancer::start(&config(vec![group("c", Algorithm::RoundRobin, targets)]));
    balancer.wait_all_healthy();

    // One client: after every request no target is more than one ahead of another.
    let mut client = KeepAlive::new(balancer.addr());
    let started = Instant::now();
    let mut counts: BTreeMap<String, usize> = (0..3).map(|i| (format!("i-{i}"), 0)).collect();
    for n in 1..=60 {
        let outcome = load::send(&mut client, "/", started);
        assert!(outcome.ok(), "request {n}: {outcome:?}");
        let id = outcome.served_by.expect("the agent names itself");
        *counts.get_mut(&id).expect("one of the group's targets") += 1;
        let (min, max) = (counts.values().min(), counts.values().max());
        assert!(
            max.zip(min).is_some_and(|(max, min)| max - min <= 1),
            "after {n} requests: {counts:?}"
        );
    }

    // Six concurrent clients share one counter: 300 requests, 100 each within one.
    let outcomes = load::run(balancer.addr(), "/", 6, 50);
    assert!(failures(&outcomes).is_empty(), "{:?}", failures(&outcomes));
    let counts = served(&outcomes);
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(
        counts.values().all(|&n| (99..=101).contains(&n)),
        "300 concurrent requests over 3 targets: {counts:?}"
    );
}

#[test]
fn least_outstanding_p2c_and_lowest_latency_send_a_slow_target_fewer_requests_than_round_robin() {
    let fast: Vec<Agent> = (0..2).map(|i| agent("c", &format!("i-fast{i}"))).collect();
    let slow = SlowAgent::start("i-slow");
    let members = [
        ("i-fast0", &fast[0]),
        ("i-fast1", &fast[1]),
        ("i-slow", &slow.agent),
    ];
    let balancers: Vec<(Algorithm, Balancer)> = [
        Algorithm::RoundRobin,
        Algorithm::LeastOutstandingRequests,
        Algorithm::P2cPeakEwma,
        Algorithm::LowestLatency,
    ]
    .into_iter()
    .map(|algorithm| {
        let group = tolerant_group("c", algorithm, &members);
        (algorithm, Balancer::start(&config(vec![group])))
    })
    .collect();
    for (_, balancer) in &balancers {
        balancer.wait_all_healthy();
    }

    // The same load, six clients for 750 ms, against each in turn.
    let mut shares = Vec::new();
    for (algorithm, balancer) in &balancers {
        let throttled = slow.throttled();
        let load = Load::start(balancer.addr(), "/", 6);
        std::thread::sleep(Duration::from_millis(750));
        let outcomes = load.stop();
        if *algorithm == Algorithm::RoundRobin {
            // The premise: under this load the kernel throttles the slow target (its answers
            // take a few times longer on an idle machine; timings say little when other tests
            // share the two cores, the kernel's count does).
            assert!(
                slow.throttled() > throttled,
                "the kernel never throttled the slow agent; answers took {:?} (median) there, \
                 {:?} elsewhere",
                median_took(&outcomes, "i-slow"),
                median_took(&outcomes, "i-fast0")
            );
        }
        let slow_share = share(&outcomes, "i-slow");
        shares.push((algorithm.name(), slow_share, served(&outcomes)));
    }
    let rr = shares[0].1;
    assert!(
        (0.30..=0.37).contains(&rr),
        "round robin gives the slow target a third: {shares:?}"
    );
    for (name, slow_share, _) in &shares[1..] {
        assert!(
            *slow_share < rr / 2.0,
            "{name} sent the slow target {:.1} % of requests, round robin {:.1} %: {shares:?}",
            slow_share * 100.0,
            rr * 100.0
        );
    }
}

#[test]
fn weighted_random_follows_the_weights_within_a_few_percent() {
    let weights = [1u32, 2, 5];
    let agents: Vec<Agent> = (0..3).map(|i| agent("c", &format!("i-{i}"))).collect();
    let targets = agents
        .iter()
        .zip(weights)
        .enumerate()
        .map(|(i, (a, weight))| proto::balancer_config::Target {
            weight,
            ..target(&format!("i-{i}"), a.addr)
        })
        .collect();
    let balancer = Balancer::start(&config(vec![group(
        "c",
        Algorithm::WeightedRandom,
        targets,
    )]));
    balancer.wait_all_healthy();

    let outcomes = load::run(balancer.addr(), "/", 4, 800);
    assert!(failures(&outcomes).is_empty(), "{:?}", failures(&outcomes));
    let counts = served(&outcomes);
    let total: u32 = weights.iter().sum();
    for (i, weight) in weights.iter().enumerate() {
        let expected = f64::from(*weight) / f64::from(total);
        let got = share(&outcomes, &format!("i-{i}"));
        assert!(
            (got - expected).abs() <= 0.03,
            "i-{i} (weight {weight}) served {:.1} %, expected {:.1} % +- 3: {counts:?}",
            got * 100.0,
            expected * 100.0
        );
    }
}

#[test]
fn agent_load_favours_the_agent_whose_host_is_idle() {
    let (busy_host, idle_host) = (HostCpu::new(95), HostCpu::new(5));
    let busy = busy_host.agent(&agent_args("c", "i-busy"));
    let idle = idle_host.agent(&agent_args("c", "i-idle"));
    // The agents report what their hosts' kernels say.
    for (agent, low, high) in [(&busy, 90.0, 100.0), (&idle, 0.0, 10.0)] {
        agent.stats_until(Duration::from_secs(5), |s| {
            (low..=high).contains(&s.cpu.busy_percent)
        });
    }
    let targets = vec![target("i-busy", busy.addr), target("i-idle", idle.addr)];
    let balancer = Balancer::start(&config(vec![group("c", Algorithm::AgentLoad, targets)]));
    let status = balancer.status_until(Duration::from_secs(10), "both agents' load read", |s| {
        s.groups[0].targets.iter().all(|t| {
            t.state == proto::TargetState::Healthy
                && t.agent_busy_percent.is_some_and(|b| match t.id.as_str() {
                    "i-busy" => b >= 90.0,
                    _ => b <= 10.0,
                })
        })
    });

    let outcomes = load::run(balancer.addr(), "/", 1, 400);
    let idle_share = share(&outcomes, "i-idle");
    // Weights 0.95 and 0.05 of spare CPU: 95 % expected.
    assert!(
        idle_share >= 0.88,
        "the idle agent served {:.0} %: {:?}; /status before: {:#?}",
        idle_share * 100.0,
        served(&outcomes),
        status.groups[0].targets
    );
}

#[test]
fn p2c_peak_ewma_and_lowest_latency_do_not_take_a_fast_failing_target_for_a_cheap_one() {
    let good: Vec<Agent> = (0..2).map(|i| agent("c", &format!("i-good{i}"))).collect();
    let failer = StubTarget::start(Misbehaviour::Answer500);
    let mut targets: Vec<_> = good
        .iter()
        .enumerate()
        .map(|(i, a)| target(&format!("i-good{i}"), a.addr))
        .collect();
    targets.push(target("i-failing", failer.addr));
    for algorithm in [Algorithm::P2cPeakEwma, Algorithm::LowestLatency] {
        let mut group = group("c", algorithm, targets.clone());
        // No ejection: the algorithm alone must keep away from it.
        group.outlier_detection.consecutive_failures = 0;
        let balancer = Balancer::start(&config(vec![group]));
        balancer.wait_all_healthy();

        let outcomes = load::run(balancer.addr(), "/", 4, 250);
        let failed = failures(&outcomes).len() as f64 / outcomes.len() as f64;
        assert!(
            failed < 0.15,
            "{}: {:.0} % of requests went to the target that fails fast (a third would be \
             fair): {:#?}",
            algorithm.name(),
            failed * 100.0,
            balancer.status().groups[0].targets
        );
    }
}
