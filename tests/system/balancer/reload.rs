//! Reload on SIGHUP under load: targets added and removed with no error at the client, a
//! removed target's slow requests finish while it drains, and a bad config is refused while the
//! old one keeps serving.

use std::time::{Duration, Instant};

use proto::balancer_config::{Algorithm, Config, Target};
use proto::TargetState;

use super::served;
use crate::harness::balancer::{agent, config, group, target, target_status};
use crate::harness::load::{failures, Load};
use crate::harness::raw_http;
use crate::harness::{Agent, Balancer};

/// The config of one round-robin group `web` over `targets`, labelled `version`.
fn web(version: &str, targets: Vec<Target>) -> Config {
    let mut config = config(vec![group("web", Algorithm::RoundRobin, targets)]);
    config.version = Some(version.into());
    config
}

/// The sum of the targets' `in_flight` in `/status`.
fn in_flight(balancer: &Balancer) -> u64 {
    balancer.status().groups[0]
        .targets
        .iter()
        .map(|t| t.in_flight)
        .sum()
}

#[test]
fn reloads_under_load_add_and_remove_targets_without_an_error_and_drain_slow_requests() {
    let agents: Vec<Agent> = ["a", "b", "c"]
        .iter()
        .map(|n| agent("web", &format!("i-{n}")))
        .collect();
    let t = |i: usize| target(&format!("i-{}", ["a", "b", "c"][i]), agents[i].addr);
    let balancer = Balancer::start(&web("v1", vec![t(0), t(1)]));
    balancer.wait_all_healthy();
    let load = Load::start(balancer.addr(), "/", 4);
    load.wait_for_more(200, Duration::from_secs(10));

    // Add c: it starts `initial`, then takes its share once healthy.
    let v1 = balancer.status();
    balancer.reload(&web("v2", vec![t(0), t(1), t(2)]));
    let status = balancer.status_until(Duration::from_secs(5), "c added and healthy", |s| {
        s.config_version == "v2"
            && target_status(s, "i-c").is_some_and(|t| t.state == TargetState::Healthy)
    });
    assert_eq!(status.config_generation, 2);
    // a and b stay as they were: healthy, their counters kept, not rebuilt.
    for id in ["i-a", "i-b"] {
        let (old, new) = (target_status(&v1, id), target_status(&status, id));
        let (old, new) = (old.expect("listed in v1"), new.expect("listed in v2"));
        assert_eq!(new.state, TargetState::Healthy, "{new:#?}");
        assert!(new.requests >= old.requests, "{id}: {old:#?} -> {new:#?}");
    }
    assert!(status.groups[0].requests >= v1.groups[0].requests);
    let added = load.count();
    load.wait_for_more(300, Duration::from_secs(10));

    // One slow request on each target: with the load paused, round robin places them.
    let outcomes_before = load.stop();
    let mut slow = Vec::new();
    for n in 1..=3 {
        let addr = balancer.addr();
        slow.push(std::thread::spawn(move || {
            let sent = Instant::now();
            let response = raw_http::request(addr, "GET", "/sleep?ms=1500");
            (
                response.map(|r| r.status).map_err(|e| e.to_string()),
                sent.elapsed(),
            )
        }));
        balancer.status_until(Duration::from_secs(5), "the slow request sent", |_| {
            in_flight(&balancer) >= n
        });
    }
    let status = balancer.status();
    assert!(
        status.groups[0].targets.iter().all(|t| t.in_flight == 1),
        "one slow request per target: {status:#?}"
    );
    let load = Load::start(balancer.addr(), "/", 4);
    load.wait_for_more(100, Duration::from_secs(10));

    // Remove a: it drains, takes no new request, and its slow one finishes.
    balancer.reload(&web("v3", vec![t(1), t(2)]));
    let draining = balancer.status_until(Duration::from_secs(5), "a draining", |s| {
        s.config_version == "v3"
            && target_status(s, "i-a").is_some_and(|t| t.state == TargetState::Draining)
    });
    let a = target_status(&draining, "i-a").expect("a is listed while draining");
    assert_eq!(a.reason, "Target.DeregistrationInProgress");
    assert!(a.in_flight >= 1, "{a:#?}");
    // Anything sent from now on was sent after the reload.
    let removed = load.started.elapsed();
    for request in slow {
        let (status, took) = request.join().expect("a slow request thread");
        assert_eq!(status, Ok(200), "a slow request in flight over the reload");
        assert!(
            took >= Duration::from_millis(1500),
            "answered after {took:?}"
        );
    }
    // Idle now: gone well before its deregistration delay (3 s).
    let gone = Instant::now();
    balancer.status_until(Duration::from_secs(2), "a gone once idle", |s| {
        target_status(s, "i-a").is_none()
    });
    assert!(gone.elapsed() < Duration::from_secs(2));
    load.wait_for_more(300, Duration::from_secs(10));
    let outcomes = load.stop();

    let failed: Vec<_> = failures(&outcomes_before)
        .into_iter()
        .chain(failures(&outcomes))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed over two reloads: {:?}",
        failed.len(),
        outcomes_before.len() + outcomes.len(),
        &failed[..failed.len().min(10)]
    );
    let after_add = served(&outcomes_before[added..]);
    assert!(
        after_add.get("i-c").is_some_and(|&n| n > 0),
        "c takes requests once added: {after_add:?}"
    );
    let sent_after: Vec<_> = outcomes
        .iter()
        .filter(|o| o.sent_at > removed)
        .cloned()
        .collect();
    let after_remove = served(&sent_after);
    assert_eq!(
        after_remove.get("i-a"),
        None,
        "a removed target takes no new requests: {after_remove:?}"
    );
    let metrics = balancer.metrics();
    assert_eq!(
        metrics.sum("elb_reload_count_total", &[("result", "ok")]),
        2.0,
        "{}",
        metrics.text
    );
}

#[test]
fn a_bad_config_is_refused_with_its_reason_and_the_old_one_keeps_serving() {
    let served_by = agent("web", "i-a");
    let good = web("good", vec![target("i-a", served_by.addr)]);
    let balancer = Balancer::start(&good);
    balancer.wait_all_healthy();
    let load = Load::start(balancer.addr(), "/", 2);
    load.wait_for_more(100, Duration::from_secs(10));

    let mut bad_address = good.clone();
    bad_address.version = Some("bad".into());
    bad_address.target_groups[0].targets[0].address = "web1:8000".into();
    let mut moved_listener = good.clone();
    moved_listener.version = Some("moved".into());
    moved_listener.listeners[0].address = "127.0.0.1:1".parse().expect("an address");
    let file = balancer.config_path.display().to_string();
    let cases = [
        (
            crate::harness::balancer::to_toml(&bad_address),
            "target_groups[0].targets[0].address",
            "write an IP address and a port",
        ),
        (
            "listeners = [ { address = \"127.0.0.1:0\" }\n".to_string(),
            "TOML",
            "",
        ),
        (
            crate::harness::balancer::to_toml(&moved_listener),
            "listeners",
            "restart the balancer",
        ),
    ];
    for (refused, (text, field, fix)) in cases.iter().enumerate() {
        balancer.reload_toml(text);
        // The count is raised a moment before the reason is stored: wait for both.
        let status = balancer.status_until(Duration::from_secs(5), "the reload refused", |s| {
            s.reloads_refused == refused as u64 + 1
                && s.last_reload_error
                    .as_deref()
                    .is_some_and(|e| e.contains(field))
        });
        let error = status.last_reload_error.as_deref().unwrap_or_default();
        assert!(
            error.contains(&file) && error.contains(fix),
            "the refusal names {file}, {field} and {fix:?}: {error}"
        );
        assert_eq!(status.config_version, "good");
        assert_eq!(status.config_generation, 1);
        let deadline = Instant::now() + Duration::from_secs(2);
        while !balancer.stderr().contains(error) {
            assert!(
                Instant::now() < deadline,
                "the refusal is not logged: {}",
                balancer.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        load.wait_for_more(100, Duration::from_secs(10));
    }
    let outcomes = load.stop();
    assert!(
        failures(&outcomes).is_empty(),
        "{:?}",
        &failures(&outcomes)[..failures(&outcomes).len().min(10)]
    );
    assert!(outcomes
        .iter()
        .all(|o| o.served_by.as_deref() == Some("i-a")));
    let metrics = balancer.metrics();
    assert_eq!(
        metrics.sum("elb_reload_count_total", &[("result", "refused")]),
        3.0,
        "{}",
        metrics.text
    );
    assert_eq!(
        metrics.sum("elb_reload_count_total", &[("result", "ok")]),
        0.0
    );
}

#[test]
fn a_target_added_by_a_reload_gets_no_traffic_until_it_passes_its_checks() {
    let serving = agent("web", "i-a");
    let added = agent("web", "i-d");
    // Stopped: it accepts connections (the kernel does) but answers nothing, checks included.
    added.signal(libc::SIGSTOP);
    let balancer = Balancer::start(&web("v1", vec![target("i-a", serving.addr)]));
    balancer.wait_all_healthy();
    let load = Load::start(balancer.addr(), "/", 2);
    load.wait_for_more(100, Duration::from_secs(10));

    balancer.reload(&web(
        "v2",
        vec![target("i-a", serving.addr), target("i-d", added.addr)],
    ));
    let status = balancer.status_until(Duration::from_secs(5), "d checked and failing", |s| {
        s.config_version == "v2"
            && target_status(s, "i-d").is_some_and(|t| t.reason != "Elb.RegistrationInProgress")
    });
    let d = target_status(&status, "i-d").expect("d is registered");
    assert_ne!(d.state, TargetState::Healthy, "{d:#?}");
    load.wait_for_more(300, Duration::from_secs(10));
    let status = balancer.status();
    let d = target_status(&status, "i-d").expect("d is registered");
    assert_ne!(d.state, TargetState::Healthy, "{d:#?}");
    assert_eq!(
        d.requests, 0,
        "a target that never passed a check got traffic: {d:#?}"
    );

    added.signal(libc::SIGCONT);
    balancer.status_until(Duration::from_secs(5), "d healthy once it answers", |s| {
        target_status(s, "i-d").is_some_and(|t| t.state == TargetState::Healthy)
    });
    let healthy = load.count();
    load.wait_for_more(300, Duration::from_secs(10));
    let outcomes = load.stop();
    assert!(
        failures(&outcomes).is_empty(),
        "{:?}",
        &failures(&outcomes)[..failures(&outcomes).len().min(10)]
    );
    let after = served(&outcomes[healthy..]);
    assert!(
        after.get("i-d").is_some_and(|&n| n > 0),
        "d takes requests once healthy: {after:?}"
    );
}

#[test]
fn a_draining_target_is_dropped_after_its_delay_and_its_request_still_finishes() {
    let agents: Vec<Agent> = ["a", "b"]
        .iter()
        .map(|n| agent("web", &format!("i-{n}")))
        .collect();
    let with_delay = |version: &str, targets: Vec<Target>| {
        let mut config = web(version, targets);
        config.target_groups[0].deregistration_delay_ms = 400;
        config
    };
    let (a, b) = (target("i-a", agents[0].addr), target("i-b", agents[1].addr));
    let balancer = Balancer::start(&with_delay("v1", vec![a.clone(), b.clone()]));
    balancer.wait_all_healthy();
    // Round robin from a fresh counter: the first request goes to a, the second to b.
    let slow: Vec<_> = (0..2)
        .map(|n| {
            let addr = balancer.addr();
            let handle = std::thread::spawn(move || {
                raw_http::request(addr, "GET", "/sleep?ms=1500").map(|r| r.status)
            });
            balancer.status_until(Duration::from_secs(5), "the slow request sent", |_| {
                in_flight(&balancer) > n
            });
            handle
        })
        .collect();
    let status = balancer.status();
    assert!(
        status.groups[0].targets.iter().all(|t| t.in_flight == 1),
        "{status:#?}"
    );

    balancer.reload(&with_delay("v2", vec![b]));
    let removed = Instant::now();
    balancer.status_until(Duration::from_secs(5), "a draining", |s| {
        target_status(s, "i-a").is_some_and(|t| t.state == TargetState::Draining)
    });
    balancer.status_until(Duration::from_secs(5), "a dropped after its delay", |s| {
        target_status(s, "i-a").is_none()
    });
    let dropped = removed.elapsed();
    assert!(
        (Duration::from_millis(350)..Duration::from_millis(1200)).contains(&dropped),
        "dropped {dropped:?} after the reload, with a 400 ms delay and a request in flight"
    );
    for request in slow {
        let status = request.join().expect("a slow request thread");
        assert_eq!(
            status.map_err(|e| e.to_string()),
            Ok(200),
            "a request in flight when its target was dropped"
        );
    }
}
