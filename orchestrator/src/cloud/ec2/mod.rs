//! The EC2 side of elb: one client, the project's tags and filters, and every call elb makes.
//! Nothing outside this module knows an EC2 type, error code or filter name.
//!
//! `sdk.rs` builds the AWS configuration, `network.rs` holds what instances need around them
//! (VPC, key pair, security group); instances themselves are here, and `provider.rs` puts it all
//! behind the [`Cloud`](super::Cloud) trait (launch, list, kill).

pub mod elbv2;
mod network;
mod provider;

pub use network::Network;
mod sdk;

pub use sdk::{check_credentials, load_sdk_config};

use aws_config::SdkConfig;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    ArchitectureType, Filter, HttpTokensState, InstanceMetadataEndpointState,
    InstanceMetadataOptionsRequest, InstanceType, ResourceType, Tag, TagSpecification,
};
use aws_sdk_ec2::Client;

use super::errors::CloudError;
use super::{instance_name, key_pair_name, Instance, MANAGED_BY};
use crate::config::Settings;
use crate::state::StateDir;

/// Most instance ids elb sends in one call (TerminateInstances accepts at most 1000).
pub const BATCH: usize = 1000;

/// Instance states that still cost money or hold resources: everything but `terminated`.
const LIVE_STATES: &[&str] = &["pending", "running", "shutting-down", "stopping", "stopped"];

/// Everything one RunInstances call needs.
#[derive(Debug)]
pub struct RunSpec<'a> {
    /// The `Cluster` tag.
    pub cluster: &'a str,
    /// The `Role` tag (`balancer`), none for agent instances.
    pub role: Option<&'a str>,
    /// e.g. `t3.micro`.
    pub instance_type: &'a str,
    /// How many instances (MinCount = MaxCount).
    pub count: u32,
    /// AMI id.
    pub image_id: &'a str,
    /// Security group id.
    pub security_group_id: &'a str,
    /// Subnet, or the default VPC's choice.
    pub subnet_id: Option<&'a str>,
    /// Raw user data (encoded here).
    pub user_data: Option<&'a [u8]>,
    /// Idempotency token: SDK retries reuse it, so a retried call cannot launch twice.
    pub client_token: &'a str,
    /// Tags beside the project's own.
    pub tags: &'a [(String, String)],
}

/// The project's view of EC2 in one region: every call is scoped by the exact `Project` tag.
#[derive(Debug, Clone)]
pub struct Ec2 {
    client: Client,
    /// The same project's ELBv2 resources (the managed ALB), through the same configuration.
    load_balancing: elbv2::LoadBalancing,
    project: String,
    region: String,
    /// Where the project's SSH key lives (launch imports its public half).
    state: StateDir,
    /// Where the lines for people go.
    notes: std::sync::Arc<dyn crate::notes::Notes>,
}

fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| (*v).to_owned()).collect()))
        .build()
}

fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

fn is_code<E: ProvideErrorMetadata>(err: &E, code: &str) -> bool {
    err.code() == Some(code)
}

/// Picks the AMI with the greatest name: AL2023 names embed the release (`2023.6.20250107.0`),
/// and creation dates are not reliable everywhere (moto sets them all equal).
fn newest_by_name<'a>(images: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<String> {
    images
        .into_iter()
        .max_by(|a, b| a.0.cmp(b.0))
        .map(|(_, id)| id.to_owned())
}

fn to_instance(i: &aws_sdk_ec2::types::Instance) -> Instance {
    let tags = i.tags();
    let owned = |s: Option<&str>| s.unwrap_or_default().to_owned();
    Instance {
        id: owned(i.instance_id()),
        name: owned(tag_value(tags, "Name")),
        cluster: owned(tag_value(tags, "Cluster")),
        instance_type: owned(i.instance_type().map(|t| t.as_str())),
        az: owned(i.placement().and_then(|p| p.availability_zone())),
        public_ip: i.public_ip_address().map(str::to_owned),
        private_ip: i.private_ip_address().map(str::to_owned),
        state: owned(i.state().and_then(|s| s.name()).map(|n| n.as_str())),
        role: tag_value(tags, "Role").map(str::to_owned),
        launched_at_unix_ms: tag_value(tags, crate::cloud::LAUNCHED_AT_TAG)
            .and_then(|v| v.parse().ok()),
    }
}

impl Ec2 {
    /// A client for the project's resources in `region` (the one `sdk` is configured for).
    pub fn new(sdk: &SdkConfig, region: &str, settings: &Settings) -> Self {
        Self {
            client: Client::new(sdk),
            load_balancing: elbv2::LoadBalancing::new(
                sdk,
                &settings.project,
                settings.notes.clone(),
            ),
            project: settings.project.clone(),
            region: region.to_owned(),
            state: settings.state.clone(),
            notes: settings.notes.clone(),
        }
    }

    /// Hands `line` to the notes of the settings this client was made with.
    pub fn note(&self, line: impl AsRef<str>) {
        self.notes.note(line.as_ref());
    }

    /// The project's ELBv2 side.
    pub fn load_balancing(&self) -> &elbv2::LoadBalancing {
        &self.load_balancing
    }

    /// The project's tags, then `extra`.
    fn tags(
        &self,
        name: &str,
        cluster: Option<&str>,
        role: Option<&str>,
        extra: &[(String, String)],
    ) -> Vec<Tag> {
        let mut pairs = vec![
            ("Project", self.project.as_str()),
            ("ManagedBy", MANAGED_BY),
        ];
        pairs.push(("Name", name));
        pairs.extend(cluster.map(|c| ("Cluster", c)));
        pairs.extend(role.map(|r| ("Role", r)));
        pairs.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        pairs
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect()
    }

    fn tag_spec(&self, kind: ResourceType, name: &str, cluster: Option<&str>) -> TagSpecification {
        self.role_tag_spec(kind, name, cluster, None)
    }

    fn role_tag_spec(
        &self,
        kind: ResourceType,
        name: &str,
        cluster: Option<&str>,
        role: Option<&str>,
    ) -> TagSpecification {
        self.run_tag_spec(kind, name, cluster, role, &[])
    }

    /// The tags of a launch's instances or volumes: the project's, then `extra`.
    fn run_tag_spec(
        &self,
        kind: ResourceType,
        name: &str,
        cluster: Option<&str>,
        role: Option<&str>,
        extra: &[(String, String)],
    ) -> TagSpecification {
        TagSpecification::builder()
            .resource_type(kind)
            .set_tags(Some(self.tags(name, cluster, role, extra)))
            .build()
    }

    fn project_filter(&self) -> Filter {
        filter("tag:Project", &[&self.project])
    }

    /// The CPU architectures an instance type supports (`x86_64`, `arm64`, ...).
    pub async fn architectures(&self, instance_type: &str) -> Result<Vec<String>, CloudError> {
        let out = self
            .client
            .describe_instance_types()
            .instance_types(InstanceType::from(instance_type))
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("ec2:DescribeInstanceTypes", e))?;
        let info = out
            .instance_types()
            .first()
            .ok_or_else(|| CloudError::UnknownInstanceType {
                instance_type: instance_type.to_owned(),
            })?;
        Ok(info
            .processor_info()
            .map(|p| p.supported_architectures())
            .unwrap_or_default()
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect())
    }

    /// The newest Amazon Linux 2023 AMI (kernel 6.1) for `arch`.
    pub async fn amazon_linux_image(&self, arch: &str) -> Result<String, CloudError> {
        let arch = ArchitectureType::from(arch);
        let pattern = format!("al2023-ami-2023.*-kernel-6.1-{}", arch.as_str());
        let out = self
            .client
            .describe_images()
            .owners("amazon")
            .filters(filter("name", &[&pattern]))
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("ec2:DescribeImages", e))?;
        let named = out
            .images()
            .iter()
            .filter_map(|i| Some((i.name()?, i.image_id()?)));
        newest_by_name(named).ok_or(CloudError::NoImage { pattern })
    }

    /// The architecture of an AMI given with `--ami` (also proves it exists in this region).
    pub async fn image_architecture(&self, image_id: &str) -> Result<String, CloudError> {
        let out = self
            .client
            .describe_images()
            .image_ids(image_id)
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("ec2:DescribeImages", e))?;
        out.images()
            .first()
            .and_then(|i| i.architecture())
            .map(|a| a.as_str().to_owned())
            .ok_or_else(|| CloudError::Api {
                action: "ec2:DescribeImages",
                code: "InvalidAMIID.NotFound".into(),
                message: format!("no image {image_id} in this region"),
            })
    }

    /// Launches all instances of `spec` in one RunInstances call, tagged at creation (instances
    /// and volumes) and with IMDSv2 required. Returns their ids.
    pub async fn run_instances(&self, spec: &RunSpec<'_>) -> Result<Vec<String>, CloudError> {
        let name = instance_name(&self.project, spec.cluster);
        let count = i32::try_from(spec.count).unwrap_or(i32::MAX);
        let metadata = InstanceMetadataOptionsRequest::builder()
            .http_tokens(HttpTokensState::Required)
            .http_endpoint(InstanceMetadataEndpointState::Enabled)
            .build();
        let out = self
            .client
            .run_instances()
            .image_id(spec.image_id)
            .instance_type(InstanceType::from(spec.instance_type))
            .min_count(count)
            .max_count(count)
            .key_name(key_pair_name(&self.project))
            .security_group_ids(spec.security_group_id)
            .set_subnet_id(spec.subnet_id.map(str::to_owned))
            .metadata_options(metadata)
            .client_token(spec.client_token)
            .tag_specifications(self.run_tag_spec(
                ResourceType::Instance,
                &name,
                Some(spec.cluster),
                spec.role,
                spec.tags,
            ))
            .tag_specifications(self.run_tag_spec(
                ResourceType::Volume,
                &name,
                Some(spec.cluster),
                spec.role,
                spec.tags,
            ))
            .set_user_data(spec.user_data.map(aws_smithy_types::base64::encode))
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("ec2:RunInstances", e))?;
        Ok(out
            .instances()
            .iter()
            .filter_map(|i| i.instance_id())
            .map(str::to_owned)
            .collect())
    }

    /// The instances `ids`, in one DescribeInstances call per [`BATCH`] ids. `None` while EC2
    /// does not know them all yet (`InvalidInstanceID.NotFound`, eventual consistency right after
    /// RunInstances).
    pub async fn describe(&self, ids: &[String]) -> Result<Option<Vec<Instance>>, CloudError> {
        let mut instances = Vec::with_capacity(ids.len());
        // No ids would mean no filter: EC2 would describe every instance of the account.
        for batch in ids.chunks(BATCH) {
            let result = self
                .client
                .describe_instances()
                .set_instance_ids(Some(batch.to_vec()))
                .send()
                .await;
            match result {
                Ok(out) => instances.extend(
                    out.reservations()
                        .iter()
                        .flat_map(|r| r.instances())
                        .map(to_instance),
                ),
                Err(e) if is_code(&e, "InvalidInstanceID.NotFound") => return Ok(None),
                Err(e) => return Err(CloudError::from_sdk("ec2:DescribeInstances", e)),
            }
        }
        Ok(Some(instances))
    }

    /// The project's instances (exact `Project` tag), optionally of one cluster, terminated ones
    /// only when asked.
    pub async fn project_instances(
        &self,
        cluster: Option<&str>,
        include_terminated: bool,
    ) -> Result<Vec<Instance>, CloudError> {
        let mut request = self
            .client
            .describe_instances()
            .filters(self.project_filter());
        if let Some(cluster) = cluster {
            request = request.filters(filter("tag:Cluster", &[cluster]));
        }
        if !include_terminated {
            request = request.filters(filter("instance-state-name", LIVE_STATES));
        }
        let pages = request
            .into_paginator()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| CloudError::from_sdk("ec2:DescribeInstances", e))?;
        Ok(pages
            .iter()
            .flat_map(|p| p.reservations())
            .flat_map(|r| r.instances())
            .map(to_instance)
            .collect())
    }

    /// Terminates `ids`, at most [`BATCH`] per call.
    pub async fn terminate(&self, ids: &[String]) -> Result<(), CloudError> {
        for batch in ids.chunks(BATCH) {
            self.client
                .terminate_instances()
                .set_instance_ids(Some(batch.to_vec()))
                .send()
                .await
                .map_err(|e| CloudError::from_sdk("ec2:TerminateInstances", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_greatest_name_wins_whatever_the_order() {
        let images = [
            ("al2023-ami-2023.6.20250107.0-kernel-6.1-x86_64", "ami-old"),
            ("al2023-ami-2023.7.20250331.0-kernel-6.1-x86_64", "ami-new"),
            ("al2023-ami-2023.6.20250218.2-kernel-6.1-x86_64", "ami-mid"),
        ];
        assert_eq!(newest_by_name(images).as_deref(), Some("ami-new"));
        assert_eq!(newest_by_name([]), None);
    }
    #[test]
    fn terminate_batches_hold_at_most_a_thousand_ids() {
        let ids: Vec<String> = (0..2501).map(|i| format!("i-{i:017x}")).collect();
        let sizes: Vec<usize> = ids.chunks(BATCH).map(<[String]>::len).collect();
        assert_eq!(sizes, vec![1000, 1000, 501]);
    }
}
