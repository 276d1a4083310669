//! Instance types as CPU quotas: the agent runs inside a cgroup whose quota is the type's, the
//! kernel enforces it, and kill removes the group.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::local::{cgroup_root, cpu_quota, cpu_stat, Record};
use crate::harness::LocalProject;

/// The group of a recorded instance.
fn group(record: &Record) -> std::path::PathBuf {
    record
        .cgroup
        .clone()
        .expect("CPU is limited on these machines")
}

/// Sends pipelined `GET /stats` on one connection while `loading` holds, and drains the answers
/// on a second thread: as much work for the agent as cheaply as possible for the client.
fn hammer(addr: SocketAddr, loading: &AtomicBool) {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return;
    };
    let Ok(mut answers) = stream.try_clone() else {
        return;
    };
    let drain = std::thread::spawn(move || {
        let mut buf = [0u8; 64 * 1024];
        while let Ok(1..) = answers.read(&mut buf) {}
    });
    let batch = "GET /stats HTTP/1.1\r\nHost: agent\r\n\r\n".repeat(16);
    while loading.load(Ordering::Relaxed) && stream.write_all(batch.as_bytes()).is_ok() {}
    let _ = stream.shutdown(Shutdown::Both);
    let _ = drain.join();
}

/// A t3.micro's quota (2 vCPU × 10% = 20 ms per 100 ms) is in the kernel's files, the agent's
/// pid is in the group, and kill removes the group.
#[test]
fn the_type_quota_is_applied_to_the_agent_and_removed_on_kill() {
    let project = LocalProject::new();
    project.launch("c1", "t3.micro", 1);
    let record = project.records().remove(0);
    let group = group(&record);
    assert!(group.starts_with(cgroup_root().join("elb").join(project.elb.project())));
    assert_eq!(cpu_quota(&group), (20_000, 100_000));

    let procs = std::fs::read_to_string(group.join("cgroup.procs")).expect("cgroup.procs");
    assert!(
        procs.lines().any(|l| l == record.pid.to_string()),
        "pid {} not in {procs}",
        record.pid
    );
    let relative = group.strip_prefix(cgroup_root()).expect("under the root");
    let membership =
        std::fs::read_to_string(format!("/proc/{}/cgroup", record.pid)).expect("/proc/pid/cgroup");
    assert!(
        membership
            .lines()
            .any(|l| l.ends_with(&format!(":/{}", relative.display()))),
        "the kernel puts the agent in {}:\n{membership}",
        relative.display()
    );

    project.run(&["kill", "--yes"]).expect_code(0);
    assert!(!group.exists(), "{} is left", group.display());
}

/// Under the same load, the kernel throttles a t3.micro agent and not an m4.large one
/// (2 vCPUs at 100%: as much CPU as this machine has). Counts, not timings.
#[test]
fn a_micro_agent_is_throttled_where_a_large_one_is_not() {
    let project = LocalProject::new();
    project.launch("small", "t3.micro", 1);
    project.launch("large", "m4.large", 1);
    let records = project.records();
    let by_type = |t: &str| {
        records
            .iter()
            .find(|r| r.instance_type == t)
            .expect(t)
            .clone()
    };
    let (micro, large) = (by_type("t3.micro"), by_type("m4.large"));
    let throttled = |r: &Record| cpu_stat(&group(r), "nr_throttled");
    let before = (throttled(&micro), throttled(&large));

    // The same load on both at once, a few clients each, until the micro one has been
    // throttled a few times (bounded: a slow machine gets longer, never a timing assert).
    let loading = Arc::new(AtomicBool::new(true));
    let clients: Vec<_> = [&micro, &large]
        .into_iter()
        .flat_map(|r| std::iter::repeat_n(r.addr(), 3))
        .map(|addr| {
            let loading = loading.clone();
            std::thread::spawn(move || {
                while loading.load(Ordering::Relaxed) {
                    hammer(addr, &loading);
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while throttled(&micro) - before.0 < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    loading.store(false, Ordering::Relaxed);
    for client in clients {
        client.join().expect("load client");
    }

    let micro_throttled = throttled(&micro) - before.0;
    let large_throttled = throttled(&large) - before.1;
    assert!(micro_throttled > 0, "the micro agent was never throttled");
    assert!(
        micro_throttled > large_throttled,
        "micro throttled in {micro_throttled} periods, large in {large_throttled}"
    );
}

/// A local instance has its type's memory as the limit of its group (a t3.micro 1 GiB, an
/// m4.large 8 GiB), so its agent reports instance-true memory, as it does CPU; kill removes the
/// group with the rest.
#[test]
fn the_type_memory_is_the_agents_limit() {
    let project = LocalProject::new();
    project.launch("micro", "t3.micro", 1);
    project.launch("large", "m4.large", 1);
    let view = project.run(&["stats"]).json();
    let total = |cluster: &str| {
        view["instances"]
            .as_array()
            .expect("instances")
            .iter()
            .find(|i| i["cluster"] == cluster)
            .and_then(|i| i["memory_total_bytes"].as_u64())
            .unwrap_or_else(|| panic!("{cluster}'s memory in {view:#}"))
    };
    assert_eq!(total("micro"), 1 << 30, "{view:#}");
    assert_eq!(total("large"), 8 << 30, "{view:#}");
    let memory_root = std::path::Path::new("/sys/fs/cgroup/memory/elb").join(project.elb.project());
    project.run(&["kill", "--yes"]).expect_code(0);
    assert!(!memory_root.exists(), "{} is left", memory_root.display());
}
