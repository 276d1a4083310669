//! How a launch puts the agent on its instances: nothing, SSH once they run, or user data that
//! cloud-init runs at first boot. The user-data script is rendered (and the agent for the
//! instance type's architecture checked) before anything is created; the SSH deploy or the
//! `/healthz` wait comes once the instances run.

use std::time::Duration;

use crate::agent_binary::Arch;
use crate::cloud::spec::UserData;
use crate::cloud::Instance;
use crate::config::Settings;
use crate::deploy::unit::UnitIdentity;
use crate::deploy::user_data::{AgentUrl, Script, Sha256Hex};
use crate::deploy::{self, DeployOptions};
use crate::output::OutputFormat;
use crate::Error;

/// The way the agent reaches new instances.
#[derive(Debug, Clone)]
pub(crate) enum Delivery {
    /// Bare instances, no agent.
    None,
    /// Over SSH once the instances run, as `elb deploy` does.
    Ssh,
    /// Through user data: cloud-init downloads the agent at first boot.
    UserData {
        /// Where the instances download the static agent from (https).
        url: AgentUrl,
        /// Its SHA-256; `None` takes the local binary's.
        sha256: Option<Sha256Hex>,
        /// How long to wait for `/healthz` once the instances run; `None` does not wait.
        wait: Option<Duration>,
    },
}

/// A launch's agent: the way it is delivered and the deploy options (binaries, install
/// directory, SSH, parallelism, health timeout) it is delivered with.
#[derive(Debug, Clone)]
pub(crate) struct AgentDelivery {
    /// The way.
    pub mode: Delivery,
    /// The binaries and how to install them.
    pub options: DeployOptions,
}

/// A launch's user data, once the cloud knows the architecture of the instance type: the
/// install script of a user-data delivery, else the user's own (see
/// [`AgentDelivery::user_data`]).
#[derive(Debug)]
pub(crate) struct LaunchUserData {
    pub agent: AgentDelivery,
    pub cluster: String,
    pub instance_type: String,
    /// The user's `--user-data`.
    pub given: Option<Vec<u8>>,
}

impl UserData for LaunchUserData {
    fn for_arch(&self, arch: Arch) -> Result<Option<Vec<u8>>, Error> {
        self.agent.user_data(
            arch,
            &self.cluster,
            &self.instance_type,
            self.given.as_deref(),
        )
    }
}

impl AgentDelivery {
    /// The user data to launch a `cluster` of `instance_type` (running `arch`) with: the install
    /// script of a user-data delivery, else `given`. Fails, before anything is created, when the
    /// agent for `arch` is not at hand and the delivery needs it.
    pub(crate) fn user_data(
        &self,
        arch: Arch,
        cluster: &str,
        instance_type: &str,
        given: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, Error> {
        let agents = &self.options.agents;
        let what = format!("instance type {instance_type}");
        let (url, sha256) = match &self.mode {
            Delivery::None => return Ok(given.map(<[u8]>::to_vec)),
            Delivery::Ssh => {
                agents.load(arch, &what)?;
                return Ok(given.map(<[u8]>::to_vec));
            }
            Delivery::UserData { url, sha256, .. } => (url, sha256),
        };
        // The local binary gives the checksum when none is given; for arm64 it is also the proof
        // that an aarch64 build exists (the URL must serve that build).
        let sha256 = match (sha256, arch) {
            (Some(sha256), Arch::X86_64) => sha256.clone(),
            (given, _) => {
                let local = agents.load(arch, &what)?;
                given.clone().unwrap_or_else(|| Sha256Hex::of(&local))
            }
        };
        let script = Script {
            url,
            sha256: &sha256,
            install_dir: &self.options.install_dir,
            identity: UnitIdentity {
                cluster,
                instance_type,
                ..UnitIdentity::default()
            },
        }
        .render()?;
        tracing::info!(
            "user data: installs the agent from {} (SHA-256 {}), {} bytes",
            url.as_str(),
            sha256.as_str(),
            script.len()
        );
        Ok(Some(script.into_bytes()))
    }

    /// Puts the agent on the running `instances` (SSH), or waits for the one user data
    /// installs; prints the per-host table to stderr and fails if any host failed.
    pub(crate) async fn deliver(
        &self,
        settings: &Settings,
        instances: &[Instance],
    ) -> Result<(), Error> {
        let report = match &self.mode {
            Delivery::None | Delivery::UserData { wait: None, .. } => return Ok(()),
            Delivery::Ssh => {
                settings.note("deploying the agent over SSH");
                deploy::deploy_instances(settings, instances, &self.options).await?
            }
            Delivery::UserData {
                wait: Some(timeout),
                ..
            } => {
                settings.note(format!(
                    "waiting up to {}s for each agent's /healthz (cloud-init installs it at boot)",
                    timeout.as_secs()
                ));
                deploy::wait_healthy(instances, *timeout, self.options.parallel).await?
            }
        };
        settings.note(report.render(OutputFormat::Table));
        Ok(report.check()?)
    }
}
