//! `elb-balancer` on a host over SSH, for `elb balance` on EC2: the same connection, probe,
//! SFTP upload (to a staging file, then an atomic rename) and unit as the agent's deploy, plus
//! the balancer's config file: read it, replace it, reload it (`systemctl reload`, or SIGHUP
//! without systemd).

use std::sync::Arc;

use super::client::Session;
use super::known_hosts::{self, KnownHosts};
use super::remote::{self, Install, Probe, Reload, Service, Staged};
use super::{load_key, SshOptions};
use crate::agent_binary::AgentBinary;
use crate::deploy::unit::{self, BALANCER};
use crate::deploy::DeployError;
use crate::state::StateDir;
use crate::Error;

/// The config file's name in the install dir.
fn config_name() -> String {
    format!("{BALANCER}.toml")
}

/// An SSH session to the balancer's host, probed.
pub(crate) struct BalancerHost {
    session: Session,
    probe: Probe,
    install_dir: String,
    address: String,
}

impl BalancerHost {
    /// Connects to `address` as `opts` says (waiting for sshd up to `opts.wait`), checks its host
    /// key against the project's known_hosts and probes it. `install_dir` must have passed
    /// [`unit::check_install_dir`].
    pub(crate) async fn connect(
        address: &str,
        opts: &SshOptions,
        install_dir: &str,
        state: &StateDir,
    ) -> Result<Self, Error> {
        let key = load_key(opts, state)?;
        let known = Arc::new(KnownHosts::new(state.path().join(known_hosts::FILE)));
        let session = Session::connect(address, opts, &key, known)
            .await
            .map_err(|f| failed(address, f.message))?;
        let probed = session
            .exec(&remote::probe_command(install_dir))
            .await
            .map_err(|e| failed(address, e))?;
        let probe = Probe::parse(&probed.stdout)
            .filter(|_| probed.status == Some(0))
            .ok_or_else(|| failed(address, format!("the probe failed: {}", probed.stderr)))?;
        Ok(Self {
            session,
            probe,
            install_dir: install_dir.to_owned(),
            address: address.to_owned(),
        })
    }

    /// What `uname -m` says.
    pub(crate) fn machine(&self) -> &str {
        &self.probe.machine
    }

    /// Uploads `name` to its staging path.
    async fn stage(
        &self,
        name: &str,
        bytes: &[u8],
        mode: &'static str,
        group: Option<&'static str>,
    ) -> Result<Staged, Error> {
        let staging = self.probe.staging_path(&self.install_dir, name);
        self.session
            .upload(&staging, bytes)
            .await
            .map_err(|e| failed(&self.address, e))?;
        Ok(Staged {
            staging,
            name: name.to_owned(),
            mode,
            group,
        })
    }

    /// Runs `command`; a non-zero exit is an error carrying its stderr.
    async fn run(&self, what: &str, command: &str) -> Result<String, Error> {
        let out = self
            .session
            .exec(command)
            .await
            .map_err(|e| failed(&self.address, e))?;
        if out.status != Some(0) {
            let status = out
                .status
                .map_or("no exit status".to_owned(), |s| format!("exit {s}"));
            return Err(failed(
                &self.address,
                format!("{what}: {status}: {}", out.stderr.trim()),
            ));
        }
        Ok(out.stdout)
    }

    /// Installs `binary` and `config` and (re)starts the balancer: under systemd as
    /// `elb-balancer.service` (`ExecReload` sends SIGHUP), else detached with a pid file.
    pub(crate) async fn install(
        &self,
        binary: &AgentBinary,
        config: &str,
        extra: &[HostFile],
    ) -> Result<(), Error> {
        let mut files = vec![
            self.stage(BALANCER, &binary.bytes, "755", None).await?,
            self.stage(&config_name(), config.as_bytes(), "644", None)
                .await?,
        ];
        for file in extra {
            files.push(
                self.stage(&file.name, &file.bytes, file.mode, file.group)
                    .await?,
            );
        }
        let install = Install {
            install_dir: &self.install_dir,
            files,
            root: self.probe.root,
            service: Service::balancer(&self.install_dir),
        };
        let out = self.run("install script", &install.command()).await?;
        tracing::info!(host = %self.address, output = %out.trim(), "balancer installed");
        Ok(())
    }

    /// The balancer's config file as it is on the host, `None` when there is none.
    pub(crate) async fn config(&self) -> Result<Option<String>, Error> {
        let path = unit::balancer_config_path(&self.install_dir);
        let out = self
            .session
            .exec(&format!("cat {}", crate::deploy::shell_word(&path)))
            .await
            .map_err(|e| failed(&self.address, e))?;
        Ok((out.status == Some(0)).then_some(out.stdout))
    }

    /// Replaces the config file with `config` (atomically) and makes the running balancer
    /// reload it.
    pub(crate) async fn reload(&self, config: &str, extra: &[HostFile]) -> Result<(), Error> {
        // The extra files first: the config that names them is put in place after them.
        let mut files = Vec::with_capacity(extra.len() + 1);
        for file in extra {
            files.push(
                self.stage(&file.name, &file.bytes, file.mode, file.group)
                    .await?,
            );
        }
        files.push(
            self.stage(&config_name(), config.as_bytes(), "644", None)
                .await?,
        );
        let reload = Reload {
            install_dir: &self.install_dir,
            files,
            root: self.probe.root,
            name: BALANCER,
        };
        self.run("reload", &reload.command()).await.map(drop)
    }

    /// Says goodbye to the server.
    pub(crate) async fn close(self) {
        self.session.close().await;
    }
}

/// A file the balancer needs beside its config (an HTTPS listener's certificate or key), put in
/// its install directory with `mode`.
#[derive(Debug, Clone)]
pub(crate) struct HostFile {
    pub name: String,
    pub bytes: Vec<u8>,
    /// Octal, as `chmod` takes it: "640" for a private key.
    pub mode: &'static str,
    /// Its group (a private key's: [`crate::deploy::unit::TLS_GROUP`], which the balancer's
    /// systemd unit takes as a supplementary group, so that its dynamic user can read it).
    pub group: Option<&'static str>,
}

fn failed(address: &str, message: String) -> Error {
    DeployError::Host {
        host: address.to_owned(),
        message,
    }
    .into()
}
