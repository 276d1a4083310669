//! One SSH session to a host (russh): connect with retries and backoff up to a deadline, verify
//! the host key against the project's known_hosts, log in with a key, run commands, upload files
//! over SFTP.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::ChannelMsg;
use russh_sftp::client::SftpSession;
use tokio::io::AsyncWriteExt;

use super::known_hosts::{KeyChange, KnownHosts, Verdict};
use super::{LoadedKey, SshOptions};
use crate::deploy::report::{Failure, FailureKind};

/// First pause between connection attempts; doubled after each, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest pause between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// How long output may still come once a command has exited.
const AFTER_EXIT: Duration = Duration::from_secs(1);
/// Longest time a remote command may run (the install waits up to 15 s for the old agent).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Checks the server's key in the handshake and keeps a refusal for the error message.
struct Verifier {
    host: String,
    port: u16,
    known_hosts: Arc<KnownHosts>,
    refusal: Arc<Mutex<Option<Failure>>>,
}

impl Verifier {
    fn refuse(&self, kind: FailureKind, why: String) -> Result<bool, russh::Error> {
        *self.refusal.lock().unwrap_or_else(|e| e.into_inner()) = Some(Failure::new(kind, why));
        Ok(false)
    }
}

impl client::Handler for Verifier {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return self.refuse(
                FailureKind::HostKeyUnverified,
                format!(
                    "{} offered a host certificate; elb checks plain host keys only",
                    self.host
                ),
            );
        };
        match self.known_hosts.check(&self.host, self.port, key) {
            Ok(Verdict::Known | Verdict::Learned) => Ok(true),
            Ok(Verdict::Changed(change)) => {
                self.refuse(FailureKind::HostKeyChanged, KeyChange::to_string(&change))
            }
            Err(e) => self.refuse(
                FailureKind::HostKeyUnverified,
                format!("cannot check the host key against known_hosts: {e}"),
            ),
        }
    }
}

/// An authenticated SSH session.
pub(crate) struct Session {
    handle: Handle<Verifier>,
}

/// What a remote command did.
#[derive(Debug)]
pub(crate) struct Output {
    /// Exit status (`None` if the server sent none, e.g. killed by a signal).
    pub status: Option<u32>,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl Session {
    /// Connects to `host`, retrying refused and timed-out attempts with exponential backoff
    /// until `opts.wait` has passed (each attempt bounded by `opts.connect_timeout`), then logs
    /// in as `opts.user` with `key`. A changed host key or a refused login is not retried.
    pub(crate) async fn connect(
        host: &str,
        opts: &SshOptions,
        key: &LoadedKey,
        known_hosts: Arc<KnownHosts>,
    ) -> Result<Self, Failure> {
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(60)),
            nodelay: true,
            ..Default::default()
        });
        let started = Instant::now();
        let deadline = started + opts.wait;
        let mut backoff = FIRST_BACKOFF;
        let mut attempts = 0;
        let mut handle = loop {
            attempts += 1;
            let refusal = Arc::new(Mutex::new(None));
            let verifier = Verifier {
                host: host.to_owned(),
                port: opts.port,
                known_hosts: known_hosts.clone(),
                refusal: refusal.clone(),
            };
            let limit = if attempts == 1 {
                opts.connect_timeout
            } else {
                opts.connect_timeout
                    .min(deadline.saturating_duration_since(Instant::now()))
            };
            let attempt = tokio::time::timeout(
                limit,
                client::connect(config.clone(), (host, opts.port), verifier),
            )
            .await;
            let error = match attempt {
                Ok(Ok(handle)) => break handle,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no SSH handshake within {limit:?}"),
            };
            if let Some(refused) = refusal.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return Err(refused);
            }
            tracing::debug!(%host, attempts, %error, "SSH connection attempt failed");
            if Instant::now() + backoff >= deadline {
                return Err(Failure::new(
                    FailureKind::Unreachable,
                    format!(
                        "cannot reach sshd at {host}:{} ({attempts} attempts in {:.1}s; last: \
                         {error}). Check that the host is up and that port {} is open to you",
                        opts.port,
                        started.elapsed().as_secs_f64(),
                        opts.port
                    ),
                ));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        };
        let refused = |detail: String| {
            Failure::new(
                FailureKind::AuthRefused,
                format!(
                    "{host} refused user `{}` with the key {} ({}){detail}. Check the user \
                     (--ssh-user) and that the key's public half is in its authorized_keys \
                     (--ssh-key picks another key)",
                    opts.user,
                    key.path.display(),
                    key.key.public_key().fingerprint(HashAlg::Sha256),
                ),
            )
        };
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten();
        let login = tokio::time::timeout(
            opts.connect_timeout,
            handle.authenticate_publickey(
                &opts.user,
                PrivateKeyWithHashAlg::new(key.key.clone(), hash),
            ),
        )
        .await;
        match login {
            Ok(Ok(result)) if result.success() => Ok(Self { handle }),
            Ok(Ok(_)) => Err(refused(String::new())),
            Ok(Err(e)) => Err(refused(format!(": {e}"))),
            Err(_) => Err(refused(format!(
                ": no answer within {:?}",
                opts.connect_timeout
            ))),
        }
    }

    /// Runs `command` and collects its output and exit status.
    pub(crate) async fn exec(&self, command: &str) -> Result<Output, String> {
        let run = async {
            let mut channel = self
                .handle
                .channel_open_session()
                .await
                .map_err(|e| format!("cannot open a session: {e}"))?;
            channel
                .exec(true, command)
                .await
                .map_err(|e| format!("cannot run a command: {e}"))?;
            let mut output = Output {
                status: None,
                stdout: String::new(),
                stderr: String::new(),
            };
            loop {
                // Once the command has exited, a process it left behind may still hold its
                // stdout open (and so the channel): wait briefly for the rest, not for that.
                let next = match output.status {
                    None => channel.wait().await,
                    Some(_) => tokio::time::timeout(AFTER_EXIT, channel.wait())
                        .await
                        .unwrap_or(None),
                };
                let Some(message) = next else { break };
                match message {
                    ChannelMsg::Data { data } => {
                        output.stdout.push_str(&String::from_utf8_lossy(&data))
                    }
                    ChannelMsg::ExtendedData { data, .. } => {
                        output.stderr.push_str(&String::from_utf8_lossy(&data));
                    }
                    ChannelMsg::ExitStatus { exit_status } => output.status = Some(exit_status),
                    _ => {}
                }
            }
            Ok(output)
        };
        tokio::time::timeout(COMMAND_TIMEOUT, run)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "the command did not finish within {COMMAND_TIMEOUT:?}"
                ))
            })
    }

    /// Writes `bytes` to `path` over SFTP (created or truncated).
    pub(crate) async fn upload(&self, path: &str, bytes: &[u8]) -> Result<(), String> {
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| format!("cannot open a session: {e}"))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| format!("no SFTP subsystem: {e}"))?;
        let sftp = SftpSession::new(channel.into_stream())
            .await
            .map_err(|e| format!("SFTP start: {e}"))?;
        let mut file = sftp
            .create(path)
            .await
            .map_err(|e| format!("cannot create {path}: {e}"))?;
        file.write_all(bytes)
            .await
            .map_err(|e| format!("writing {path}: {e}"))?;
        file.shutdown()
            .await
            .map_err(|e| format!("closing {path}: {e}"))?;
        let _ = sftp.close().await;
        Ok(())
    }

    /// Says goodbye to the server.
    pub(crate) async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}
