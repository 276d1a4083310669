//! ALB's stickiness through curl's cookie jar. Duration-based (`lb_cookie`): a client that
//! sends the balancer's cookie back stays on its target; one that does not is spread by the
//! algorithm; a forged cookie is ignored; when the sticky target dies, the client moves once
//! and stays on its new target. Application-based (`app_cookie`), with an application that sets
//! its session cookie at login (`app_session.py`, Python's standard library): nothing sticks
//! before the login, everything after it. A weighted forward's group stickiness (`ELBTG`): a
//! client stays with the group drawn for it until that group's weight drops to zero.

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

/// A balancer of one round-robin group `web` of `targets` with `stickiness`, every target
/// healthy.
fn sticky_web(targets: Vec<proto::balancer_config::Target>, stickiness: Stickiness) -> Balancer {
    let mut web = group("web", Algorithm::RoundRobin, targets);
    web.stickiness = Some(stickiness);
    let balancer = Balancer::start(&config(vec![web]));
    balancer.wait_all_healthy();
    balancer
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
    let balancer = sticky_web(
        targets,
        Stickiness {
            kind: StickinessKind::LbCookie,
            duration_ms: 3_600_000,
            cookie_name: None,
        },
    );

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

/// An `app_session.py` target, killed on drop.
struct App {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl App {
    fn start(name: &str) -> App {
        use std::io::BufRead;
        let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("system/balancer/app_session.py");
        let mut child = std::process::Command::new(crate::harness::venv_python())
            .arg(script)
            .arg(name)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run app_session.py");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("its first line");
        let port: u16 = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("app_session.py said {line:?}"));
        App {
            child,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ALB's application-based stickiness (`app_cookie`): nothing sticks until the application
/// sets its cookie; then the balancer's `ELBAPP-<group>` cookie keeps the client on the target
/// that set it.
#[test]
fn app_cookie_stickiness_starts_when_the_application_sets_its_cookie() {
    let names = ["a", "b", "c"];
    let mut apps: Vec<Option<App>> = names.iter().map(|n| Some(App::start(n))).collect();
    let targets = names
        .iter()
        .zip(&apps)
        .map(|(n, app)| target(n, app.as_ref().expect("started").addr))
        .collect();
    let balancer = sticky_web(
        targets,
        Stickiness {
            kind: StickinessKind::AppCookie,
            duration_ms: 600_000,
            cookie_name: Some("session".into()),
        },
    );
    let dir = TempDir::new("elb-cookies");
    let jar = dir.path().join("jar").display().to_string();
    let with_jar = ["-b", jar.as_str(), "-c", jar.as_str()];
    let answer = |path: &str| {
        let got = curl(&with_jar, &format!("http://{}{path}", balancer.addr()));
        assert!(
            got.ok && got.status == "200",
            "{} {}",
            got.status,
            got.stderr
        );
        got.body
    };
    let before_login: std::collections::BTreeSet<String> = (0..6).map(|_| answer("/")).collect();
    assert_eq!(
        before_login.len(),
        3,
        "no application cookie yet: spread {before_login:?}"
    );
    let logged_in_at = answer("/login");
    for _ in 0..10 {
        assert_eq!(
            answer("/"),
            logged_in_at,
            "stays on the target that set the session"
        );
    }
    let jar_text = std::fs::read_to_string(&jar).expect("the jar");
    assert!(jar_text.contains("ELBAPP-web"), "{jar_text}");

    // The target dies: the client is served elsewhere (its cookie names a target that is gone).
    let at = names
        .iter()
        .position(|n| *n == logged_in_at)
        .expect("a known name");
    drop(apps[at].take());
    balancer.status_until(
        Duration::from_secs(10),
        "the dead target leaves",
        |status| {
            status.groups[0]
                .targets
                .iter()
                .any(|t| t.id == logged_in_at && t.state != proto::TargetState::Healthy)
        },
    );
    assert_ne!(answer("/"), logged_in_at);
}

#[test]
fn a_weighted_forwards_group_cookie_keeps_a_client_with_its_group_until_the_group_loses_its_weight()
{
    let (blue, green) = (agent("blue", "i-blue"), agent("green", "i-green"));
    let mut config = config(vec![
        group(
            "blue",
            Algorithm::RoundRobin,
            vec![target("i-blue", blue.addr)],
        ),
        group(
            "green",
            Algorithm::RoundRobin,
            vec![target("i-green", green.addr)],
        ),
    ]);
    let weighted = |blue: u32, green: u32| {
        proto::balancer_config::Forward::Weighted(vec![
            proto::balancer_config::WeightedGroup {
                group: "blue".into(),
                weight: blue,
            },
            proto::balancer_config::WeightedGroup {
                group: "green".into(),
                weight: green,
            },
        ])
    };
    config.rules = vec![proto::balancer_config::Rule {
        priority: 1,
        path_pattern: "*".into(),
        forward: Some(weighted(50, 50)),
        group_stickiness_ms: 3_600_000,
        ..Default::default()
    }];
    let balancer = Balancer::start(&config);
    balancer.wait_all_healthy();

    // Without the cookie: drawn by weight, so both groups serve 40 requests (each missing
    // all 40 has probability 2^-40).
    assert_eq!(
        served_by(&balancer, 40, &[]).len(),
        2,
        "spread without the cookie"
    );
    let dir = TempDir::new("elb-cookies");
    let jar = dir.path().join("jar").display().to_string();
    let with_jar = ["-b", jar.as_str(), "-c", jar.as_str()];
    let first = served_by(&balancer, 1, &with_jar);
    assert_eq!(
        served_by(&balancer, 20, &with_jar),
        first,
        "kept with its group"
    );
    let text = std::fs::read_to_string(&jar).expect("the jar");
    assert!(text.contains("ELBTG"), "the group cookie: {text}");

    // A forged group cookie is drawn again like none.
    // "green" in hex with a MAC that is not the balancer's.
    let forged = "ELBTG=677265656e.00".to_string();
    assert_eq!(
        served_by(&balancer, 40, &["-b", forged.as_str()]).len(),
        2,
        "a forged cookie keeps no one"
    );

    // The group loses its weight: the client moves, once, to the other and stays there.
    let kept = first[0].clone();
    let (b, g) = if kept == "i-blue" { (0, 1) } else { (1, 0) };
    config.rules[0].forward = Some(weighted(b, g));
    balancer.reload(&config);
    balancer.status_until(Duration::from_secs(5), "the reload", |s| {
        s.config_generation == 2
    });
    let moved = served_by(&balancer, 10, &with_jar);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_ne!(moved[0], kept, "moved off the group that lost its weight");
}
