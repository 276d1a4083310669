//! How `launch` puts the agent on its instances (`--deploy ssh|user-data|none`): the flags of
//! each mode, the agent binary and user-data script made ready before anything is created, and
//! the SSH deploy or `/healthz` wait once the instances run.

use std::time::Duration;

use super::{usage, DeployMode, LaunchArgs, LaunchRequest};
use crate::agent_binary::{AgentPaths, Arch};
use crate::cloud::Instance;
use crate::config::Settings;
use crate::deploy::unit::{self, UnitIdentity};
use crate::deploy::user_data::{AgentUrl, Script, Sha256Hex};
use crate::deploy::{self, DeployOptions};
use crate::output::OutputFormat;
use crate::Error;

/// How the agent reaches the instances, from flags already checked.
#[derive(Debug)]
pub(super) enum Delivery {
    /// `--deploy none`.
    None,
    /// `--deploy ssh`.
    Ssh,
    /// `--deploy user-data`.
    UserData {
        /// `--agent-url`.
        url: AgentUrl,
        /// `--agent-sha256`; without it, the local binary's.
        sha256: Option<Sha256Hex>,
        /// How long to wait for `/healthz`, unless `--no-wait-healthy`.
        wait: Option<Duration>,
    },
}

impl LaunchArgs {
    /// The `--deploy` mode with its flags, each flag checked and refused where it has no effect.
    pub(super) fn delivery(&self) -> Result<Delivery, Error> {
        unit::check_install_dir(&self.install_dir).map_err(Error::Usage)?;
        let user_data_flags = [
            ("--agent-url", self.agent_url.is_some()),
            ("--agent-sha256", self.agent_sha256.is_some()),
            ("--no-wait-healthy", self.no_wait_healthy),
        ];
        let agent_flags = [
            ("--agent", self.agent.is_some()),
            ("--agent-arm64", self.agent_arm64.is_some()),
        ];
        let misplaced = |flags: &[(&str, bool)], mode: &str| {
            flags.iter().find(|(_, given)| *given).map(|(flag, _)| {
                Error::Usage(format!(
                    "{flag} has no effect with --deploy {mode}: drop it, or pick the --deploy \
                     mode it belongs to (see `elb launch --help`)"
                ))
            })
        };
        match self.deploy {
            DeployMode::None => {
                match misplaced(&[&user_data_flags[..], &agent_flags].concat(), "none") {
                    Some(err) => Err(err),
                    None => Ok(Delivery::None),
                }
            }
            DeployMode::Ssh => match misplaced(&user_data_flags, "ssh") {
                Some(err) => Err(err),
                None => Ok(Delivery::Ssh),
            },
            DeployMode::UserData => {
                if self.user_data.is_some() {
                    return Err(Error::Usage(
                        "--deploy user-data writes the instances' user data itself, so it \
                         cannot be combined with --user-data <file>: drop --user-data, or use \
                         --deploy ssh or --deploy none"
                            .into(),
                    ));
                }
                let url = self.agent_url.as_deref().ok_or_else(|| {
                    Error::Usage(
                        "--deploy user-data needs --agent-url <https URL>: the address the \
                         instances download the static agent from (upload the file the README's \
                         build step makes, e.g. to an S3 bucket or a release page)"
                            .into(),
                    )
                })?;
                Ok(Delivery::UserData {
                    url: AgentUrl::parse(url).map_err(usage)?,
                    sha256: self
                        .agent_sha256
                        .as_deref()
                        .map(Sha256Hex::parse)
                        .transpose()
                        .map_err(usage)?,
                    wait: (!self.no_wait_healthy).then(|| Duration::from_secs(self.health_timeout)),
                })
            }
        }
    }

    fn agent_paths(&self) -> AgentPaths {
        AgentPaths {
            x86_64: self.agent.clone(),
            arm64: self.agent_arm64.clone(),
        }
    }
}

/// Checks, before anything is created, that the agent for `arch` is at hand where the deploy
/// mode needs it, and renders the user-data script. Returns the user data to launch with.
pub(super) fn user_data(request: &LaunchRequest, arch: Arch) -> Result<Option<Vec<u8>>, Error> {
    let args = &request.args;
    let what = format!("instance type {}", args.instance_type);
    let (url, sha256) = match &request.delivery {
        Delivery::None => return Ok(request.user_data.clone()),
        Delivery::Ssh => {
            args.agent_paths().load(arch, &what)?;
            return Ok(request.user_data.clone());
        }
        Delivery::UserData { url, sha256, .. } => (url, sha256),
    };
    // The local binary gives the checksum when none is given; for arm64 it is also the proof
    // that an aarch64 build exists (the URL must serve that build).
    let sha256 = match (sha256, arch) {
        (Some(sha256), Arch::X86_64) => sha256.clone(),
        (given, _) => {
            let local = args.agent_paths().load(arch, &what)?;
            given.clone().unwrap_or_else(|| Sha256Hex::of(&local))
        }
    };
    let script = Script {
        url,
        sha256: &sha256,
        install_dir: &args.install_dir,
        identity: UnitIdentity {
            cluster: &args.cluster,
            instance_type: &args.instance_type,
            ..UnitIdentity::default()
        },
    }
    .render()?;
    eprintln!(
        "user data: installs the agent from {} (SHA-256 {}), {} bytes",
        url.as_str(),
        sha256.as_str(),
        script.len()
    );
    Ok(Some(script.into_bytes()))
}

/// Puts the agent on the running instances (SSH), or waits for the one user data installs.
pub(super) async fn deliver(
    settings: &Settings,
    request: &LaunchRequest,
    instances: &[Instance],
) -> Result<(), Error> {
    let args = &request.args;
    let report = match &request.delivery {
        Delivery::None | Delivery::UserData { wait: None, .. } => return Ok(()),
        Delivery::Ssh => {
            let opts = DeployOptions {
                agents: args.agent_paths(),
                install_dir: args.install_dir.clone(),
                ssh: args.ssh.options(),
                parallel: args.ssh.parallel as usize,
                health_timeout: Duration::from_secs(args.health_timeout),
            };
            eprintln!("deploying the agent over SSH");
            deploy::deploy_instances(settings, instances, &opts).await?
        }
        Delivery::UserData {
            wait: Some(timeout),
            ..
        } => {
            eprintln!(
                "waiting up to {}s for each agent's /healthz (cloud-init installs it at boot)",
                timeout.as_secs()
            );
            deploy::wait_healthy(instances, *timeout, args.ssh.parallel as usize).await?
        }
    };
    eprintln!("{}", report.render(OutputFormat::Table));
    Ok(report.check()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::launch::tests::{parse, refused};

    const URL: &str = "https://example.com/elb-agent";

    #[test]
    fn user_data_deploy_needs_an_agent_url_and_owns_the_user_data() {
        let msg = refused(&["--no-ssh", "--deploy", "user-data"]);
        assert!(msg.contains("--agent-url"), "{msg}");
        let msg = refused(&[
            "--no-ssh",
            "--deploy",
            "user-data",
            "--agent-url",
            URL,
            "--user-data",
            "/dev/null",
        ]);
        assert!(
            msg.contains("--user-data") && msg.contains("cannot be combined"),
            "{msg}"
        );
        let request = parse(&["--no-ssh", "--deploy", "user-data", "--agent-url", URL]).unwrap();
        assert!(matches!(
            request.delivery,
            Delivery::UserData { sha256: None, wait: Some(w), .. } if w == Duration::from_secs(300)
        ));
    }

    #[test]
    fn agent_url_and_checksum_are_checked_before_any_call() {
        let base = ["--no-ssh", "--deploy", "user-data", "--agent-url"];
        let msg = refused(&[&base[..], &["http://203.0.113.9/elb-agent"]].concat());
        assert!(msg.contains("https only"), "{msg}");
        let msg = refused(&[&base[..], &[URL, "--agent-sha256", "abc"]].concat());
        assert!(msg.contains("64 hex digits"), "{msg}");
        let msg = refused(&[&base[..], &[URL, "--install-dir", "relative/dir"]].concat());
        assert!(msg.contains("--install-dir"), "{msg}");
        let request = parse(
            &[
                &base[..],
                &[URL, "--agent-sha256", &"AB".repeat(32), "--no-wait-healthy"],
            ]
            .concat(),
        )
        .unwrap();
        assert!(matches!(
            request.delivery,
            Delivery::UserData { sha256: Some(sha), wait: None, .. } if sha.as_str() == "ab".repeat(32)
        ));
    }

    #[test]
    fn flags_of_another_deploy_mode_are_refused_not_ignored() {
        for (extra, flag) in [
            (
                &["--ssh-cidr", "203.0.113.7/32", "--agent-url", URL][..],
                "--agent-url",
            ),
            (
                &["--ssh-cidr", "203.0.113.7/32", "--no-wait-healthy"],
                "--no-wait-healthy",
            ),
            (
                &["--no-ssh", "--deploy", "none", "--agent", "/x"],
                "--agent",
            ),
            (
                &[
                    "--no-ssh",
                    "--deploy",
                    "none",
                    "--agent-sha256",
                    &"a".repeat(64),
                ],
                "--agent-sha256",
            ),
        ] {
            let msg = refused(extra);
            assert!(msg.starts_with(flag) && msg.contains("no effect"), "{msg}");
        }
    }
}
