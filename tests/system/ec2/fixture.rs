//! One test's world: a fault shim in front of moto (its own moto account), an `elb` user with
//! its own state directory, and a raw API client that sees the same account.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;

use crate::harness::{moto, Ec2Api, Elb, ElbOutput, Instance, Shim};

/// `elb`'s default project: tests run without `--project` so the default is covered too.
pub const PROJECT: &str = "elb-from-scratch";
/// `elb`'s default region when no AWS config names one.
pub const REGION: &str = "ca-central-1";
/// The operator's address range that the tests open SSH to (TEST-NET-3).
pub const SSH_CIDR: &str = "203.0.113.0/24";
/// Polling flags that keep a launch or a kill to a fraction of a second on moto.
pub const FAST: [&str; 4] = ["--poll-interval-ms", "100", "--timeout", "30"];
/// The calls that delete or stop something: none may happen when `elb` must not act.
pub const DESTRUCTIVE: [&str; 5] = [
    "TerminateInstances",
    "StopInstances",
    "DeleteSecurityGroup",
    "RevokeSecurityGroupIngress",
    "DeleteKeyPair",
];

/// One row of `elb launch` / `elb ls` JSON output.
#[derive(Debug, Clone, Deserialize)]
pub struct Row {
    pub id: String,
    pub name: String,
    pub cluster: String,
    pub instance_type: String,
    pub az: String,
    pub public_ip: Option<String>,
    pub private_ip: String,
    pub state: String,
}

pub struct Fixture {
    pub shim: Shim,
    pub elb: Elb,
    /// Straight to moto, in this fixture's account: bypasses the shim's faults and log.
    pub api: Ec2Api,
}

impl Fixture {
    pub fn new() -> Self {
        let moto = moto();
        let account = unique_account();
        let shim = Shim::start(moto.port, &account);
        let elb = Elb::new(shim.endpoint());
        Self {
            shim,
            elb,
            api: Ec2Api::new(moto.port, account),
        }
    }

    /// `elb launch` of `count` x `instance_type` as `cluster`, SSH open to [`SSH_CIDR`], fast
    /// polling, plus `extra` flags.
    pub fn launch(
        &self,
        cluster: &str,
        instance_type: &str,
        count: usize,
        extra: &[&str],
    ) -> ElbOutput {
        let extra = [&["--ssh-cidr", SSH_CIDR][..], extra].concat();
        self.launch_without_ssh_cidr(cluster, instance_type, count, &extra)
    }

    /// `elb launch` of `count` x `instance_type` as `cluster` with fast polling, `--deploy none`
    /// unless `extra` has a `--deploy`, and only the `extra` flags: no `--ssh-cidr` unless
    /// `extra` has one.
    pub fn launch_without_ssh_cidr(
        &self,
        cluster: &str,
        instance_type: &str,
        count: usize,
        extra: &[&str],
    ) -> ElbOutput {
        let count = count.to_string();
        let mut args = vec![
            "launch",
            "--cluster",
            cluster,
            "--type",
            instance_type,
            "--count",
            &count,
        ];
        args.extend(FAST);
        // moto's instances have made-up 10.x addresses: no test may SSH to them.
        if !extra.contains(&"--deploy") {
            args.extend(["--deploy", "none"]);
        }
        args.extend(extra);
        self.elb.run(&args)
    }

    /// [`launch`](Self::launch) that must succeed; returns its rows after checking that they
    /// describe exactly the `count` running instances asked for.
    pub fn launched(&self, cluster: &str, instance_type: &str, count: usize) -> Vec<Row> {
        let rows = rows(&self.launch(cluster, instance_type, count, &[]));
        assert_eq!(
            rows.len(),
            count,
            "launch prints one row per instance: {rows:#?}"
        );
        assert_eq!(
            ids(&rows).len(),
            count,
            "instance ids are distinct: {rows:#?}"
        );
        for row in &rows {
            assert_eq!(row.cluster, cluster, "{row:?}");
            assert_eq!(row.instance_type, instance_type, "{row:?}");
            assert_eq!(
                row.state, "running",
                "launch returns once instances run: {row:?}"
            );
            assert!(row.az.starts_with(REGION), "AZ in {REGION}: {row:?}");
            assert!(!row.private_ip.is_empty(), "{row:?}");
            assert!(
                row.public_ip.is_some(),
                "the default VPC gives public IPs: {row:?}"
            );
            assert!(
                row.name.starts_with(&format!("{PROJECT}-{cluster}")),
                "{row:?}"
            );
        }
        rows
    }

    /// `elb kill --yes` with fast polling, plus `extra` flags.
    pub fn kill(&self, extra: &[&str]) -> ElbOutput {
        let mut args = vec!["kill", "--yes"];
        args.extend(FAST);
        args.extend(extra);
        self.elb.run(&args)
    }

    /// Every instance tagged `Project=<PROJECT>` in [`REGION`], terminated ones included.
    pub fn ours(&self) -> Vec<Instance> {
        self.api.instances(REGION, &[("tag:Project", PROJECT)])
    }

    /// Ids of the instances of ours that are not terminated.
    pub fn live_ours(&self) -> BTreeSet<String> {
        self.ours()
            .into_iter()
            .filter(|i| i.state != "terminated")
            .map(|i| i.id)
            .collect()
    }

    /// Every instance of this account in [`REGION`], whoever made it.
    pub fn all_instances(&self) -> Vec<Instance> {
        self.api.instances(REGION, &[])
    }

    /// Asserts that the shim never saw a destructive call.
    pub fn assert_nothing_deleted(&self) {
        let actions = self.shim.actions();
        for action in DESTRUCTIVE {
            assert!(
                !actions.iter().any(|a| a == action),
                "{action} was called: {actions:?}"
            );
        }
    }

    /// Asserts that no request reached the shim at all: `elb` refused before any AWS call.
    pub fn assert_no_aws_call(&self) {
        assert_eq!(
            self.shim.actions(),
            Vec::<String>::new(),
            "no AWS call may be made"
        );
    }

    /// The generated key pair files.
    pub fn key_paths(&self) -> (PathBuf, PathBuf) {
        let dir = self.elb.state_dir().join(PROJECT);
        (dir.join("id_ed25519"), dir.join("id_ed25519.pub"))
    }
}

/// The key pair's and security group's names.
pub fn key_name() -> String {
    format!("{PROJECT}-key")
}

pub fn group_name() -> String {
    format!("{PROJECT}-agents")
}

/// The rows printed by a successful `elb launch` or `elb ls --output json`.
pub fn rows(output: &ElbOutput) -> Vec<Row> {
    serde_json::from_value(output.json())
        .unwrap_or_else(|e| panic!("stdout is not a JSON array of rows ({e}):\n{output}"))
}

pub fn ids(rows: &[Row]) -> BTreeSet<String> {
    rows.iter().map(|r| r.id.clone()).collect()
}

/// A moto account id (12 digits) no other fixture of this run, nor of a concurrent run, uses.
fn unique_account() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    format!(
        "9{:05}{:06}",
        std::process::id() % 100_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
