//! `elb launch` and `elb ls` on a healthy EC2: what gets created, how it is tagged and locked
//! down, and that running it again reuses the network and the key.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use super::fixture::{group_name, ids, key_name, rows, Fixture, PROJECT, REGION, SSH_CIDR};
use crate::harness::{Rule, SecurityGroup};

/// The tags every instance and volume of `cluster` must carry, set at creation.
fn expected_tags(cluster: &str) -> BTreeMap<String, String> {
    [
        ("Project", PROJECT.to_string()),
        ("Cluster", cluster.to_string()),
        ("Name", format!("{PROJECT}-{cluster}")),
        ("ManagedBy", "elb".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn rule(port: &str, cidr: &str) -> Rule {
    Rule {
        protocol: "tcp".into(),
        from_port: port.into(),
        to_port: port.into(),
        cidr: cidr.into(),
    }
}

/// The one security group called `<project>-agents` in [`REGION`].
fn the_group(fx: &Fixture) -> SecurityGroup {
    let mut groups = fx.api.security_groups(REGION, &group_name());
    assert_eq!(
        groups.len(),
        1,
        "exactly one {} group: {groups:#?}",
        group_name()
    );
    let group = groups.remove(0);
    assert_eq!(group.name, group_name());
    group
}

/// The seed README's experiment: cluster1 = 2 x t3.medium, cluster2 = 3 x t3.micro.
#[test]
fn launch_creates_tagged_locked_down_clusters() {
    let fx = Fixture::new();
    let cluster1 = fx.launched("cluster1", "t3.medium", 2);
    assert_eq!(
        fx.shim.count("RunInstances"),
        1,
        "one RunInstances for 2 instances"
    );
    let polls_for_two = fx.shim.count("DescribeInstances");
    let cluster2 = fx.launched("cluster2", "t3.micro", 3);
    assert_eq!(
        fx.shim.count("RunInstances"),
        2,
        "one RunInstances for 3 instances"
    );
    assert_eq!(
        fx.shim.count("DescribeInstances") - polls_for_two,
        polls_for_two,
        "polling costs the same for 3 instances as for 2 (batched)"
    );

    let group = the_group(&fx);
    assert_eq!(
        group.vpc_id,
        fx.api.default_vpc(REGION),
        "the group lives in the default VPC"
    );
    assert_eq!(group.tags.get("Project").map(String::as_str), Some(PROJECT));
    assert_eq!(group.tags.get("ManagedBy").map(String::as_str), Some("elb"));
    assert_eq!(
        group.ingress,
        vec![rule("22", SSH_CIDR), rule("8000", "0.0.0.0/0")],
        "ingress rules"
    );

    let ours = fx.ours();
    assert_eq!(ours.len(), 5, "{ours:#?}");
    for (rows, cluster, instance_type) in [
        (&cluster1, "cluster1", "t3.medium"),
        (&cluster2, "cluster2", "t3.micro"),
    ] {
        let instances: Vec<_> = ours
            .iter()
            .filter(|i| rows.iter().any(|r| r.id == i.id))
            .collect();
        assert_eq!(
            instances.len(),
            rows.len(),
            "every printed id exists and is tagged ours"
        );
        for instance in instances {
            assert_eq!(instance.instance_type, instance_type);
            assert_eq!(instance.state, "running");
            assert_eq!(
                instance.tags,
                expected_tags(cluster),
                "tags of {}",
                instance.id
            );
            assert_eq!(
                instance.http_tokens, "required",
                "IMDSv2 only on {}",
                instance.id
            );
            assert_eq!(
                instance.key_name,
                key_name(),
                "{} uses our key",
                instance.id
            );
            assert_eq!(
                instance.group_ids,
                vec![group.id.clone()],
                "{} sits in our group",
                instance.id
            );
            let volumes = fx.api.volumes_of(REGION, &instance.id);
            assert!(!volumes.is_empty(), "{} has a root volume", instance.id);
            for volume in volumes {
                assert_eq!(
                    volume.tags,
                    expected_tags(cluster),
                    "tags of {} on {}",
                    volume.id,
                    instance.id
                );
            }
        }
    }

    assert_key_imported(&fx);

    let listed = rows(&fx.elb.run(&["ls"]));
    assert_eq!(
        ids(&listed),
        &ids(&cluster1) | &ids(&cluster2),
        "ls lists both clusters"
    );
    let listed1 = rows(&fx.elb.run(&["ls", "--cluster", "cluster1"]));
    assert_eq!(ids(&listed1), ids(&cluster1), "ls --cluster filters");
}

/// The generated key: private half 0600 in OpenSSH format, public half imported as is.
fn assert_key_imported(fx: &Fixture) {
    let (private, public) = fx.key_paths();
    let mode = std::fs::metadata(&private)
        .expect("private key exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{} must be 0600", private.display());
    let private_text = std::fs::read_to_string(&private).expect("read the private key");
    assert!(
        private_text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"),
        "OpenSSH format"
    );
    let public_text = std::fs::read_to_string(&public).expect("public key exists");
    let derived = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&private)
        .output()
        .expect("run ssh-keygen");
    assert!(
        derived.status.success(),
        "ssh-keygen reads the private key: {derived:?}"
    );
    assert_eq!(
        key_body(&String::from_utf8_lossy(&derived.stdout)),
        key_body(&public_text),
        "the .pub file is the public half of the private key"
    );

    let keys = fx.api.key_pairs(REGION);
    assert_eq!(keys.len(), 1, "{keys:#?}");
    assert_eq!(keys[0].name, key_name());
    assert_eq!(
        key_body(&keys[0].public_key),
        key_body(&public_text),
        "the imported key is ours"
    );
    assert!(
        public_text.starts_with("ssh-ed25519 "),
        "an ed25519 key: {public_text}"
    );
    assert_eq!(
        keys[0].tags.get("Project").map(String::as_str),
        Some(PROJECT)
    );
    assert_eq!(
        keys[0].tags.get("ManagedBy").map(String::as_str),
        Some("elb")
    );
}

/// `ssh-ed25519 AAAA...` without the comment.
fn key_body(openssh_public: &str) -> String {
    openssh_public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A second identical launch adds instances but nothing else: same group, same rules, same key.
#[test]
fn relaunch_reuses_group_and_key() {
    let fx = Fixture::new();
    fx.launched("cluster1", "t3.micro", 1);
    let group = the_group(&fx);
    let (private, _) = fx.key_paths();
    let key_before = std::fs::read(&private).expect("private key exists");

    fx.launched("cluster1", "t3.micro", 1);
    let again = the_group(&fx);
    assert_eq!(again.id, group.id, "the group is reused");
    assert_eq!(again.ingress, group.ingress, "no duplicate or lost rules");
    assert_eq!(
        fx.shim.count("ImportKeyPair"),
        1,
        "the key is imported once: {:?}",
        fx.shim.actions()
    );
    assert_eq!(
        std::fs::read(&private).expect("private key exists"),
        key_before,
        "local key unchanged"
    );
    assert_eq!(fx.api.key_pairs(REGION).len(), 1);
    assert_eq!(fx.shim.count("RunInstances"), 2);
    assert_eq!(fx.live_ours().len(), 2);
}

/// `--app-cidr`, repeated `--ssh-cidr` and `--no-ssh` shape the group's rules exactly.
#[test]
fn group_rules_follow_the_flags() {
    let fx = Fixture::new();
    fx.launch(
        "cluster1",
        "t3.micro",
        1,
        &[
            "--app-cidr",
            "198.51.100.0/24",
            "--ssh-cidr",
            "192.0.2.7/32",
        ],
    )
    .expect_code(0);
    assert_eq!(
        the_group(&fx).ingress,
        vec![
            rule("22", "192.0.2.7/32"),
            rule("22", SSH_CIDR),
            rule("8000", "198.51.100.0/24")
        ]
    );

    let no_ssh = Fixture::new();
    no_ssh
        .launch_without_ssh_cidr("c", "t3.micro", 1, &["--no-ssh"])
        .expect_code(0);
    assert_eq!(
        the_group(&no_ssh).ingress,
        vec![rule("8000", "0.0.0.0/0")],
        "--no-ssh opens no port 22"
    );
}

/// Terminated instances leave `ls` but stay visible with `--all`.
#[test]
fn ls_hides_terminated_unless_all() {
    let fx = Fixture::new();
    let launched = fx.launched("cluster1", "t3.micro", 2);
    let victim = &launched[0].id;
    fx.api
        .call(REGION, "TerminateInstances", &[("InstanceId.1", victim)])
        .expect("terminate one");

    let live = rows(&fx.elb.run(&["ls"]));
    assert_eq!(
        ids(&live),
        [launched[1].id.clone()].into(),
        "ls hides {victim}"
    );
    let all = rows(&fx.elb.run(&["ls", "--all"]));
    assert_eq!(ids(&all), ids(&launched), "ls --all shows {victim}");
    assert!(
        all.iter()
            .any(|r| &r.id == victim && r.state == "terminated"),
        "{all:#?}"
    );
}
