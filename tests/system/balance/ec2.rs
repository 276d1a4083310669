//! `elb balance` on EC2 (moto behind the shim), its SSH side on test hosts: the shim gives the
//! moto instances the test hosts' addresses, so `elb deploy` puts real agents on them and
//! `elb balance up` the real static balancer (detached: the hosts have no systemd).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::assert_three_counts_agree;
use crate::ec2::fixture::{Fixture, FAST, PROJECT, REGION, SSH_CIDR};
use crate::harness::{
    bin_path, raw_http, ssh_keygen, static_agent, static_balancer, HostSpec, TestHosts,
};

/// The balancer's security group and `Name` tag.
fn balancer_name() -> String {
    format!("{PROJECT}-balancer")
}

/// A fixture whose instances take the addresses of `n` plain test hosts, in launch order, and
/// whose `elb` logs in to them as root with the project key.
pub fn world(n: usize) -> (Fixture, TestHosts) {
    world_of(&vec![HostSpec::default(); n])
}

/// [`world`] with hosts made as `specs` say.
fn world_of(specs: &[HostSpec]) -> (Fixture, TestHosts) {
    let fx = Fixture::new();
    let key_dir = fx.elb.state_dir().join(PROJECT);
    std::fs::create_dir_all(&key_dir).expect("create the state dir");
    let key = key_dir.join("id_ed25519");
    ssh_keygen(&key);
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    let hosts = TestHosts::new(specs, &public);
    let pool: Vec<String> = hosts.hosts.iter().map(|h| h.address.clone()).collect();
    fx.shim.map_addresses(&pool);
    (fx, hosts)
}

/// `balance up` with one path rule and cluster1 as the default: the tests' fleets have one
/// cluster.
const UP: [&str; 6] = [
    "balance",
    "up",
    "--rule",
    "/cluster1*=cluster1",
    "--default",
    "cluster1",
];

/// `elb balance up` on EC2 with the SSH flags of the test hosts, fast timers, plus `extra`.
pub fn up(fx: &Fixture, install_dir: &str, extra: &[&str]) -> crate::harness::ElbOutput {
    let balancer = static_balancer().to_string_lossy().into_owned();
    let mut args = UP.to_vec();
    args.extend([
        "--port",
        "8080",
        "--health-interval-ms",
        "100",
        "--ssh-cidr",
        SSH_CIDR,
        "--ssh-user",
        "root",
        "--install-dir",
        install_dir,
        "--connect-timeout",
        "3",
        "--ssh-wait",
        "10",
    ]);
    if !extra.contains(&"--balancer") {
        args.extend(["--balancer", &balancer]);
    }
    if !extra.contains(&"--wait") {
        args.extend(["--wait", "10"]);
    }
    args.extend(FAST);
    args.extend(extra);
    fx.elb.run(&args)
}

/// `balance status` as JSON.
fn status(fx: &Fixture) -> serde_json::Value {
    fx.elb.run(&["balance", "status"]).json()
}

/// The ids of the targets of every group in a status.
fn target_ids(status: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = status["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["targets"].as_array().expect("targets").iter())
        .map(|t| t["id"].as_str().expect("an id").to_owned())
        .collect();
    ids.sort();
    ids
}

/// How often `needle` occurs in the agents' group as DescribeSecurityGroups shows it.
fn mentions_in_agents_group(fx: &Fixture, needle: &str) -> usize {
    let xml = fx
        .api
        .call(
            REGION,
            "DescribeSecurityGroups",
            &[
                ("Filter.1.Name", "group-name"),
                ("Filter.1.Value.1", &format!("{PROJECT}-agents")),
            ],
        )
        .expect("describe the agents' group");
    xml.matches(needle).count()
}

/// `elb deploy` of cluster1's agents onto their test hosts.
pub fn deploy_agents(fx: &Fixture, install_dir: &str) {
    let agent = static_agent().to_string_lossy().into_owned();
    let deploy = [
        "deploy",
        "--cluster",
        "cluster1",
        "--agent",
        &agent,
        "--install-dir",
        install_dir,
        "--ssh-user",
        "root",
        "--connect-timeout",
        "3",
        "--ssh-wait",
        "4",
        "--health-timeout",
        "10",
    ];
    fx.elb.run(&deploy).expect_code(0);
}

/// Up on EC2: the tagged instance, its group and the group-to-group rule, made once; the real
/// balancer on its (test) host routes to the agents; a launch reloads it with the new target;
/// the kill switch plans and removes it all.
#[test]
fn the_balancer_gets_its_own_instance_and_group_and_follows_the_fleet_over_ssh() {
    let (fx, hosts) = world(4);
    fx.launch("cluster1", "t3.micro", 2, &[]).expect_code(0);
    let install_dir = hosts.install_dir.to_string_lossy().into_owned();
    deploy_agents(&fx, &install_dir);

    let first = up(&fx, &install_dir, &[]);
    first.expect_code(0);
    let ours = fx.ours();
    let balancers: Vec<_> = ours
        .iter()
        .filter(|i| i.tags.get("Role").map(String::as_str) == Some("balancer"))
        .collect();
    assert_eq!(balancers.len(), 1, "{ours:#?}");
    let balancer = balancers[0];
    for (key, value) in [
        ("Project", PROJECT.to_owned()),
        ("Cluster", "balancer".to_owned()),
        ("Name", balancer_name()),
        ("ManagedBy", "elb".to_owned()),
    ] {
        assert_eq!(balancer.tags.get(key), Some(&value), "{balancer:?}");
    }
    assert_eq!(balancer.instance_type, "t3.small");
    let groups = fx.api.security_groups(REGION, &balancer_name());
    assert_eq!(groups.len(), 1, "{groups:?}");
    let group = &groups[0];
    assert_eq!(balancer.group_ids, std::slice::from_ref(&group.id));
    assert_eq!(group.tags["Project"], PROJECT);
    assert_eq!(group.tags["ManagedBy"], "elb");
    let open: Vec<(&str, &str)> = group
        .ingress
        .iter()
        .map(|r| (r.from_port.as_str(), r.cidr.as_str()))
        .collect();
    for rule in [("8080", "0.0.0.0/0"), ("22", SSH_CIDR), ("9901", SSH_CIDR)] {
        assert!(open.contains(&rule), "{rule:?} in {open:?}");
    }
    assert_eq!(open.len(), 3, "nothing else is open: {open:?}");
    assert_eq!(
        mentions_in_agents_group(&fx, &group.id),
        1,
        "one rule opens the agents to the balancer's group"
    );

    // The real balancer on its host, in front of the two agents.
    let address = fx
        .shim
        .address_of(&balancer.id)
        .expect("a test host address");
    let listen: SocketAddr = format!("{address}:8080").parse().unwrap();
    // Through it, the client, the balancer and the agents count the same requests (first: an
    // agent's snapshot is sampled once a second, so requests just before a bench would show in
    // its "after" count only).
    let out = fx.elb.state_dir().join("bench");
    let bench = fx.elb.run(&[
        "bench",
        "--via",
        "balancer",
        "--cluster",
        "cluster1",
        "--requests",
        "300",
        "--concurrency",
        "4",
        "--out",
        out.to_str().unwrap(),
    ]);
    let results = bench.json();
    assert_three_counts_agree(&results["clusters"][0]);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let answer = raw_http::get(listen, "/cluster1");
        assert_eq!(answer.status, 200, "{}", answer.text());
        seen.insert(answer.json()["hostname"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 2, "both agents serve: {seen:?}");
    let before = status(&fx);
    assert_eq!(target_ids(&before).len(), 2, "{before}");
    // `stats --publish` adds the balancer's figures to the agents'.
    fx.elb
        .run(&["stats", "--publish", "--timeout-ms", "3000"])
        .expect_code(0);
    let published = crate::ec2::cloudwatch::published(&fx, "Cluster", "cluster1");
    assert!(
        published.contains(&"HealthyTargets".to_owned()),
        "the balancer's healthy count: {published:?}"
    );

    // A re-run creates nothing and only pushes the config.
    let (runs, groups_made) = (
        fx.shim.count("RunInstances"),
        fx.shim.count("CreateSecurityGroup"),
    );
    up(&fx, &install_dir, &[]).expect_code(0);
    assert_eq!(fx.shim.count("RunInstances"), runs);
    assert_eq!(fx.shim.count("CreateSecurityGroup"), groups_made);
    assert_eq!(fx.api.security_groups(REGION, &balancer_name()).len(), 1);
    assert_eq!(mentions_in_agents_group(&fx, &group.id), 1);
    let again = status(&fx);
    assert!(
        again["config_generation"].as_u64() > before["config_generation"].as_u64(),
        "{before}\n{again}"
    );

    // A launch reloads the balancer with the new instance as a target.
    let launched = fx.launch("cluster1", "t3.micro", 1, &[]);
    launched.expect_code(0);
    let new_id = launched.json()[0]["id"].as_str().unwrap().to_owned();
    let after = status(&fx);
    assert!(
        after["config_generation"].as_u64() > again["config_generation"].as_u64(),
        "{after}"
    );
    assert!(target_ids(&after).contains(&new_id), "{after}");
    assert_eq!(target_ids(&after).len(), 3, "{after}");

    // The kill switch plans the balancer and its group, then removes them.
    let plan = fx.elb.run(&["kill", "--dry-run"]);
    plan.expect_code(0);
    assert!(plan.stdout.contains(&balancer.id), "{plan}");
    assert!(plan.stdout.contains(&group.id), "{plan}");
    assert!(plan.stderr.contains(&balancer_name()), "{plan}");
    fx.kill(&[]).expect_code(0);
    assert!(fx.live_ours().is_empty(), "{:#?}", fx.ours());
    assert!(fx.api.security_groups(REGION, &balancer_name()).is_empty());
    assert!(fx
        .api
        .security_groups(REGION, &format!("{PROJECT}-agents"))
        .is_empty());
}

/// Refusals before anything is made: no fleet, a dynamically linked balancer, an arm64 or
/// unknown type, no SSH source; none creates an instance or a group.
#[test]
fn bad_input_is_refused_before_anything_is_created() {
    let fx = Fixture::new();
    let install_dir = "/opt/elb";
    let started = Instant::now();
    up(&fx, install_dir, &[]).expect_failure_mentioning(&["no running instances", "elb launch"]);
    fx.launch("cluster1", "t3.micro", 1, &[]).expect_code(0);
    let dynamic = bin_path("elb-balancer").to_string_lossy().into_owned();
    up(&fx, install_dir, &["--balancer", &dynamic])
        .expect_failure_mentioning(&["crt-static", "-p balancer"]);
    up(&fx, install_dir, &["--type", "t4g.small"])
        .expect_failure_mentioning(&["t4g.small", "x86_64"]);
    up(&fx, install_dir, &["--type", "t3.nonesuch"]).expect_failure_mentioning(&["t3.nonesuch"]);
    fx.elb.run(&UP).expect_failure_mentioning(&["--ssh-cidr"]);
    up(&fx, install_dir, &["--access-log", "/tmp/access.log"])
        .expect_failure_mentioning(&["/var/log/elb-balancer", "give a file name"]);
    assert_eq!(fx.shim.count("RunInstances"), 1, "only the launch's");
    assert_eq!(fx.shim.count("CreateSecurityGroup"), 1, "only the agents'");
    assert!(fx.api.security_groups(REGION, &balancer_name()).is_empty());
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// `balance down` on EC2 terminates the balancer, revokes the agents' rule for its group and
/// deletes the group; the agents and their group stay.
#[test]
fn down_removes_the_instance_its_group_and_the_agents_rule() {
    let (fx, hosts) = world(2);
    fx.launch("cluster1", "t3.micro", 1, &[]).expect_code(0);
    let install_dir = hosts.install_dir.to_string_lossy().into_owned();
    up(&fx, &install_dir, &["--wait", "0"]).expect_code(0);
    let group = fx.api.security_groups(REGION, &balancer_name())[0]
        .id
        .clone();
    assert_eq!(mentions_in_agents_group(&fx, &group), 1);

    fx.elb.run(&["balance", "down"]).expect_code(0);
    let live: Vec<_> = fx
        .ours()
        .into_iter()
        .filter(|i| i.state != "terminated")
        .collect();
    assert_eq!(live.len(), 1, "only the agent is left: {live:#?}");
    assert_eq!(live[0].tags["Cluster"], "cluster1");
    assert!(fx.api.security_groups(REGION, &balancer_name()).is_empty());
    assert_eq!(mentions_in_agents_group(&fx, &group), 0);
    assert_eq!(
        fx.api
            .security_groups(REGION, &format!("{PROJECT}-agents"))
            .len(),
        1
    );
    fx.elb
        .run(&["balance", "status"])
        .expect_failure_mentioning(&["no balancer", "elb balance up"]);
}

/// With systemd the balancer runs as `elb-balancer.service`, and a sync reloads it with
/// `systemctl reload` (the unit's `ExecReload` sends SIGHUP). The host's stand-in `systemctl`
/// logs its arguments, starts the unit's `ExecStart` on `restart` and sends SIGHUP on `reload`.
#[test]
fn under_systemd_the_balancer_is_a_unit_that_reloads_with_systemctl() {
    let systemd = HostSpec {
        systemd: true,
        ..HostSpec::default()
    };
    let (fx, hosts) = world_of(&[HostSpec::default(), systemd]);
    fx.launch("cluster1", "t3.micro", 1, &[]).expect_code(0);
    let install_dir = hosts.install_dir.to_string_lossy().into_owned();
    deploy_agents(&fx, &install_dir);
    let host = &hosts.hosts[1];
    let calls = host.dir.join("systemctl.calls");
    let main_pid = host.dir.join("main.pid");
    host.put_first_on_path(
        "systemctl",
        &format!(
            "#!/bin/sh\necho \"$*\" >> {calls}\ncase \"$1\" in\n  restart)\n    \
             line=$(sed -n 's/^ExecStart=//p' /etc/systemd/system/\"$2\")\n    \
             (eval \"exec setsid $line\") > /dev/null 2>&1 < /dev/null &\n    \
             echo $! > {main_pid} ;;\n  reload) kill -HUP \"$(cat {main_pid})\" ;;\nesac\n",
            calls = calls.display(),
            main_pid = main_pid.display(),
        ),
    );
    up(&fx, &install_dir, &["--access-log", "access.log"]).expect_code(0);
    let unit = host.sh("cat /etc/systemd/system/elb-balancer.service");
    for line in [
        format!("ExecStart={install_dir}/elb-balancer {install_dir}/elb-balancer.toml"),
        "ExecReload=/bin/kill -HUP $MAINPID".to_owned(),
        "AmbientCapabilities=CAP_NET_BIND_SERVICE".to_owned(),
        "LogsDirectory=elb-balancer".to_owned(),
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}\n---\n{unit}");
    }
    assert!(
        !host.install_file("elb-balancer.pid").exists(),
        "systemd owns it"
    );
    let listen: SocketAddr = format!("{}:8080", host.address).parse().unwrap();
    assert_eq!(raw_http::get(listen, "/cluster1?logged").status, 200);
    // The access log in the logs directory, rotated by logrotate, which tells the balancer.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !host
        .sh("cat /var/log/elb-balancer/access.log 2>/dev/null || true")
        .contains("/cluster1?logged")
    {
        assert!(Instant::now() < deadline, "no access log line on the host");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rotation = host.sh("cat /etc/logrotate.d/elb-balancer");
    for part in [
        "/var/log/elb-balancer/*.log",
        "systemctl kill -s USR1 elb-balancer.service",
    ] {
        assert!(rotation.contains(part), "{part}\n---\n{rotation}");
    }
    let before = status(&fx);

    fx.elb.run(&["balance", "sync"]).expect_code(0);
    let after = status(&fx);
    assert!(
        after["config_generation"].as_u64() > before["config_generation"].as_u64(),
        "{after}"
    );
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "daemon-reload\nenable elb-balancer.service\nrestart elb-balancer.service\n\
         reload elb-balancer.service\n"
    );
}

/// `balance up --https-cert/--https-key` on EC2: the certificate and key are copied into the
/// install directory (the key mode 640, group elb-tls) before the config that names them, the HTTPS port is
/// opened to the clients, and the balancer on the instance serves the certificate.
#[test]
fn an_https_listener_gets_its_certificates_copied_to_the_instance() {
    use crate::harness::tls::{curl, Certificate};
    use std::os::unix::fs::PermissionsExt;
    let (fx, hosts) = world(3);
    fx.launch("cluster1", "t3.micro", 1, &[]).expect_code(0);
    let install_dir = hosts.install_dir.to_string_lossy().into_owned();
    deploy_agents(&fx, &install_dir);
    let certificate = Certificate::for_names(&["shop.example.test"]);
    let (cert, key) = (
        certificate.cert.display().to_string(),
        certificate.key.display().to_string(),
    );
    let https = [
        "--https-cert",
        &cert,
        "--https-key",
        &key,
        "--https-port",
        "8443",
    ];
    up(&fx, &install_dir, &https).expect_code(0);

    let balancer = fx
        .ours()
        .into_iter()
        .find(|i| i.tags.get("Role").map(String::as_str) == Some("balancer"))
        .expect("the balancer's instance");
    let address = fx
        .shim
        .address_of(&balancer.id)
        .expect("a test host address");
    let host = hosts
        .hosts
        .iter()
        .find(|h| h.address == address)
        .expect("the balancer's test host");
    // Mode 640 in the balancer's group (its systemd unit's dynamic user has that group).
    let key_copy = host.install_file("tls-0.key");
    let mode = std::fs::metadata(&key_copy)
        .expect("the key's copy")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640, "{}", key_copy.display());
    let group = host.sh(&format!("stat -c %G {}", key_copy.display()));
    assert_eq!(group.trim(), "elb-tls", "{}", key_copy.display());
    let groups = fx.api.security_groups(REGION, &balancer_name());
    let open: Vec<&str> = groups[0]
        .ingress
        .iter()
        .map(|r| r.from_port.as_str())
        .collect();
    assert!(open.contains(&"8443"), "the HTTPS port is open: {open:?}");

    let got = curl(
        &[
            "--resolve",
            &format!("shop.example.test:8443:{address}"),
            "--cacert",
            &cert,
        ],
        "https://shop.example.test:8443/cluster1",
    );
    assert!(got.ok, "{}", got.stderr);
    assert_eq!((got.status.as_str(), got.version.as_str()), ("200", "2"));
    // A second run pushes the same listeners: accepted; a sync keeps the certificates.
    up(&fx, &install_dir, &https).expect_code(0);
    fx.elb.run(&["balance", "sync"]).expect_code(0);
    let again = curl(
        &[
            "--resolve",
            &format!("shop.example.test:8443:{address}"),
            "--cacert",
            &cert,
        ],
        "https://shop.example.test:8443/cluster1",
    );
    assert_eq!(again.status, "200", "{}", again.stderr);
}
