//! The balancer on EC2: one instance tagged like the rest plus `Role=balancer` (`Cluster` and
//! `Name` are [`CLUSTER`] and `<project>-balancer`), in its own security group
//! `<project>-balancer`, with the agents' group opened on port 8000 to that group (a
//! group-to-group rule, as for the managed ALB). The static `elb-balancer` and its config go over
//! SSH as `elb deploy` puts the agent, under `elb-balancer.service` (`systemctl reload` sends
//! SIGHUP), or detached where there is no systemd.
//!
//! The balancer's group opens the listener port to `--client-cidr`, and SSH (22) and the admin
//! port ([`ADMIN_PORT`], `/status` and `/metrics`) to the `--ssh-cidr` sources only: the
//! operator who may log in may read the balancer's state, clients may not. The listener and the
//! admin port bind every address of the instance; the targets are the agents' private
//! addresses, which the group-to-group rule opens.
//!
//! How `elb` logs in (user, port, key, install dir) is remembered in the project's state
//! (`balancer-ec2.json`), so `sync`, `status` and the syncs of `launch` and `kill` reach it the
//! same way. A re-run of `up` finds the instance and group by tags and name, creates nothing
//! new, and only pushes the config (or installs the balancer when it does not answer).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{config, ADMIN_PORT};
use crate::agent_binary::{self, AgentBinary, Arch};
use crate::cloud::ec2::{Ec2, RunSpec};
use crate::cloud::firewall::{Cidr, Rule, SSH_PORT};
use crate::cloud::wait::{self, Poll, Target};
use crate::cloud::{security_group_name, Instance, BALANCER_ROLE};
use crate::deploy::ssh::{BalancerHost, HostFile, SshOptions};
use crate::deploy::unit::check_install_dir;
use crate::progress::Progress;
use crate::state::{write_atomic, StateDir};
use crate::Error;
use proto::AGENT_PORT;

/// The `Cluster` tag of the balancer instance.
pub const CLUSTER: &str = "balancer";

/// The state file that remembers how to reach the balancer.
const ACCESS_FILE: &str = "balancer-ec2.json";

/// The balancer's security group: `<project>-balancer`.
pub fn security_group(project: &str) -> String {
    format!("{project}-balancer")
}

/// What `elb balance up` needs on EC2 beyond the [`super::BalanceSpec`].
#[derive(Debug, Clone)]
pub struct Ec2Options {
    /// The instance type (`--type`).
    pub instance_type: String,
    /// Who may reach the listener (`--client-cidr`).
    pub client_cidr: Cidr,
    /// Who may reach SSH and the admin port (`--ssh-cidr`), at least one.
    pub ssh_cidr: Vec<Cidr>,
    /// How to log in.
    pub ssh: SshOptions,
    /// Where the balancer and its config go on the instance.
    pub install_dir: String,
    /// The static `elb-balancer` (`--balancer`; default as [`agent_binary::locate_balancer`]).
    pub binary: Option<PathBuf>,
    /// How long to wait for the instance to run, and how often to look.
    pub wait: Poll,
}

/// How `elb` reaches the balancer's host, remembered between runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Access {
    user: String,
    port: u16,
    key: Option<PathBuf>,
    install_dir: String,
}

impl Access {
    fn of(options: &Ec2Options) -> Self {
        Self {
            user: options.ssh.user.clone(),
            port: options.ssh.port,
            key: options.ssh.key.clone(),
            install_dir: options.install_dir.clone(),
        }
    }

    /// The remembered access, else the defaults of `elb balance up`.
    fn load(state: &StateDir) -> Self {
        std::fs::read(state.path().join(ACCESS_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_else(|| Self {
                user: SshOptions::default().user,
                port: SshOptions::default().port,
                key: None,
                install_dir: crate::deploy::unit::DEFAULT_INSTALL_DIR.to_owned(),
            })
    }

    fn save(&self, state: &StateDir) -> Result<(), Error> {
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        std::fs::create_dir_all(state.path())
            .map_err(|e| Error::Usage(format!("cannot create {}: {e}", state.path().display())))?;
        write_atomic(&state.path().join(ACCESS_FILE), &json, 0o600)?;
        Ok(())
    }

    fn ssh(&self) -> SshOptions {
        SshOptions {
            user: self.user.clone(),
            port: self.port,
            key: self.key.clone(),
            ..SshOptions::default()
        }
    }
}

/// The project's balancer instance and how to reach it.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    /// The instance.
    pub(crate) instance: Instance,
    access: Access,
    state: StateDir,
}

impl Site {
    /// The address `elb` reaches the instance at.
    pub(crate) fn address(&self) -> Result<IpAddr, Error> {
        self.instance
            .address()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "the balancer {} has no IP address (state {}): `elb balance down` then `up` \
                     replaces it",
                    self.instance.id, self.instance.state
                ))
            })
    }

    async fn host(&self) -> Result<BalancerHost, Error> {
        let address = self.address()?.to_string();
        BalancerHost::connect(
            &address,
            &self.access.ssh(),
            &self.access.install_dir,
            &self.state,
        )
        .await
    }

    /// The config file on the instance, `None` when there is none yet.
    pub(crate) async fn config(&self) -> Result<Option<String>, Error> {
        let host = self.host().await?;
        let text = host.config().await;
        host.close().await;
        text
    }

    /// Replaces the config on the instance (and writes `files` beside it) and reloads the
    /// balancer.
    pub(crate) async fn reload(&self, text: &str, files: &[HostFile]) -> Result<(), Error> {
        let host = self.host().await?;
        let done = host.reload(text, files).await;
        host.close().await;
        done
    }

    /// Installs `binary` with the config `text` and `files` beside it, and (re)starts the
    /// balancer.
    pub(crate) async fn install(
        &self,
        binary: &AgentBinary,
        text: &str,
        files: &[HostFile],
    ) -> Result<(), Error> {
        let host = self.host().await?;
        let done = match Arch::parse(host.machine()) {
            Some(Arch::X86_64) => host.install(binary, text, files).await,
            _ => Err(Error::Usage(format!(
                "the balancer's host {} runs on {}, and elb builds elb-balancer for x86_64 only",
                self.instance.id,
                host.machine()
            ))),
        };
        host.close().await;
        done
    }
}

/// The live balancer instances of the project (pending or running; normally one).
async fn instances(ec2: &Ec2) -> Result<Vec<Instance>, Error> {
    Ok(ec2
        .project_instances(Some(CLUSTER), false)
        .await?
        .into_iter()
        .filter(|i| i.is_balancer() && matches!(i.state.as_str(), "pending" | "running"))
        .collect())
}

/// The project's balancer instance, if one runs.
pub(crate) async fn find(ec2: &Ec2, state: &StateDir) -> Result<Option<Site>, Error> {
    Ok(instances(ec2)
        .await?
        .into_iter()
        .next()
        .map(|instance| Site {
            instance,
            access: Access::load(state),
            state: state.clone(),
        }))
}

/// The config for `spec` over `fleet` on an instance: the listeners and the admin port on every
/// address, the certificates copied into `install_dir`.
pub(crate) fn build(
    spec: &super::BalanceSpec,
    fleet: &[Instance],
    install_dir: &str,
) -> proto::balancer_config::Config {
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    config::build(
        spec,
        fleet,
        SocketAddr::new(any, spec.port),
        SocketAddr::new(any, ADMIN_PORT),
        config::FilesAt::Copied(install_dir),
    )
}

/// The balancer's instance as [`provision`] finds it before creating anything.
enum Found {
    /// It exists (pending or running).
    Existing(Instance),
    /// It is to be launched from this image, then get this binary.
    New {
        binary: AgentBinary,
        image_id: String,
    },
}

/// Creates (or finds) the balancer's group, rules and instance, without touching the balancer
/// on it. Everything is checked first (the binary, the instance type, the SSH sources), so a
/// refused `up` creates nothing; everything is tagged at creation.
pub(crate) async fn provision(
    ec2: &Ec2,
    project: &str,
    state: &StateDir,
    options: &Ec2Options,
    ports: &[u16],
) -> Result<(Site, Option<AgentBinary>), Error> {
    check_install_dir(&options.install_dir).map_err(Error::Usage)?;
    if options.ssh_cidr.is_empty() {
        return Err(Error::Usage(
            "elb balance up on EC2 puts the balancer on its instance over SSH, but no \
             --ssh-cidr says from where: add --ssh-cidr <your ip>/32 (find it with `curl -s \
             https://checkip.amazonaws.com`); it also opens the admin port to you"
                .into(),
        ));
    }
    let existing = instances(ec2).await?.into_iter().next();
    let architectures = ec2.architectures(&options.instance_type).await?;
    if Arch::of_instance_type(&architectures) != Some(Arch::X86_64) {
        return Err(Error::Usage(format!(
            "instance type {} is {}, and elb builds elb-balancer for x86_64 only: pick an x86_64 \
             type with --type (e.g. t3.small)",
            options.instance_type,
            architectures.join(", ")
        )));
    }
    // Only a new instance needs the binary (checked: static, x86_64) and an image; a balancer
    // that answers just gets its config.
    let found = match existing {
        Some(instance) => Found::Existing(instance),
        None => Found::New {
            binary: load_binary(options.binary.as_deref())?,
            image_id: ec2.amazon_linux_image(Arch::X86_64.ec2_name()).await?,
        },
    };
    let network = ec2.network(None).await?;
    let agents = ec2
        .group_id(&security_group_name(project), &network.vpc_id)
        .await?
        .ok_or_else(|| {
            Error::Usage(format!(
                "the agents' security group {} is missing although instances run: relaunch \
                 them with `elb launch` (which creates it)",
                security_group_name(project)
            ))
        })?;
    let key = state.ensure_key()?;
    ec2.ensure_key_pair(&key.public_openssh).await?;

    let mut rules: Vec<Rule> = ports
        .iter()
        .map(|&port| Rule {
            port,
            cidr: options.client_cidr.to_string(),
        })
        .collect();
    for cidr in &options.ssh_cidr {
        for port in [SSH_PORT, ADMIN_PORT] {
            rules.push(Rule {
                port,
                cidr: cidr.to_string(),
            });
        }
    }
    let name = security_group(project);
    let group = ec2
        .ensure_group(&name, "elb's balancer", &network.vpc_id, &rules)
        .await?;
    ec2.note(format!(
        "security group {name} ({}): {}",
        if group.created { "created" } else { "exists" },
        group.id
    ));
    ec2.allow_from_group(&agents, AGENT_PORT, &group.id).await?;

    let (instance, binary) = match found {
        Found::Existing(instance) => {
            ec2.note(format!(
                "balancer instance {}: exists ({})",
                instance.id, instance.state
            ));
            (instance, None)
        }
        Found::New { binary, image_id } => {
            let subnet = network.subnet_id.as_deref();
            let instance = launch(ec2, options, &image_id, &group.id, subnet).await?;
            (instance, Some(binary))
        }
    };
    let instance = match instance.state.as_str() {
        "running" => instance,
        _ => wait_running(ec2, &instance.id, options.wait).await?,
    };
    let access = Access::of(options);
    access.save(state)?;
    Ok((
        Site {
            instance,
            access,
            state: state.clone(),
        },
        binary,
    ))
}

/// The static balancer for x86_64 hosts, or why not.
pub(crate) fn load_binary(explicit: Option<&Path>) -> Result<AgentBinary, Error> {
    let path = agent_binary::locate_balancer(explicit)?;
    Ok(AgentBinary::load(&path, Arch::X86_64)?)
}

async fn launch(
    ec2: &Ec2,
    options: &Ec2Options,
    image_id: &str,
    group_id: &str,
    subnet_id: Option<&str>,
) -> Result<Instance, Error> {
    let client_token = format!("elb-{:032x}", rand::random::<u128>());
    let ids = ec2
        .run_instances(&RunSpec {
            cluster: CLUSTER,
            role: Some(BALANCER_ROLE),
            instance_type: &options.instance_type,
            count: 1,
            image_id,
            security_group_id: group_id,
            subnet_id,
            user_data: None,
            client_token: &client_token,
            tags: &[],
        })
        .await?;
    let id = ids.into_iter().next().ok_or_else(|| {
        Error::Usage("EC2 accepted the balancer's RunInstances but returned no instance".into())
    })?;
    ec2.note(format!(
        "balancer instance {id}: launched ({}, {image_id})",
        options.instance_type
    ));
    wait_running(ec2, &id, options.wait).await
}

async fn wait_running(ec2: &Ec2, id: &str, poll: Poll) -> Result<Instance, Error> {
    let ids = [id.to_owned()];
    let mut progress = Progress::new("waiting", "running", 1);
    let waited = wait::wait_until(ec2, &ids, Target::Running, poll, |r, t| {
        progress.update(r, t);
    })
    .await;
    progress.finish();
    waited?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Usage(format!("the balancer instance {id} vanished")))
}

/// Terminates the balancer instance (waiting until it is gone), revokes the agents' rule for its
/// group and deletes the group. Returns whether there was a balancer.
pub(crate) async fn down(ec2: &Ec2, project: &str, poll: Poll) -> Result<bool, Error> {
    let ids: Vec<String> = instances(ec2).await?.into_iter().map(|i| i.id).collect();
    if !ids.is_empty() {
        ec2.terminate(&ids).await?;
        ec2.note(format!(
            "terminating the balancer instance {}",
            ids.join(", ")
        ));
        wait::wait_until(ec2, &ids, Target::Terminated, poll, |_, _| {}).await?;
    }
    let network = ec2.network(None).await?;
    let name = security_group(project);
    let Some(group) = ec2.group_id(&name, &network.vpc_id).await? else {
        return Ok(!ids.is_empty());
    };
    if let Some(agents) = ec2
        .group_id(&security_group_name(project), &network.vpc_id)
        .await?
    {
        ec2.revoke_from_group(&agents, AGENT_PORT, &group).await?;
    }
    let deadline = tokio::time::Instant::now() + poll.timeout;
    ec2.delete_security_group(&group, deadline).await?;
    ec2.note(format!("deleted security group {group} ({name})"));
    Ok(true)
}
