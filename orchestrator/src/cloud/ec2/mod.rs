//! The EC2 side of elb: one client, the project's tags and filters, and every call elb makes.
//! Nothing outside this module knows an EC2 type, error code or filter name.
//!
//! `sdk.rs` loads the AWS configuration, `network.rs` holds what instances need around them
//! (VPC, key pair, security group); instances themselves are here, and `provider.rs` puts it all
//! behind the [`Cloud`](super::Cloud) trait (launch, list, kill). The calls go through
//! [`crate::aws`], which speaks the APIs; what elb reads of each answer is read here.

pub mod acm;
pub mod autoscaling;
pub mod cloudwatch;
pub mod elbv2;
mod network;
pub(crate) mod provider;

pub use network::Network;
mod sdk;

pub use sdk::{check_credentials, load_sdk_config};

use crate::aws::{self, Node, Params, Service};

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
    /// Idempotency token: retries reuse it, so a retried call cannot launch twice.
    pub client_token: &'a str,
    /// Tags beside the project's own.
    pub tags: &'a [(String, String)],
}

/// The project's view of EC2 in one region: every call is scoped by the exact `Project` tag.
#[derive(Debug, Clone)]
pub struct Ec2 {
    client: aws::Client,
    /// The same project's ELBv2 resources (the managed ALB), through the same client.
    load_balancing: elbv2::LoadBalancing,
    project: String,
    region: String,
    /// Where the project's SSH key lives (launch imports its public half).
    state: StateDir,
    /// Where the lines for people go.
    notes: std::sync::Arc<dyn crate::notes::Notes>,
}

/// Calls the action that IAM names `iam` (`ec2:RunInstances`,
/// `elasticloadbalancing:CreateRule`) with `params` and hands the answer to `read`; a failure is
/// classified for the user, with the IAM action in its message.
async fn call<T>(
    client: &aws::Client,
    iam: &'static str,
    params: &Params,
    read: impl FnOnce(Node<'_, '_>) -> T,
) -> Result<T, CloudError> {
    let (prefix, action) = iam.split_once(':').unwrap_or(("ec2", iam));
    let service = match prefix {
        "ec2" => Service::Ec2,
        "cloudwatch" => Service::CloudWatch,
        "autoscaling" => Service::AutoScaling,
        _ => Service::Elbv2,
    };
    client
        .call(service, action, params)
        .await
        .and_then(|answer| answer.read(read))
        .map_err(|e| CloudError::from_aws(iam, e))
}

/// Every page of a paged `Describe*` call: `params` with each next page's token under
/// `token_param` (EC2's `NextToken`, ELBv2's `Marker`), each answer read by `page` into its
/// items and the next token (none on the last page).
async fn pages<T>(
    client: &aws::Client,
    iam: &'static str,
    params: &Params,
    token_param: &str,
    page: impl Fn(Node<'_, '_>) -> (Vec<T>, Option<String>),
) -> Result<Vec<T>, CloudError> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = params.clone();
        request.maybe(token_param, token.as_deref());
        let (items, next) = call(client, iam, &request, &page).await?;
        all.extend(items);
        match next {
            Some(next) => token = Some(next),
            None => return Ok(all),
        }
    }
}

/// Whether `result` failed with AWS's error `code`.
fn is_code<T>(result: &Result<T, CloudError>, code: &str) -> bool {
    matches!(result, Err(e) if e.code() == Some(code))
}

/// Picks the AMI with the greatest name: AL2023 names embed the release (`2023.6.20250107.0`),
/// and creation dates are not reliable everywhere (moto sets them all equal).
fn newest_by_name<'a>(images: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<String> {
    images
        .into_iter()
        .max_by(|a, b| a.0.cmp(b.0))
        .map(|(_, id)| id.to_owned())
}

/// An instance of a `DescribeInstances` answer (an `<item>` of an `<instancesSet>`).
fn to_instance(i: Node<'_, '_>) -> Instance {
    let optional = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
    Instance {
        id: i.string("instanceId"),
        name: i.tag("tagSet", "Name").unwrap_or_default().to_owned(),
        cluster: i.tag("tagSet", "Cluster").unwrap_or_default().to_owned(),
        instance_type: i.string("instanceType"),
        az: i
            .at(&["placement", "availabilityZone"])
            .map(|z| z.own_text().to_owned())
            .unwrap_or_default(),
        public_ip: optional(i.text("ipAddress")),
        private_ip: optional(i.text("privateIpAddress")),
        state: i
            .at(&["instanceState", "name"])
            .map(|n| n.own_text().to_owned())
            .unwrap_or_default(),
        role: i.tag("tagSet", "Role").map(str::to_owned),
        launched_at_unix_ms: i
            .tag("tagSet", crate::cloud::LAUNCHED_AT_TAG)
            .and_then(|v| v.parse().ok()),
    }
}

/// The instances of a `DescribeInstances` answer, and the token of the next page.
fn instances_page(root: Node<'_, '_>) -> (Vec<Instance>, Option<String>) {
    let instances = root
        .list("reservationSet")
        .flat_map(|r| r.list("instancesSet"))
        .map(to_instance)
        .collect();
    (instances, next_token(root))
}

/// EC2's `nextToken`, when there is another page.
fn next_token(root: Node<'_, '_>) -> Option<String> {
    root.text("nextToken")
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

impl Ec2 {
    /// A client for the project's resources in `region` (the one `client` calls).
    pub fn new(client: &aws::Client, region: &str, settings: &Settings) -> Self {
        Self {
            client: client.clone(),
            load_balancing: elbv2::LoadBalancing::new(
                client,
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

    /// Calls the EC2 action IAM names `iam` (see [`call`]).
    async fn call<T>(
        &self,
        iam: &'static str,
        params: &Params,
        read: impl FnOnce(Node<'_, '_>) -> T,
    ) -> Result<T, CloudError> {
        call(&self.client, iam, params, read).await
    }

    /// Parameters for an EC2 call.
    fn params() -> Params {
        Service::Ec2.params()
    }

    /// Every page of an EC2 `Describe*` call (see [`pages`]).
    async fn pages<T>(
        &self,
        iam: &'static str,
        params: &Params,
        page: impl Fn(Node<'_, '_>) -> (Vec<T>, Option<String>),
    ) -> Result<Vec<T>, CloudError> {
        pages(&self.client, iam, params, "NextToken", page).await
    }

    /// The project's tags, then `extra`.
    fn tags<'a>(
        &'a self,
        name: &'a str,
        cluster: Option<&'a str>,
        role: Option<&'a str>,
        extra: &'a [(String, String)],
    ) -> Vec<(&'a str, &'a str)> {
        let mut pairs = vec![
            ("Project", self.project.as_str()),
            ("ManagedBy", MANAGED_BY),
        ];
        pairs.push(("Name", name));
        pairs.extend(cluster.map(|c| ("Cluster", c)));
        pairs.extend(role.map(|r| ("Role", r)));
        pairs.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        pairs
    }

    /// Tags `kinds` of resources at creation (`TagSpecification.N`) with the project's tags and
    /// `extra`.
    fn tag_specs(
        &self,
        params: &mut Params,
        kinds: &[&str],
        name: &str,
        cluster: Option<&str>,
        role: Option<&str>,
        extra: &[(String, String)],
    ) {
        let tags = self.tags(name, cluster, role, extra);
        params.structs("TagSpecification", kinds, |p, prefix, kind| {
            p.set(format!("{prefix}.ResourceType"), kind);
            p.structs(&format!("{prefix}.Tag"), &tags, |p, tag, (k, v)| {
                p.set(format!("{tag}.Key"), k)
                    .set(format!("{tag}.Value"), v);
            });
        });
    }

    /// The CPU architectures an instance type supports (`x86_64`, `arm64`, ...).
    pub async fn architectures(&self, instance_type: &str) -> Result<Vec<String>, CloudError> {
        let mut params = Self::params();
        params.list("InstanceType", [instance_type]);
        let found = self
            .call("ec2:DescribeInstanceTypes", &params, |root| {
                root.list("instanceTypeSet").next().map(|info| {
                    info.child("processorInfo")
                        .into_iter()
                        .flat_map(|p| p.list("supportedArchitectures"))
                        .map(|a| a.own_text().to_owned())
                        .collect::<Vec<_>>()
                })
            })
            .await?;
        found.ok_or_else(|| CloudError::UnknownInstanceType {
            instance_type: instance_type.to_owned(),
        })
    }

    /// The newest Amazon Linux 2023 AMI (kernel 6.1) for `arch`.
    pub async fn amazon_linux_image(&self, arch: &str) -> Result<String, CloudError> {
        let pattern = format!("al2023-ami-2023.*-kernel-6.1-{arch}");
        let mut params = Self::params();
        params.list("Owner", ["amazon"]).filter("name", &[&pattern]);
        let newest = self
            .call("ec2:DescribeImages", &params, |root| {
                let images: Vec<Node<'_, '_>> = root.list("imagesSet").collect();
                newest_by_name(
                    images
                        .iter()
                        .filter_map(|i| Some((i.text("name")?, i.text("imageId")?))),
                )
            })
            .await?;
        newest.ok_or(CloudError::NoImage { pattern })
    }

    /// The architecture of an AMI given with `--ami` (also proves it exists in this region).
    pub async fn image_architecture(&self, image_id: &str) -> Result<String, CloudError> {
        let mut params = Self::params();
        params.list("ImageId", [image_id]);
        let arch = self
            .call("ec2:DescribeImages", &params, |root| {
                root.list("imagesSet")
                    .next()
                    .and_then(|i| i.text("architecture"))
                    .map(str::to_owned)
            })
            .await?;
        arch.ok_or_else(|| CloudError::Api {
            action: "ec2:DescribeImages",
            code: "InvalidAMIID.NotFound".into(),
            message: format!("no image {image_id} in this region"),
        })
    }

    /// Launches all instances of `spec` in one RunInstances call, tagged at creation (instances
    /// and volumes) and with IMDSv2 required. Returns their ids.
    pub async fn run_instances(&self, spec: &RunSpec<'_>) -> Result<Vec<String>, CloudError> {
        let name = instance_name(&self.project, spec.cluster);
        let mut params = Self::params();
        params
            .set("ImageId", spec.image_id)
            .set("InstanceType", spec.instance_type)
            .set("MinCount", spec.count)
            .set("MaxCount", spec.count)
            .set("KeyName", key_pair_name(&self.project))
            .list("SecurityGroupId", [spec.security_group_id])
            .maybe("SubnetId", spec.subnet_id)
            .set("MetadataOptions.HttpTokens", "required")
            .set("MetadataOptions.HttpEndpoint", "enabled")
            .set("ClientToken", spec.client_token)
            .maybe(
                "UserData",
                spec.user_data.map(aws_smithy_types::base64::encode),
            );
        self.tag_specs(
            &mut params,
            &["instance", "volume"],
            &name,
            Some(spec.cluster),
            spec.role,
            spec.tags,
        );
        self.call("ec2:RunInstances", &params, |root| {
            root.list("instancesSet")
                .map(|i| i.string("instanceId"))
                .filter(|id| !id.is_empty())
                .collect()
        })
        .await
    }

    /// The instances `ids`, in one DescribeInstances call per [`BATCH`] ids. `None` while EC2
    /// does not know them all yet (`InvalidInstanceID.NotFound`, eventual consistency right after
    /// RunInstances).
    pub async fn describe(&self, ids: &[String]) -> Result<Option<Vec<Instance>>, CloudError> {
        let mut instances = Vec::with_capacity(ids.len());
        // No ids would mean no filter: EC2 would describe every instance of the account.
        for batch in ids.chunks(BATCH) {
            let mut params = Self::params();
            params.list("InstanceId", batch);
            let result = self
                .pages("ec2:DescribeInstances", &params, instances_page)
                .await;
            if is_code(&result, "InvalidInstanceID.NotFound") {
                return Ok(None);
            }
            instances.extend(result?);
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
        let mut params = Self::params();
        params.filter("tag:Project", &[&self.project]);
        if let Some(cluster) = cluster {
            params.filter("tag:Cluster", &[cluster]);
        }
        if !include_terminated {
            params.filter("instance-state-name", LIVE_STATES);
        }
        self.pages("ec2:DescribeInstances", &params, instances_page)
            .await
    }

    /// Terminates `ids`, at most [`BATCH`] per call.
    pub async fn terminate(&self, ids: &[String]) -> Result<(), CloudError> {
        for batch in ids.chunks(BATCH) {
            let mut params = Self::params();
            params.list("InstanceId", batch);
            self.call("ec2:TerminateInstances", &params, |_| ()).await?;
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
