//! Benchmark (ignored by default; `scripts/bench-deploy.sh` runs it): `elb deploy` to 1 and to 8
//! test hosts in interleaved rounds; prints wall times, upload throughput and the 8/1 ratio
//! against the goal (8 hosts in at most 1.5x the time of 1).

use std::time::Duration;

use super::{assert_all_ok, World};
use crate::harness::static_agent;

/// Rounds, each deploying to 1 host then to 8 (`BENCH_ROUNDS` overrides).
const ROUNDS: usize = 5;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[test]
#[ignore = "benchmark: run scripts/bench-deploy.sh"]
fn bench_deploy_to_1_and_8_hosts() {
    let rounds = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    let world = World::plain(8);
    let one = world.hosts.hosts[0].address.clone();
    let agent_mb = std::fs::metadata(static_agent())
        .expect("the static agent")
        .len() as f64
        / 1e6;
    // First contact (known_hosts) and first install are not what is measured.
    assert_all_ok(&world.deploy(&[]), 8);
    let (mut t1, mut t8) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let single = world.deploy_to(&one, "10", &[]);
        assert_all_ok(&single, 1);
        let all = world.deploy(&[]);
        assert_all_ok(&all, 8);
        println!(
            "round {round}: 1 host {:>6.0} ms   8 hosts {:>6.0} ms",
            single.elapsed.as_secs_f64() * 1e3,
            all.elapsed.as_secs_f64() * 1e3
        );
        t1.push(single.elapsed);
        t8.push(all.elapsed);
    }
    let (m1, m8) = (median(t1), median(t8));
    let ratio = m8.as_secs_f64() / m1.as_secs_f64();
    println!("agent binary {agent_mb:.2} MB, {rounds} rounds, medians:");
    for (hosts, wall) in [(1.0, m1), (8.0, m8)] {
        println!(
            "deploy to {hosts} host(s): wall {:>6.0} ms, upload throughput {:>6.1} MB/s \
             ({:.1} MB in all)",
            wall.as_secs_f64() * 1e3,
            hosts * agent_mb / wall.as_secs_f64(),
            hosts * agent_mb
        );
    }
    println!(
        "8 hosts / 1 host = {ratio:.2}x (goal <= 1.5x): {}",
        if ratio <= 1.5 { "met" } else { "NOT met" }
    );
}
