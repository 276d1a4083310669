//! The stats move with what really happens: requests sent, CPU burnt.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::raw_http;
use crate::harness::{now_unix_ms, Agent};

#[test]
fn request_counters_move_by_exactly_the_requests_sent() {
    let agent = Agent::start(&["--sample-interval", "100ms"]);
    let before = agent.stats();
    let sent = [
        ("GET", "/", 7),
        ("GET", "/cluster1", 25),
        ("GET", "/cluster2", 3),
        ("GET", "/healthz", 4),
        ("GET", "/metrics", 5),
        ("GET", "/nope", 2),
        ("DELETE", "/cluster1", 1),
    ];
    for (method, path, n) in sent {
        for _ in 0..n {
            raw_http::request(agent.addr, method, path).expect("request");
        }
    }
    // Counters are read after a snapshot's timestamp is taken: one stamped later than the last
    // answer includes every request above.
    let done = now_unix_ms();
    let after = agent.stats_until(Duration::from_secs(10), |s| s.sampled_at_unix_ms > done + 1);

    let delta = |key: &str| after.requests.per_endpoint[key] - before.requests.per_endpoint[key];
    for (key, expected) in [
        ("/", 7),
        ("/cluster1", 25),
        ("/cluster2", 3),
        ("/healthz", 4),
        ("/metrics", 5),
        ("not_found", 2),
        ("method_not_allowed", 1),
        ("payload_too_large", 0),
        ("/sleep", 0),
        ("/work", 0),
    ] {
        assert_eq!(delta(key), expected, "{key}");
    }
    // Monitoring (/healthz, /metrics and this test's own /stats polls) is counted apart.
    let total_delta = after.requests.total - before.requests.total;
    assert_eq!(total_delta, 47 - 4 - 5);
    let monitoring_delta = after.requests.monitoring - before.requests.monitoring;
    assert_eq!(monitoring_delta, 4 + 5 + delta("/stats"));
    assert_eq!(
        after.requests.total + after.requests.monitoring,
        after.requests.per_endpoint.values().sum::<u64>()
    );
    assert!(after.requests.latency.count >= 38);
    assert!(after.requests.latency.p50_ms > 0.0);
    assert!(after.requests.latency.p99_ms >= after.requests.latency.p50_ms);
}

#[test]
fn cpu_busy_percent_rises_while_the_test_burns_cpu() {
    let agent = Agent::start(&["--sample-interval", "200ms"]);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let stop = Arc::new(AtomicBool::new(false));
    let burners: Vec<_> = (0..cores)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();
    // Polled rather than timed: on a busy machine the burners may need a while to get the cores.
    let burning_since = now_unix_ms();
    let busy = std::panic::catch_unwind(|| {
        agent.stats_until(Duration::from_secs(15), |s| {
            s.sampled_at_unix_ms > burning_since + 250
                && s.cpu.busy_percent >= 80.0
                && s.cpu.per_core_busy_percent.iter().all(|&c| c >= 50.0)
        })
    });
    stop.store(true, Ordering::Relaxed);
    for burner in burners {
        burner.join().expect("burner thread");
    }
    let busy = busy.unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert!(busy.cpu.busy_percent <= 100.0);
}
