//! Benchmark (ignored by default; `scripts/bench-deploy.sh` runs it): `elb deploy` to 1 and to 8
//! test hosts in interleaved rounds; prints wall times, upload throughput, CPU time (elb's, and
//! the whole machine's: the test hosts' sshd and agents share its cores) and the 8/1 ratio
//! against the goal (8 hosts in at most 1.5x the time of 1).

use std::time::Duration;

use super::{assert_all_ok, World};
use crate::harness::{static_agent, ElbOutput};

/// Rounds, each deploying to 1 host then to 8 (`BENCH_ROUNDS` overrides).
const ROUNDS: usize = 5;

/// One deploy's figures.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    /// CPU time of the `elb` process.
    elb_cpu: Duration,
    /// CPU time of every process on the machine (elb, sshd, agents, shells).
    machine_cpu: Duration,
}

/// User + system time of the reaped children of this process.
fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the struct we pass; no other precondition.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Busy time of every CPU since boot, from /proc/stat (user + nice + system + irq + softirq).
fn machine_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let ticks: u64 = [0, 1, 2, 5, 6].iter().filter_map(|&i| fields.get(i)).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

fn measure(hosts: usize, deploy: impl FnOnce() -> ElbOutput) -> Sample {
    let (elb0, machine0) = (children_cpu(), machine_cpu());
    let output = deploy();
    assert_all_ok(&output, hosts);
    Sample {
        wall: output.elapsed,
        elb_cpu: children_cpu() - elb0,
        machine_cpu: machine_cpu() - machine0,
    }
}

fn median(samples: &[Sample], key: impl Fn(&Sample) -> Duration) -> Duration {
    let mut values: Vec<Duration> = samples.iter().map(key).collect();
    values.sort();
    values[values.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
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
    // First contact (known_hosts) and first install are not what is measured: every measured
    // deploy is an upgrade of a running agent.
    assert_all_ok(&world.deploy(&[]), 8);
    let (mut s1, mut s8) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let single = measure(1, || world.deploy_to(&one, "10", &[]));
        let all = measure(8, || world.deploy(&[]));
        println!(
            "round {round}: 1 host {:>5.0} ms   8 hosts {:>5.0} ms",
            ms(single.wall),
            ms(all.wall)
        );
        s1.push(single);
        s8.push(all);
    }
    println!("agent binary {agent_mb:.2} MB, {rounds} rounds, medians:");
    for (hosts, samples) in [(1, &s1), (8, &s8)] {
        let wall = median(samples, |s| s.wall);
        println!(
            "{hosts} host(s): wall {:>5.0} ms, upload {:>5.1} MB/s ({:>4.1} MB), elb CPU {:>4.0} \
             ms, machine CPU {:>5.0} ms",
            ms(wall),
            hosts as f64 * agent_mb / wall.as_secs_f64(),
            hosts as f64 * agent_mb,
            ms(median(samples, |s| s.elb_cpu)),
            ms(median(samples, |s| s.machine_cpu)),
        );
    }
    let ratio = median(&s8, |s| s.wall).as_secs_f64() / median(&s1, |s| s.wall).as_secs_f64();
    println!(
        "8 hosts / 1 host = {ratio:.2}x (goal <= 1.5x): {}",
        if ratio <= 1.5 { "met" } else { "NOT met" }
    );
}
