//! EC2 behind the [`Cloud`] trait: a launch is key pair, security group, one RunInstances for the
//! whole cluster, then a wait; the kill switch terminates, waits, then deletes the security
//! groups and key pairs.

use tokio::time::Instant;

use super::{Ec2, Network, RunSpec};
use crate::agent_binary::Arch;
use crate::cloud::errors::CloudError;
use crate::cloud::firewall::{self, Cidr};
use crate::cloud::plan::{Group, KillPlan};
use crate::cloud::spec::{KillOptions, LaunchSpec};
use crate::cloud::wait::{self, Target};
use crate::cloud::{Cloud, Created, Instance};
use crate::progress::Progress;
use crate::Error;

impl Cloud for Ec2 {
    const FLAG: &'static str = "";

    fn location(&self) -> String {
        format!("in {}", self.region)
    }

    async fn launch(
        &self,
        spec: &LaunchSpec,
        created: &mut Created,
    ) -> Result<Vec<Instance>, Error> {
        let Prepared {
            image_id,
            network,
            user_data,
            security_group_id,
            ..
        } = self.prepare(spec, created).await?;
        let client_token = format!("elb-{:032x}", rand::random::<u128>());
        let run = RunSpec {
            cluster: &spec.cluster,
            role: None,
            instance_type: &spec.instance_type,
            count: spec.count,
            image_id: &image_id,
            security_group_id: &security_group_id,
            subnet_id: network.subnet_id.as_deref(),
            user_data: user_data.as_deref(),
            client_token: &client_token,
            tags: &spec.tags,
        };
        self.note(format!(
            "launching {} x {} ({image_id}) as cluster {}",
            spec.count, spec.instance_type, spec.cluster
        ));
        created.instances_requested = true;
        created.instances = self.run_instances(&run).await?;

        let poll = spec.wait;
        let total = created.instances.len();
        let mut progress = Progress::new("waiting", "running", total);
        let waited = wait::wait_until(self, &created.instances, Target::Running, poll, |r, t| {
            progress.update(r, t);
        })
        .await;
        progress.finish();
        Ok(waited?)
    }

    async fn instances(
        &self,
        cluster: Option<&str>,
        include_terminated: bool,
    ) -> Result<Vec<Instance>, Error> {
        Ok(self.project_instances(cluster, include_terminated).await?)
    }

    async fn check_type(&self, instance_type: &str) -> Result<(), Error> {
        let architectures = self.architectures(instance_type).await?;
        match Arch::of_instance_type(&architectures) {
            Some(_) => Ok(()),
            None => Err(Error::UnsupportedArch {
                instance_type: instance_type.to_owned(),
                architectures: architectures.join(", "),
            }),
        }
    }

    async fn kill_plan(&self, options: &KillOptions) -> Result<KillPlan, Error> {
        let instances = self
            .project_instances(options.cluster.as_deref(), false)
            .await?;
        // The idle alarms of the instances to go (every alarm of the project when it all
        // goes: an alarm may outlive its instance), and the dashboard. A policy without
        // CloudWatch's actions does not stop the rest of the kill.
        let (alarms, dashboards, unsearched) = match self.cloudwatch_plan().await {
            Ok((alarms, dashboard)) => {
                let alarms = alarms
                    .into_iter()
                    .filter(|a| {
                        options.cluster.is_none() || instances.iter().any(|i| i.id == a.instance_id)
                    })
                    .map(|a| a.name)
                    .collect();
                let dashboards = dashboard
                    .filter(|_| options.cluster.is_none())
                    .into_iter()
                    .collect();
                (alarms, dashboards, Vec::new())
            }
            Err(e) => (
                Vec::new(),
                Vec::new(),
                vec![format!("CloudWatch alarms and dashboards ({e})")],
            ),
        };
        // The Auto Scaling groups and launch templates of the project (of the cluster).
        let wanted = options.cluster.as_deref().map(|c| self.asg_name(c));
        let keep = |name: &str| wanted.as_deref().is_none_or(|w| w == name);
        let mut unsearched = unsearched;
        let (auto_scaling_groups, launch_templates) = match (
            self.auto_scaling_groups(None).await,
            self.launch_templates().await,
        ) {
            (Ok(groups), Ok(templates)) => (
                groups
                    .into_iter()
                    .map(|g| g.name)
                    .filter(|n| keep(n))
                    .collect(),
                templates.into_iter().filter(|(_, n)| keep(n)).collect(),
            ),
            (Err(e), _) | (_, Err(e)) => {
                unsearched.push(format!("Auto Scaling groups and launch templates ({e})"));
                (Vec::new(), Vec::new())
            }
        };
        let base = KillPlan {
            auto_scaling_groups,
            launch_templates,
            alarms,
            dashboards,
            unsearched,
            ..KillPlan::new(&self.region, instances, options.dry_run)
        };
        if options.cluster.is_some() {
            return Ok(base);
        }
        let load_balancing = self.load_balancing().inventory().await?;
        let (security_groups, key_pairs) = if options.keep_network {
            (Vec::new(), Vec::new())
        } else {
            let groups = self.project_security_groups().await?;
            let groups = groups
                .into_iter()
                .map(|(id, name)| Group { id, name })
                .collect();
            (groups, self.project_key_pairs().await?)
        };
        Ok(KillPlan {
            load_balancing,
            security_groups,
            key_pairs,
            ..base
        })
    }

    /// Delete the load balancers (listeners, load balancers, waited for until gone, target
    /// groups), terminate the instances (in batches) and wait until terminated, then delete the
    /// security groups and key pairs.
    async fn kill(&self, plan: &KillPlan, options: &KillOptions) -> Result<(), Error> {
        let poll = options.wait;
        let deadline = Instant::now() + poll.timeout;
        for name in &plan.auto_scaling_groups {
            self.delete_auto_scaling_group(name, poll.interval, deadline)
                .await?;
            self.note(format!(
                "deleted Auto Scaling group {name} (with its instances)"
            ));
        }
        for (id, name) in &plan.launch_templates {
            self.delete_launch_template(id).await?;
            self.note(format!("deleted launch template {name} ({id})"));
        }
        if !plan.alarms.is_empty() {
            self.delete_alarms(&plan.alarms).await?;
            self.note(format!("deleted {} CloudWatch alarm(s)", plan.alarms.len()));
        }
        if !plan.dashboards.is_empty() {
            self.delete_dashboard().await?;
            self.note(format!(
                "deleted CloudWatch dashboard {}",
                plan.dashboards.join(", ")
            ));
        }
        self.load_balancing()
            .delete(&plan.load_balancing, poll.interval, deadline)
            .await?;
        if !plan.instances.is_empty() {
            let ids: Vec<String> = plan.instances.iter().map(|i| i.id.clone()).collect();
            self.terminate(&ids).await?;
            self.note(format!("terminating {} instance(s)", ids.len()));
            let mut progress = Progress::new("terminating", "terminated", ids.len());
            let waited = wait::wait_until(self, &ids, Target::Terminated, poll, |r, t| {
                progress.update(r, t);
            })
            .await;
            progress.finish();
            waited?;
        }
        // A group still in use must not keep the key pair alive: try everything, report the first
        // failure.
        let mut first_error: Option<CloudError> = None;
        for g in &plan.security_groups {
            match self.delete_security_group(&g.id, deadline).await {
                Ok(()) => self.note(format!("deleted security group {} ({})", g.id, g.name)),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        for k in &plan.key_pairs {
            match self.delete_key_pair(k).await {
                Ok(()) => self.note(format!("deleted key pair {k}")),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        first_error.map_or(Ok(()), |e| Err(e.into()))
    }
}

/// What instances of a launch spec need, made or found: the image, the network, the user data,
/// the key pair and the security group (`elb launch` runs them, `elb asg up` puts them in a
/// launch template).
pub struct Prepared {
    pub image_id: String,
    pub network: Network,
    pub user_data: Option<Vec<u8>>,
    pub key_pair: String,
    pub security_group_id: String,
}

/// Where a launch goes, found by read-only checks.
struct Destination {
    image_id: String,
    network: Network,
    arch: Arch,
}

impl Ec2 {
    /// Checks `spec` (read-only, so a refused launch creates nothing), then makes or finds its
    /// key pair and security group (rules reconciled), recording them in `created`.
    pub async fn prepare(
        &self,
        spec: &LaunchSpec,
        created: &mut Created,
    ) -> Result<Prepared, Error> {
        let Destination {
            image_id,
            network,
            arch,
        } = self.destination(spec).await?;
        let user_data = spec.user_data.for_arch(arch)?;

        let key = self.state.ensure_key()?;
        let key_pair = self.ensure_key_pair(&key.public_openssh).await?;
        created.resources.push(format!("key pair {key_pair}"));

        if spec.rules.ssh.iter().any(Cidr::is_world) {
            self.note(
                "warning: SSH (port 22) will be open to the whole internet (--ssh-cidr 0.0.0.0/0)",
            );
        }
        let wanted = firewall::wanted_rules(&spec.rules.app, &spec.rules.ssh);
        let group = self.ensure_security_group(&network.vpc_id, &wanted).await?;
        created
            .resources
            .push(format!("security group {}", group.id));
        let how = if group.created { "created" } else { "reusing" };
        self.note(format!(
            "security group {} ({how}), key pair {}",
            group.id, key_pair
        ));
        for rule in &group.extra_rules {
            self.note(format!(
                "note: security group {} also allows {rule}, which this launch did not ask for \
                 (elb never revokes rules; remove it by hand if it is stale)",
                group.id
            ));
        }
        Ok(Prepared {
            image_id,
            network,
            user_data,
            key_pair,
            security_group_id: group.id,
        })
    }

    /// Read-only checks, so a refused launch creates nothing: the type's architecture (x86_64
    /// where it runs, else arm64), an AMI of that architecture (given or found), and the network.
    async fn destination(&self, spec: &LaunchSpec) -> Result<Destination, Error> {
        let architectures = self.architectures(&spec.instance_type).await?;
        let arch =
            Arch::of_instance_type(&architectures).ok_or_else(|| Error::UnsupportedArch {
                instance_type: spec.instance_type.clone(),
                architectures: architectures.join(", "),
            })?;
        let image_id = match &spec.image {
            Some(ami) => {
                let image_arch = self.image_architecture(ami).await?;
                if Arch::parse(&image_arch) != Some(arch) {
                    return Err(Error::ImageArch {
                        ami: ami.clone(),
                        image_arch,
                        instance_type: spec.instance_type.clone(),
                        arch: arch.ec2_name(),
                    });
                }
                ami.clone()
            }
            None => self.amazon_linux_image(arch.ec2_name()).await?,
        };
        let network = self.network(spec.subnet.as_deref()).await?;
        tracing::info!(%image_id, vpc = %network.vpc_id, arch = arch.as_str(), "launch target");
        Ok(Destination {
            image_id,
            network,
            arch,
        })
    }
}
