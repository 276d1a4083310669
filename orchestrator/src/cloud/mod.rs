//! The cloud the clusters run in. Today only EC2 (`ec2/`); a local provider will come later,
//! and the trait will be extracted from `ec2::Ec2`'s public API then. What is provider-neutral
//! (names, the instance row, inbound rules) lives here and in `firewall.rs`.

pub mod ec2;
pub mod errors;
pub mod firewall;
pub mod wait;

use serde::Serialize;

use crate::config::Settings;
use crate::Error;

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
}

impl Instance {
    /// The address elb reaches the instance at: its public IPv4 address if it has one, else its
    /// private one.
    pub fn address(&self) -> Option<&str> {
        self.public_ip.as_deref().or(self.private_ip.as_deref())
    }
}

/// The project's live instances (every cluster, or only `cluster`), sorted, from the provider
/// the settings select. Commands that act on running instances (deploy, stats, bench) start here.
pub async fn fleet(settings: &Settings, cluster: Option<&str>) -> Result<Vec<Instance>, Error> {
    let ec2 = ec2::Ec2::new(&settings.sdk, &settings.project);
    let mut instances = ec2.project_instances(cluster, false).await?;
    sort_instances(&mut instances);
    Ok(instances)
}

/// Sorts instances the way every listing shows them: by cluster, then id.
pub fn sort_instances(instances: &mut [Instance]) {
    instances.sort_by(|a, b| (&a.cluster, &a.id).cmp(&(&b.cluster, &b.id)));
}
