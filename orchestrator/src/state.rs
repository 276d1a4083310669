//! The per-project state directory: where the generated SSH key lives, written atomically.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, PrivateKey, PublicKey};

/// File name of the private key inside the state directory.
const PRIVATE_KEY_FILE: &str = "id_ed25519";
/// File name of the public key inside the state directory.
const PUBLIC_KEY_FILE: &str = "id_ed25519.pub";

/// Failures reading or writing local state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Neither `ELB_STATE_DIR`, `XDG_DATA_HOME` nor `HOME` is set.
    #[error("cannot locate the state directory: set ELB_STATE_DIR (or XDG_DATA_HOME or HOME)")]
    NoHome,
    /// A file system operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "writing".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The key file exists but is not a usable OpenSSH private key.
    #[error(
        "{} is not a usable OpenSSH private key ({source}); move it away and run again to \
         generate a new one",
        path.display()
    )]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// Why it was rejected.
        source: russh::keys::ssh_key::Error,
    },
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// The directory that holds one project's local state.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

/// The project's SSH key pair as stored on disk.
#[derive(Debug)]
pub struct LocalKey {
    /// Path of the private key (0600, OpenSSH format).
    pub private_path: PathBuf,
    /// The public half, as an OpenSSH `authorized_keys` line.
    pub public_openssh: String,
}

impl StateDir {
    /// `$ELB_STATE_DIR/<project>`, else `$XDG_DATA_HOME/elb/<project>`, else
    /// `~/.local/share/elb/<project>`. Nothing is created until something is written.
    pub fn for_project(project: &str) -> Result<Self, StateError> {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let base = if let Some(dir) = var("ELB_STATE_DIR") {
            dir
        } else if let Some(data) = var("XDG_DATA_HOME") {
            data.join("elb")
        } else {
            var("HOME")
                .ok_or(StateError::NoHome)?
                .join(".local/share/elb")
        };
        Ok(Self {
            path: base.join(project),
        })
    }

    /// The state directory at `path`, for tests.
    #[cfg(test)]
    pub fn for_path(path: PathBuf) -> Self {
        Self { path }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the project's ed25519 key, generating and saving one on first use.
    pub fn ensure_key(&self) -> Result<LocalKey, StateError> {
        let private_path = self.path.join(PRIVATE_KEY_FILE);
        let key = if private_path.exists() {
            PrivateKey::read_openssh_file(&private_path).map_err(|source| StateError::BadKey {
                path: private_path.clone(),
                source,
            })?
        } else {
            self.generate_key(&private_path)?
        };
        let public_openssh = openssh_public(key.public_key(), &private_path)?;
        Ok(LocalKey {
            private_path,
            public_openssh,
        })
    }

    fn generate_key(&self, private_path: &Path) -> Result<PrivateKey, StateError> {
        let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(|source| {
            StateError::BadKey {
                path: private_path.to_owned(),
                source,
            }
        })?;
        let pem = key
            .to_openssh(LineEnding::LF)
            .map_err(|source| StateError::BadKey {
                path: private_path.to_owned(),
                source,
            })?;
        let public = openssh_public(key.public_key(), private_path)?;
        self.create_dir()?;
        // Public half first: a crash in between leaves no private key without its public half.
        write_atomic(
            &self.path.join(PUBLIC_KEY_FILE),
            format!("{public}\n").as_bytes(),
            0o644,
        )?;
        write_atomic(private_path, pem.as_bytes(), 0o600)?;
        tracing::info!(path = %private_path.display(), "generated a new ed25519 key");
        Ok(key)
    }

    fn create_dir(&self) -> Result<(), StateError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .map_err(io_err("creating", &self.path))
    }
}

fn openssh_public(key: &PublicKey, path: &Path) -> Result<String, StateError> {
    key.to_openssh().map_err(|source| StateError::BadKey {
        path: path.to_owned(),
        source,
    })
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// readers see the old content or the new one, never a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io_err("creating", &tmp))?;
        // `mode` above is filtered by the umask; the key must be exactly 0600.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod", &tmp))?;
        file.write_all(bytes).map_err(io_err("writing", &tmp))?;
        file.sync_all().map_err(io_err("syncing", &tmp))?;
        fs::rename(&tmp, path).map_err(io_err("renaming into", path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_state() -> StateDir {
        let dir = std::env::temp_dir().join(format!("elb-state-test-{}", rand::random::<u64>()));
        StateDir {
            path: dir.join("proj"),
        }
    }

    #[test]
    fn a_key_is_generated_once_then_reused() {
        let state = temp_state();
        let first = state.ensure_key().unwrap();
        let mode = fs::metadata(&first.private_path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert!(first.public_openssh.starts_with("ssh-ed25519 "));
        let second = state.ensure_key().unwrap();
        assert_eq!(first.public_openssh, second.public_openssh);
        let on_disk = fs::read_to_string(state.path().join(PUBLIC_KEY_FILE)).unwrap();
        assert_eq!(on_disk.trim_end(), first.public_openssh);
        fs::remove_dir_all(state.path().parent().unwrap()).unwrap();
    }

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp_file() {
        let state = temp_state();
        state.create_dir().unwrap();
        let file = state.path().join("f");
        write_atomic(&file, b"one", 0o600).unwrap();
        write_atomic(&file, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        assert_eq!(fs::read_dir(state.path()).unwrap().count(), 1);
        fs::remove_dir_all(state.path().parent().unwrap()).unwrap();
    }
}
