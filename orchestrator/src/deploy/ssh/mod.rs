//! Deploy over SSH (russh + russh-sftp): per host, connect (waiting for sshd), probe the
//! architecture and user, upload the agent over SFTP, run the install script, wait for
//! `/healthz`.

mod balancer;
mod client;
mod known_hosts;
mod remote;

pub(crate) use balancer::{BalancerHost, HostFile};

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use russh::keys::PrivateKey;

use super::report::{Failure, FailureKind};
use super::runner::{HostJob, HostProgress, Target};
use super::unit::UnitIdentity;
use super::{health, DeployOptions};
use crate::agent_binary::{AgentBinary, AgentPaths, Arch};
use crate::state::StateDir;
use crate::Error;
use client::Session;
use known_hosts::KnownHosts;

/// How to reach and log in to hosts.
#[derive(Debug, Clone)]
pub(crate) struct SshOptions {
    /// Login user (`--ssh-user`, default `ec2-user`).
    pub user: String,
    /// Private key (`--ssh-key`); the project's generated key when `None`.
    pub key: Option<PathBuf>,
    /// sshd port (`--ssh-port`, default 22).
    pub port: u16,
    /// Longest single connection attempt, handshake included (`--connect-timeout`).
    pub connect_timeout: Duration,
    /// How long to keep retrying until sshd answers (`--ssh-wait`).
    pub wait: Duration,
}

impl Default for SshOptions {
    /// The SSH flags' defaults: `ec2-user` on port 22 with the project's key, 10 s a connection
    /// attempt, 30 s of retries.
    fn default() -> Self {
        Self {
            user: "ec2-user".to_owned(),
            key: None,
            port: 22,
            connect_timeout: Duration::from_secs(10),
            wait: Duration::from_secs(30),
        }
    }
}

/// The login key, read once for every host.
#[derive(Debug)]
pub(crate) struct LoadedKey {
    /// Where it was read from (named in errors).
    pub path: PathBuf,
    /// The key.
    pub key: Arc<PrivateKey>,
}

/// Reads `--ssh-key`, or the project's key (generated on first use).
pub(crate) fn load_key(opts: &SshOptions, state: &StateDir) -> Result<LoadedKey, Error> {
    let path = match &opts.key {
        Some(path) => path.clone(),
        None => state.ensure_key()?.private_path,
    };
    let key = russh::keys::load_secret_key(&path, None).map_err(|e| {
        Error::Usage(format!(
            "cannot use the SSH key {}: {e} (an unencrypted OpenSSH private key is needed)",
            path.display()
        ))
    })?;
    Ok(LoadedKey {
        path,
        key: Arc::new(key),
    })
}

/// The SSH deploy of one host, shared by every host of a run: the key, known_hosts and each
/// architecture's agent binary are read once.
pub(crate) struct SshJob {
    agents: AgentPaths,
    binaries: [OnceLock<Result<Arc<AgentBinary>, String>>; 2],
    install_dir: String,
    ssh: SshOptions,
    key: LoadedKey,
    known_hosts: Arc<KnownHosts>,
    health_timeout: Duration,
}

impl SshJob {
    /// A job for `opts`, logging in with `key`, checking hosts against the project's
    /// known_hosts.
    pub(crate) fn new(opts: &DeployOptions, key: LoadedKey, state: &StateDir) -> Self {
        Self {
            agents: opts.agents.clone(),
            binaries: Default::default(),
            install_dir: opts.install_dir.clone(),
            ssh: opts.ssh.clone(),
            key,
            known_hosts: Arc::new(KnownHosts::new(state.path().join(known_hosts::FILE))),
            health_timeout: opts.health_timeout,
        }
    }

    /// The agent for `arch`, read and checked on first use.
    fn binary(&self, arch: Arch, what: &str) -> Result<Arc<AgentBinary>, Failure> {
        let slot = &self.binaries[usize::from(arch == Arch::Arm64)];
        slot.get_or_init(|| {
            self.agents
                .load(arch, what)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|message| Failure::new(FailureKind::NoAgentBinary, message))
    }

    /// [`binary`](Self::binary) for `target`, named in the arm64 error by its instance type or
    /// address.
    fn binary_for(&self, target: &Target, arch: Arch) -> Result<Arc<AgentBinary>, Failure> {
        let what = if target.instance_type.is_empty() {
            format!("host {}", target.address)
        } else {
            format!("instance type {}", target.instance_type)
        };
        self.binary(arch, &what)
    }

    async fn install(
        &self,
        target: &Target,
        session: &Session,
        progress: &HostProgress,
    ) -> Result<(), Failure> {
        progress.step("probing");
        let install_failed = |what: String| Failure::new(FailureKind::InstallFailed, what);
        let probed = session
            .exec(&remote::probe_command(&self.install_dir))
            .await
            .map_err(install_failed)?;
        let probe = remote::Probe::parse(&probed.stdout)
            .filter(|_| probed.status == Some(0))
            .ok_or_else(|| install_failed(format!("the probe failed: {}", probed.stderr.trim())))?;
        let arch = match target.arch {
            Some(arch) => arch,
            None => Arch::parse(&probe.machine).ok_or_else(|| {
                Failure::new(
                    FailureKind::NoAgentBinary,
                    format!(
                        "{} runs on {}, for which elb has no agent",
                        target.label, probe.machine
                    ),
                )
            })?,
        };
        let binary = self.binary_for(target, arch)?;

        tracing::debug!(
            host = %target.address,
            agent = %binary.path.display(),
            arch = binary.arch.as_str(),
            "uploading"
        );
        let staging = probe.staging_path(&self.install_dir, "elb-agent");
        progress.step(&format!(
            "uploading {:.1} MB",
            binary.bytes.len() as f64 / 1e6
        ));
        session
            .upload(&staging, &binary.bytes)
            .await
            .map_err(|e| Failure::new(FailureKind::UploadFailed, e))?;

        progress.step("installing");
        let identity = UnitIdentity {
            cluster: &target.cluster,
            instance_id: &target.instance_id,
            instance_type: &target.instance_type,
            az: &target.az,
        };
        let install = remote::Install {
            install_dir: &self.install_dir,
            files: vec![remote::Staged {
                staging,
                name: "elb-agent".into(),
                mode: "755",
                group: None,
            }],
            root: probe.root,
            service: remote::Service::agent(&identity, &self.install_dir),
        };
        let out = session
            .exec(&install.command())
            .await
            .map_err(install_failed)?;
        if out.status != Some(0) {
            let status = out
                .status
                .map_or("no exit status".to_owned(), |s| format!("exit {s}"));
            return Err(install_failed(format!(
                "install script: {status}: {}",
                out.stderr.trim()
            )));
        }
        tracing::info!(host = %target.address, output = %out.stdout.trim(), "installed");

        progress.step("waiting for /healthz");
        health::wait_until_healthy(&target.address, self.health_timeout)
            .await
            .map_err(|mut failure| {
                failure.message.push_str(&format!(
                    " (see {}/elb-agent.log, or `journalctl -u elb-agent` with systemd)",
                    self.install_dir
                ));
                failure
            })
    }
}

impl HostJob for SshJob {
    async fn run(&self, target: &Target, progress: &HostProgress) -> Result<(), Failure> {
        if let Some(arch) = target.arch {
            // Known from the instance type: no need to connect to learn there is no agent.
            self.binary_for(target, arch)?;
        }
        progress.step("connecting");
        let session = Session::connect(
            &target.address,
            &self.ssh,
            &self.key,
            self.known_hosts.clone(),
        )
        .await?;
        let result = self.install(target, &session, progress).await;
        session.close().await;
        result
    }
}
