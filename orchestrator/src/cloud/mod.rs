//! The cloud the clusters run in, behind one trait, [`Cloud`], with two implementations: EC2
//! (`ec2/`) and the local provider (`local/`, elb-agent processes on this machine). What is
//! provider-neutral (names, the instance row, inbound rules) lives here and in `firewall.rs`.

pub mod ec2;
pub mod errors;
pub mod firewall;
pub mod local;
pub mod plan;
pub mod spec;
pub mod wait;

use serde::Serialize;

use crate::cloud::plan::KillPlan;
use crate::config::{Provider, Settings};
use crate::Error;
use spec::{KillOptions, LaunchSpec};

/// Value of the `ManagedBy` tag on everything elb creates.
pub const MANAGED_BY: &str = "elb";

/// Name of the project's key pair.
pub fn key_pair_name(project: &str) -> String {
    format!("{project}-key")
}

/// Name of the project's security group.
pub fn security_group_name(project: &str) -> String {
    format!("{project}-agents")
}

/// `Name` tag of a cluster's instances. Tags are applied at creation only, and one RunInstances
/// call gives every instance the same tags, so the name carries no per-instance index.
pub fn instance_name(project: &str, cluster: &str) -> String {
    format!("{project}-{cluster}")
}

/// One instance as the CLI shows it (table row or JSON object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    /// Instance id, `i-...`.
    pub id: String,
    /// The `Name` tag.
    pub name: String,
    /// The `Cluster` tag.
    pub cluster: String,
    /// e.g. `t3.micro`.
    pub instance_type: String,
    /// Availability zone.
    pub az: String,
    /// Public IPv4 address, if any.
    pub public_ip: Option<String>,
    /// Private IPv4 address, if any.
    pub private_ip: Option<String>,
    /// `pending`, `running`, `terminated`, ...
    pub state: String,
    /// The `Role` tag: `balancer` for elb's balancer; `None` for an agent instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The `LaunchedAt` tag (ms since the epoch) of an instance `elb autoscale` launched, so a
    /// loop that lost its state file still knows when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launched_at_unix_ms: Option<u64>,
}

impl Instance {
    /// A running t3.micro `id` of `cluster` (named `p-<cluster>`, no address), for tests.
    #[cfg(test)]
    pub(crate) fn running(id: &str, cluster: &str) -> Self {
        Self {
            id: id.into(),
            name: format!("p-{cluster}"),
            cluster: cluster.into(),
            instance_type: "t3.micro".into(),
            az: "ca-central-1a".into(),
            public_ip: None,
            private_ip: None,
            state: "running".into(),
            role: None,
            launched_at_unix_ms: None,
        }
    }
}

/// Tag of the instances `elb autoscale` launches: when, in ms since the epoch.
pub const LAUNCHED_AT_TAG: &str = "LaunchedAt";

/// The `Role` tag of a balancer instance.
pub const BALANCER_ROLE: &str = "balancer";

impl Instance {
    /// Whether this is elb's balancer rather than an agent instance.
    pub fn is_balancer(&self) -> bool {
        self.role.as_deref() == Some(BALANCER_ROLE)
    }

    /// The address elb reaches the instance at: its public IPv4 address if it has one, else its
    /// private one.
    pub fn address(&self) -> Option<&str> {
        self.public_ip.as_deref().or(self.private_ip.as_deref())
    }
}

/// What the commands need from a cloud: launch a cluster and wait for it, list the project's
/// instances, plan and carry out the kill switch. Everything else (key pairs, security groups,
/// AMIs, cgroups) stays inside the implementation.
///
/// Dispatch is static: both implementations are known at compile time and the provider is chosen
/// once per run (in `cli::run` and [`fleet`]), so commands are generic over `C: Cloud` and use
/// native `async fn` in traits. That needs no boxed futures and no `async-trait` proc-macro; the
/// price is that `dyn Cloud` is not possible, which nothing needs.
pub(crate) trait Cloud {
    /// The global flag that selects this provider in a suggested command (`"--local "`, or
    /// nothing for the default EC2).
    const FLAG: &'static str;

    /// Where the instances are, for messages: `in ca-central-1`, `on this machine`.
    fn location(&self) -> String;

    /// Launches `spec`'s cluster and waits until every instance is running; returns them,
    /// sorted. Records what exists in `created` as it goes, so that an interrupted launch can say
    /// what to clean up.
    async fn launch(
        &self,
        spec: &LaunchSpec,
        created: &mut Created,
    ) -> Result<Vec<Instance>, Error>;

    /// The project's instances (every cluster, or only `cluster`), unsorted. Terminated ones
    /// only when `include_terminated` (the local provider has none: a killed instance is gone).
    async fn instances(
        &self,
        cluster: Option<&str>,
        include_terminated: bool,
    ) -> Result<Vec<Instance>, Error>;

    /// Everything the kill switch would delete for the project.
    async fn kill_plan(&self, options: &KillOptions) -> Result<KillPlan, Error>;

    /// Carries out a plan made by [`Cloud::kill_plan`].
    async fn kill(&self, plan: &KillPlan, options: &KillOptions) -> Result<(), Error>;

    /// Refuses an instance type this cloud cannot launch (unknown to the region, or of an
    /// architecture elb does not run), before anything is launched.
    async fn check_type(&self, instance_type: &str) -> Result<(), Error>;

    /// Terminates exactly `instances` (by id) and waits until they are gone; nothing else of
    /// the project is touched.
    async fn terminate(
        &self,
        instances: Vec<Instance>,
        options: &KillOptions,
    ) -> Result<(), Error> {
        let plan = KillPlan::new(&self.location(), instances, false);
        self.kill(&plan, options).await
    }
}

/// What a launch has set up so far, for the message after an interruption.
#[derive(Debug, Default)]
pub(crate) struct Created {
    /// Resources other than instances, for people: `key pair p-key`, `security group sg-1`.
    pub resources: Vec<String>,
    /// Whether instances may exist that are not listed yet (a request in flight).
    pub instances_requested: bool,
    /// Ids of the instances created.
    pub instances: Vec<String>,
}

impl Created {
    /// The message after an interrupted launch: what exists and how to remove it.
    pub fn summary<C: Cloud>(&self, project: &str) -> String {
        let mut parts = self.resources.clone();
        if !self.instances.is_empty() {
            parts.push(format!("instances {}", self.instances.join(", ")));
        } else if self.instances_requested {
            parts.push("possibly instances (the launch request was in flight)".to_owned());
        }
        let what = if parts.is_empty() {
            "nothing yet".to_owned()
        } else {
            parts.join("; ")
        };
        let flag = C::FLAG;
        format!(
            "launch interrupted. Set up so far: {what}. Everything belongs to project {project}: \
             run `elb {flag}kill --project {project}` to remove it (or `elb {flag}ls` to look \
             first)"
        )
    }
}

/// The project's live agent instances (every cluster, or only `cluster`; not the balancer),
/// sorted, from the provider the settings select. Commands that act on running instances
/// (deploy, stats, bench) start here.
pub async fn fleet(settings: &Settings, cluster: Option<&str>) -> Result<Vec<Instance>, Error> {
    let mut instances = match &settings.provider {
        Provider::Ec2 { region, aws } => {
            ec2::Ec2::new(aws, region, settings)
                .instances(cluster, false)
                .await?
        }
        Provider::Local => {
            local::LocalCloud::new(settings)
                .instances(cluster, false)
                .await?
        }
    };
    instances.retain(|i| !i.is_balancer());
    sort_instances(&mut instances);
    Ok(instances)
}

/// The EC2 client of the settings' project when its instances are on EC2 (for what only EC2
/// has: the managed ALB, SSH deploys); `None` on the local provider.
pub(crate) fn ec2_of(settings: &Settings) -> Option<ec2::Ec2> {
    match &settings.provider {
        Provider::Ec2 { region, aws } => Some(ec2::Ec2::new(aws, region, settings)),
        Provider::Local => None,
    }
}

/// The settings' provider as users name it: `ec2` or `local`.
pub(crate) fn provider_name(settings: &Settings) -> &'static str {
    match settings.provider {
        Provider::Ec2 { .. } => "ec2",
        Provider::Local => "local",
    }
}

/// Whether listing the fleet is an API call with a rate limit (EC2), rather than reading a
/// file (the local provider): pollers list it less often then.
pub(crate) fn listing_is_costly(settings: &Settings) -> bool {
    matches!(settings.provider, Provider::Ec2 { .. })
}

/// Sorts instances the way every listing shows them: by cluster, then id.
pub fn sort_instances(instances: &mut [Instance]) {
    instances.sort_by(|a, b| (&a.cluster, &a.id).cmp(&(&b.cluster, &b.id)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interruption_message_lists_what_exists_and_how_to_remove_it() {
        let created = Created {
            resources: vec!["key pair p-key".into(), "security group sg-1".into()],
            instances_requested: true,
            instances: vec!["i-1".into()],
        };
        let msg = created.summary::<ec2::Ec2>("p");
        assert!(msg.contains("p-key") && msg.contains("sg-1") && msg.contains("i-1"));
        assert!(msg.contains("`elb kill --project p`"), "{msg}");
        let local = Created::default().summary::<local::LocalCloud>("p");
        assert!(local.contains("nothing yet"), "{local}");
        assert!(local.contains("`elb --local kill --project p`"), "{local}");
    }
}
