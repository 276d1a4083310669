//! The project's known_hosts file (OpenSSH format, plain host names): a host's key is recorded on
//! first contact (trust on first use) and must match on every later one.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use russh::keys::{HashAlg, PublicKey};

use crate::state::{self, StateError};

/// File name inside the project's state directory.
pub(crate) const FILE: &str = "known_hosts";

/// What known_hosts says about a key a host presented.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The recorded key.
    Known,
    /// No key of this type was recorded for the host: it is now.
    Learned,
    /// Another key of this type is recorded: refuse.
    Changed(KeyChange),
}

/// A host presenting another key than the recorded one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyChange {
    /// The known_hosts entry name, `host` or `[host]:port`.
    pub entry: String,
    /// The file.
    pub path: PathBuf,
    /// Line of the recorded key.
    pub line: usize,
    /// SHA-256 fingerprint of the recorded key.
    pub recorded: String,
    /// SHA-256 fingerprint of the presented key.
    pub presented: String,
}

impl std::fmt::Display for KeyChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the host key of {} has changed: {} line {} records {}, the server presented {}. \
             Either the host was rebuilt or reinstalled, or someone is intercepting the \
             connection. If you know the host changed, forget the old key with \
             `ssh-keygen -R '{}' -f {}` and deploy again",
            self.entry,
            self.path.display(),
            self.line,
            self.recorded,
            self.presented,
            self.entry,
            self.path.display()
        )
    }
}

/// The known_hosts file; checks from concurrent connections are serialised so that every key
/// learnt is kept.
#[derive(Debug)]
pub(crate) struct KnownHosts {
    path: PathBuf,
    lock: Mutex<()>,
}

impl KnownHosts {
    /// The file at `path` (created on the first key learnt).
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            lock: Mutex::new(()),
        }
    }

    /// Checks `key` for `host:port`, recording it if the host has no key of its type yet.
    pub(crate) fn check(
        &self,
        host: &str,
        port: u16,
        key: &PublicKey,
    ) -> Result<Verdict, StateError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entry_name(host, port);
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(StateError::Io {
                    action: "reading",
                    path: self.path.clone(),
                    source,
                })
            }
        };
        for (index, line) in text.lines().enumerate() {
            let Some((names, recorded)) = parse_line(line) else {
                continue;
            };
            if !names.split(',').any(|n| n == entry) || recorded.algorithm() != key.algorithm() {
                continue;
            }
            if recorded.key_data() == key.key_data() {
                return Ok(Verdict::Known);
            }
            return Ok(Verdict::Changed(KeyChange {
                entry,
                path: self.path.clone(),
                line: index + 1,
                recorded: recorded.fingerprint(HashAlg::Sha256).to_string(),
                presented: key.fingerprint(HashAlg::Sha256).to_string(),
            }));
        }
        let openssh = key.to_openssh().map_err(|e| StateError::Io {
            action: "encoding a host key for",
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        let mut text = text;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("{entry} {openssh}\n"));
        create_parent(&self.path)?;
        state::write_atomic(&self.path, text.as_bytes(), 0o644)?;
        tracing::info!(%entry, fingerprint = %key.fingerprint(HashAlg::Sha256), "recorded a new host key");
        Ok(Verdict::Learned)
    }
}

/// `host` for port 22, `[host]:port` otherwise, as OpenSSH writes it.
fn entry_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `names keytype base64 [comment]`; comments, blank lines, markers and hashed names are skipped.
fn parse_line(line: &str) -> Option<(&str, PublicKey)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with(['#', '@', '|']) {
        return None;
    }
    let (names, key) = line.split_once(char::is_whitespace)?;
    Some((names, PublicKey::from_openssh(key.trim_start()).ok()?))
}

fn create_parent(path: &Path) -> Result<(), StateError> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StateError::Io {
            action: "creating",
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::{Algorithm, PrivateKey};

    fn key() -> PublicKey {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
            .unwrap()
            .public_key()
            .clone()
    }

    fn temp_file() -> PathBuf {
        std::env::temp_dir()
            .join(format!("elb-kh-test-{}", rand::random::<u64>()))
            .join(FILE)
    }

    #[test]
    fn first_contact_records_then_the_same_key_is_known() {
        let path = temp_file();
        let hosts = KnownHosts::new(path.clone());
        let (a, b) = (key(), key());
        assert_eq!(hosts.check("127.9.0.2", 22, &a).unwrap(), Verdict::Learned);
        assert_eq!(
            hosts.check("127.9.0.3", 2222, &b).unwrap(),
            Verdict::Learned
        );
        assert_eq!(hosts.check("127.9.0.2", 22, &a).unwrap(), Verdict::Known);
        assert_eq!(hosts.check("127.9.0.3", 2222, &b).unwrap(), Verdict::Known);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("127.9.0.2 ssh-ed25519 "), "{text}");
        assert!(text.contains("\n[127.9.0.3]:2222 ssh-ed25519 "), "{text}");
        fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_changed_key_is_refused_with_both_fingerprints_and_the_fix() {
        let path = temp_file();
        let hosts = KnownHosts::new(path.clone());
        let (old, new) = (key(), key());
        hosts.check("127.9.0.2", 22, &old).unwrap();
        let Verdict::Changed(change) = hosts.check("127.9.0.2", 22, &new).unwrap() else {
            panic!("a new key must be refused");
        };
        assert_eq!(change.line, 1);
        let msg = change.to_string();
        assert!(
            msg.contains(&old.fingerprint(HashAlg::Sha256).to_string()),
            "{msg}"
        );
        assert!(
            msg.contains(&new.fingerprint(HashAlg::Sha256).to_string()),
            "{msg}"
        );
        assert!(msg.contains("ssh-keygen -R '127.9.0.2' -f"), "{msg}");
        // The refused key is not recorded.
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 1);
        fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
