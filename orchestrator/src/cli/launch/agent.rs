//! The `--deploy ssh|user-data|none` flags of `launch`: each mode's flags checked, and refused
//! where they have no effect, into a [`Delivery`].

use std::time::Duration;

use super::{usage, DeployMode, LaunchHow};
use crate::deploy::delivery::Delivery;
use crate::deploy::user_data::{AgentUrl, Sha256Hex};
use crate::Error;

impl LaunchHow {
    /// The `--deploy` mode with its flags, each flag checked and refused where it has no effect.
    pub(super) fn delivery(&self) -> Result<Delivery, Error> {
        let user_data_flags = [
            ("--agent-url", self.agent_url.is_some()),
            ("--agent-sha256", self.agent_sha256.is_some()),
            ("--no-wait-healthy", self.no_wait_healthy),
        ];
        let agent_flags = [
            ("--agent", self.agent.agent.is_some()),
            ("--agent-arm64", self.agent.agent_arm64.is_some()),
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
                    wait: (!self.no_wait_healthy)
                        .then(|| Duration::from_secs(self.agent.health_timeout)),
                })
            }
        }
    }
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
            request.agent.as_ref().unwrap().mode,
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
            &request.agent.as_ref().unwrap().mode,
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
