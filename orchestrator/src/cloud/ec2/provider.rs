//! EC2 behind the [`Cloud`] trait: a launch is key pair, security group, one RunInstances for the
//! whole cluster, then a wait; the kill switch terminates, waits, then deletes the security
//! groups and key pairs.

use std::time::Duration;

use tokio::time::Instant;

use super::{Ec2, LaunchSpec, Network};
use crate::agent_binary::Arch;
use crate::cli::kill::KillArgs;
use crate::cli::launch::{LaunchArgs, LaunchRequest};
use crate::cloud::errors::CloudError;
use crate::cloud::firewall::{self, Cidr};
use crate::cloud::wait::{self, Poll, Target};
use crate::cloud::{Cloud, Created, Instance};
use crate::plan::{Group, KillPlan};
use crate::progress::Progress;
use crate::Error;

impl Cloud for Ec2 {
    const FLAG: &'static str = "";

    fn location(&self) -> String {
        format!("in {}", self.region)
    }

    async fn launch(
        &self,
        request: &LaunchRequest,
        created: &mut Created,
    ) -> Result<Vec<Instance>, Error> {
        let args = &request.args;
        let Destination {
            image_id,
            network,
            arch,
        } = self.destination(args).await?;
        let user_data = request.user_data_for(arch)?;

        let key = self.state.ensure_key()?;
        let key_pair = self.ensure_key_pair(&key.public_openssh).await?;
        created.resources.push(format!("key pair {key_pair}"));

        if args.ssh_cidr.iter().any(Cidr::is_world) {
            eprintln!(
                "warning: SSH (port 22) will be open to the whole internet (--ssh-cidr 0.0.0.0/0)"
            );
        }
        let wanted = firewall::wanted_rules(&args.app_cidr, &args.ssh_cidr);
        let group = self.ensure_security_group(&network.vpc_id, &wanted).await?;
        created
            .resources
            .push(format!("security group {}", group.id));
        let how = if group.created { "created" } else { "reusing" };
        eprintln!("security group {} ({how}), key pair {}", group.id, key_pair);
        for rule in &group.extra_rules {
            eprintln!(
                "note: security group {} also allows {rule}, which this launch did not ask for \
                 (elb never revokes rules; remove it by hand if it is stale)",
                group.id
            );
        }

        let client_token = format!("elb-{:032x}", rand::random::<u128>());
        let spec = LaunchSpec {
            cluster: &args.cluster,
            instance_type: &args.instance_type,
            count: args.count,
            image_id: &image_id,
            security_group_id: &group.id,
            subnet_id: network.subnet_id.as_deref(),
            user_data: user_data.as_deref(),
            client_token: &client_token,
        };
        eprintln!(
            "launching {} x {} ({image_id}) as cluster {}",
            args.count, args.instance_type, args.cluster
        );
        created.instances_requested = true;
        created.instances = self.run_instances(&spec).await?;

        let poll = Poll {
            interval: Duration::from_millis(args.poll_interval_ms),
            timeout: Duration::from_secs(args.timeout),
        };
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

    async fn kill_plan(&self, args: &KillArgs) -> Result<KillPlan, Error> {
        let instances = self.project_instances(None, false).await?;
        let (security_groups, key_pairs) = if args.keep_network {
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
            security_groups,
            key_pairs,
            ..KillPlan::new(&self.region, instances, args.dry_run)
        })
    }

    /// Terminate (in batches), wait until terminated, then delete the security groups and key
    /// pairs.
    async fn kill(&self, plan: &KillPlan, args: &KillArgs) -> Result<(), Error> {
        let poll = Poll {
            interval: Duration::from_millis(args.poll_interval_ms),
            timeout: Duration::from_secs(args.timeout),
        };
        let deadline = Instant::now() + poll.timeout;
        if !plan.instances.is_empty() {
            let ids: Vec<String> = plan.instances.iter().map(|i| i.id.clone()).collect();
            self.terminate(&ids).await?;
            eprintln!("terminating {} instance(s)", ids.len());
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
                Ok(()) => eprintln!("deleted security group {} ({})", g.id, g.name),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        for k in &plan.key_pairs {
            match self.delete_key_pair(k).await {
                Ok(()) => eprintln!("deleted key pair {k}"),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        first_error.map_or(Ok(()), |e| Err(e.into()))
    }
}

/// Where a launch goes, found by read-only checks.
struct Destination {
    image_id: String,
    network: Network,
    arch: Arch,
}

impl Ec2 {
    /// Read-only checks, so a refused launch creates nothing: the type's architecture (x86_64
    /// where it runs, else arm64), an AMI of that architecture (given or found), and the network.
    async fn destination(&self, args: &LaunchArgs) -> Result<Destination, Error> {
        let architectures = self.architectures(&args.instance_type).await?;
        let arch =
            Arch::of_instance_type(&architectures).ok_or_else(|| Error::UnsupportedArch {
                instance_type: args.instance_type.clone(),
                architectures: architectures.join(", "),
            })?;
        let image_id = match &args.ami {
            Some(ami) => {
                let image_arch = self.image_architecture(ami).await?;
                if Arch::parse(&image_arch) != Some(arch) {
                    return Err(Error::ImageArch {
                        ami: ami.clone(),
                        image_arch,
                        instance_type: args.instance_type.clone(),
                        arch: arch.ec2_name(),
                    });
                }
                ami.clone()
            }
            None => self.amazon_linux_image(arch.ec2_name()).await?,
        };
        let network = self.network(args.subnet.as_deref()).await?;
        tracing::info!(%image_id, vpc = %network.vpc_id, arch = arch.as_str(), "launch target");
        Ok(Destination {
            image_id,
            network,
            arch,
        })
    }
}
