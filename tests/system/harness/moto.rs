//! One real `moto_server` (the EC2 API emulator from PyPI) per test-binary run.
//!
//! Tests never share state through it: each one talks to moto through its own [`Shim`](super::Shim)
//! (or [`Ec2Api`](super::Ec2Api)) with its own `x-moto-account-id`, and moto keeps every account's
//! resources apart. Starting moto once and warming it (the first EC2 call loads the AMI catalogue,
//! 2-4 s) keeps the suite fast.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

use super::ec2_api::Ec2Api;

/// The running moto_server, reachable on `127.0.0.1:port`.
pub struct Moto {
    pub port: u16,
}

/// The moto_server of this test run, started and warmed on first use.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let moto = Moto { port: spawn(&[]) };
        // Warm-up: the first EC2 call loads the AMI catalogue; pay for it once, here.
        Ec2Api::new(moto.port, "000000000001".to_string())
            .call("ca-central-1", "DescribeImages", &[("Owner.1", "amazon")])
            .expect("moto_server answers a first EC2 call");
        moto
    })
}

/// A moto_server of its own that checks the SigV4 signature of every request after the first
/// `unchecked` ones (moto's `INITIAL_NO_AUTH_ACTION_COUNT`: it recomputes each signature with
/// botocore's signer from the IAM access keys it holds, and refuses a mismatch as AWS does). Its
/// own process, since the setting is global to a moto; it lives until the test binary exits.
pub fn moto_checking_signatures(unchecked: u32) -> Moto {
    Moto {
        port: spawn(&[("INITIAL_NO_AUTH_ACTION_COUNT", &unchecked.to_string())]),
    }
}

/// Starts moto_server with `env` beside the suite's settings and returns the port it took.
///
/// The process is spawned from a dedicated thread that never ends, with `PR_SET_PDEATHSIG`:
/// the kernel sends SIGKILL when the spawning *thread* dies, which for a thread that never ends
/// is when the test binary exits, whatever way it exits. That thread also drains moto's
/// stderr (one line per request) so moto never blocks on a full pipe.
fn spawn(env: &[(&str, &str)]) -> u16 {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let program = std::env::var_os("ELB_MOTO_SERVER").unwrap_or_else(|| "moto_server".into());
    let (port_tx, port_rx) = mpsc::channel::<Result<u16, String>>();
    std::thread::Builder::new()
        .name("moto_server".into())
        .spawn(move || {
            let mut command = Command::new(&program);
            command
                .args(["-H", "127.0.0.1", "-p", "0"])
                .env("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", "true")
                .env("MOTO_ENABLE_AMI_VALIDATION", "true")
                .env("MOTO_ENABLE_KEYPAIR_VALIDATION", "true")
                .envs(env)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let mut child = match command.spawn() {
                Ok(child) => child,
                Err(e) => {
                    let _ = port_tx.send(Err(format!(
                        "cannot start {program:?} (set ELB_MOTO_SERVER or put moto_server on PATH): {e}"
                    )));
                    return;
                }
            };
            let stderr = child.stderr.take().expect("stderr is piped");
            let mut port_tx = Some(port_tx);
            let mut seen = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(tx) = port_tx.as_ref() {
                    seen.push_str(&line);
                    seen.push('\n');
                    if let Some(port) = parse_port(&line) {
                        let _ = tx.send(Ok(port));
                        port_tx = None;
                    }
                }
            }
            let status = child.wait();
            if let Some(tx) = port_tx {
                let _ = tx.send(Err(format!("moto_server exited ({status:?}) before listening:\n{seen}")));
            }
            // Never end: moto's PDEATHSIG is tied to this thread.
            loop {
                std::thread::park();
            }
        })
        .expect("spawn the moto_server thread");
    match port_rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(port)) => port,
        Ok(Err(e)) => panic!("{e}"),
        Err(e) => panic!("moto_server did not print its port within 30 s: {e}"),
    }
}

/// moto (werkzeug) announces itself on stderr as ` * Running on http://127.0.0.1:PORT`.
fn parse_port(line: &str) -> Option<u16> {
    let rest = line.split("Running on http://127.0.0.1:").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn port_is_read_from_the_werkzeug_banner() {
        assert_eq!(
            super::parse_port(" * Running on http://127.0.0.1:33973"),
            Some(33973)
        );
        assert_eq!(super::parse_port("Press CTRL+C to quit"), None);
    }
}
