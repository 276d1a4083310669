//! ALB's duration-based stickiness (`lb_cookie`), through curl's cookie jar: a client that
//! sends the balancer's cookie back stays on its target; one that does not is spread by the
//! algorithm; a forged cookie is ignored; when the sticky target dies, the client moves once
//! and stays on its new target.

use std::time::Duration;

use proto::balancer_config::{Algorithm, Stickiness, StickinessKind};

use super::requests_by_target;
use crate::harness::balancer::{agent, config, group, target};
use crate::harness::tls::curl;
use crate::harness::{Agent, Balancer, TempDir};

/// The targets `n` requests went to, by `/status` (`curl_args` before the URL each time).
fn served_by(balancer: &Balancer, n: u64, curl_args: &[&str]) -> Vec<String> {
    let before = requests_by_target(balancer);
    for _ in 0..n {
        let got = curl(curl_args, &format!("http://{}/", balancer.addr()));
        assert!(
            got.ok && got.status == "200",
            "{} {}",
            got.status,
            got.stderr
        );
    }
    let after = requests_by_target(balancer);
    after
        .iter()
        .filter(|(id, count)| before.get(*id) != Some(count))
        .map(|(id, _)| id.clone())
        .collect()
}

#[test]
fn a_client_with_the_cookie_stays_on_its_target_and_moves_once_when_it_dies() {
    let ids = ["i-a", "i-b", "i-c"];
    let mut agents: Vec<Option<Agent>> = ids.iter().map(|id| Some(agent("web", id))).collect();
    let targets = ids
        .iter()
        .zip(&agents)
        .map(|(id, a)| target(id, a.as_ref().expect("started").addr))
        .collect();
    let mut web = group("web", Algorithm::RoundRobin, targets);
    web.stickiness = Some(Stickiness {
        kind: StickinessKind::LbCookie,
        duration_ms: 3_600_000,
        cookie_name: None,
    });
    let balancer = Balancer::start(&config(vec![web]));
    balancer.wait_all_healthy();

    // Without the cookie sent back, round robin spreads the requests.
    assert_eq!(
        served_by(&balancer, 6, &[]).len(),
        3,
        "spread without the cookie"
    );

    let dir = TempDir::new("elb-cookies");
    let jar = dir.path().join("jar").display().to_string();
    let with_jar = ["-b", jar.as_str(), "-c", jar.as_str()];
    let first = served_by(&balancer, 1, &with_jar);
    let stuck = served_by(&balancer, 12, &with_jar);
    assert_eq!(
        stuck, first,
        "12 requests with the cookie all went to {first:?}"
    );

    // A forged cookie (another target's id with this one's MAC) is ignored.
    let cookie = std::fs::read_to_string(&jar).expect("the jar");
    let value = cookie
        .lines()
        .find_map(|l| l.split('\t').nth(6).filter(|_| l.contains("ELB-web")))
        .expect("the balancer's cookie in the jar");
    let (_, tag) = value.split_once('.').expect("id.mac");
    let other = ids
        .iter()
        .find(|id| **id != first[0])
        .expect("another target");
    let hex: String = other.bytes().map(|b| format!("{b:02x}")).collect();
    let forged = format!("ELB-web={hex}.{tag}");
    assert_eq!(
        served_by(&balancer, 6, &["-b", &forged]).len(),
        3,
        "a forged cookie is ignored: round robin again"
    );

    // The sticky target dies: the client moves once, then stays.
    let dead = ids.iter().position(|id| *id == first[0]).expect("known");
    drop(agents[dead].take());
    balancer.status_until(
        Duration::from_secs(10),
        "the dead target leaves",
        |status| {
            status.groups[0]
                .targets
                .iter()
                .any(|t| t.id == first[0] && t.state != proto::TargetState::Healthy)
        },
    );
    let moved = served_by(&balancer, 1, &with_jar);
    assert_ne!(moved, first, "moved off the dead target");
    let settled = served_by(&balancer, 12, &with_jar);
    assert_eq!(settled, moved, "and stays on its new target");
}
