//! Certificates for the HTTPS tests, made by the `openssl` command (Debian's), and the TLS
//! clients nobody here wrote: `curl` and `openssl s_client`.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::TempDir;

/// A self-signed certificate and its key (mode 600) in files of their own.
pub struct Certificate {
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: TempDir,
}

impl Certificate {
    /// An ECDSA P-256 certificate for `names` (its DNS subject alternative names; the first is
    /// also its common name). No names: a certificate with a common name only.
    pub fn for_names(names: &[&str]) -> Certificate {
        let dir = TempDir::new("elb-tls");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let common_name = names.first().copied().unwrap_or("no-name");
        let mut command = Command::new("openssl");
        command
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args([
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={common_name}"),
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert);
        if !names.is_empty() {
            let alt: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
            command.args(["-addext", &format!("subjectAltName={}", alt.join(","))]);
        }
        let made = command.output().expect("run openssl req");
        assert!(
            made.status.success(),
            "openssl req: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .expect("chmod the key");
        Certificate {
            cert,
            key,
            _dir: dir,
        }
    }

    /// The balancer's config entry for this certificate.
    pub fn entry(&self) -> proto::balancer_config::Certificate {
        proto::balancer_config::Certificate {
            cert: self.cert.display().to_string(),
            key: self.key.display().to_string(),
        }
    }

    /// The base64 SHA-256 of the certificate's public key (SubjectPublicKeyInfo), as
    /// Chromium's `--ignore-certificate-errors-spki-list` takes it.
    pub fn spki_sha256(&self) -> String {
        let cert = self.cert.display();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl x509 -pubkey -noout -in '{cert}' | openssl pkey -pubin -outform der | \
                 openssl dgst -sha256 -binary | base64"
            ))
            .output()
            .expect("run openssl");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The SHA-256 fingerprint `openssl x509` prints for the certificate.
    pub fn fingerprint(&self) -> String {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(&self.cert)
            .output()
            .expect("run openssl x509");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// What `openssl s_client` saw: whether the handshake succeeded, and its report.
pub struct Handshake {
    pub ok: bool,
    pub report: String,
}

impl Handshake {
    /// The subject line of the certificate the server sent, e.g. `subject=CN = a.example`.
    pub fn subject(&self) -> &str {
        self.report
            .lines()
            .find(|l| l.starts_with("subject="))
            .unwrap_or("")
    }

    /// The SHA-256 fingerprint of the certificate the server sent.
    pub fn fingerprint(&self) -> String {
        let pem: String = self
            .report
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
            .take_while(|l| !l.starts_with("-----END CERTIFICATE-----"))
            .chain(["-----END CERTIFICATE-----"])
            .map(|l| format!("{l}\n"))
            .collect();
        let mut child = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run openssl x509");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(pem.as_bytes())
            .expect("write the PEM");
        let out = child.wait_with_output().expect("openssl x509");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// A TLS handshake with `openssl s_client` on 127.0.0.1:`port`: `server_name` sent by SNI
/// (`None`: none sent), and extra flags (e.g. `-tls1_2`).
pub fn s_client(port: u16, server_name: Option<&str>, flags: &[&str]) -> Handshake {
    let mut command = Command::new("openssl");
    command
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(flags)
        .stdin(Stdio::null());
    match server_name {
        Some(name) => command.args(["-servername", name]),
        None => command.arg("-noservername"),
    };
    let out = command.output().expect("run openssl s_client");
    Handshake {
        ok: out.status.success(),
        report: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// What `curl` got: its exit status, the body, and `--write-out`'s status code and HTTP
/// version (`-w '%{http_code} %{http_version}'`, after a newline).
pub struct Curled {
    pub ok: bool,
    pub body: String,
    pub status: String,
    pub version: String,
    pub stderr: String,
}

/// `curl ARGS URL` with a 20 s limit.
pub fn curl(args: &[&str], url: &str) -> Curled {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-w",
            "\n%{http_code} %{http_version}",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, tail) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let (status, version) = tail.split_once(' ').unwrap_or((tail, ""));
    Curled {
        ok: out.status.success(),
        body: body.to_string(),
        status: status.to_string(),
        version: version.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// curl's flags to reach `name` on 127.0.0.1:`port` over HTTPS trusting `certificate`.
pub fn resolve(name: &str, port: u16, certificate: &Certificate) -> Vec<String> {
    vec![
        "--resolve".into(),
        format!("{name}:{port}:127.0.0.1"),
        "--cacert".into(),
        certificate.cert.display().to_string(),
    ]
}
