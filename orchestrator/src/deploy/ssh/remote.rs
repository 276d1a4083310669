//! The commands run on a host, as small POSIX shell scripts sent in one `exec` each: a probe
//! (architecture, user, home), then the install. Both are idempotent, so a deploy can be re-run.

use crate::deploy::shell_word as quote;
use crate::deploy::unit::{self, UnitIdentity};

/// Prints `uname -m`, `id -u` and `$HOME`, one per line; as root also creates the install dir,
/// where the upload goes.
pub(crate) fn probe_command(install_dir: &str) -> String {
    format!(
        "uname -m; id -u; printf '%s\\n' \"$HOME\"; [ \"$(id -u)\" != 0 ] || mkdir -p {}",
        quote(install_dir)
    )
}

/// What the probe learnt about the host.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Probe {
    /// `uname -m`.
    pub machine: String,
    /// Whether the SSH user is root (else privileged steps use `sudo -n`).
    pub root: bool,
    /// The user's home directory, where a non-root upload is staged.
    pub home: String,
}

impl Probe {
    /// Parses the probe's stdout.
    pub(crate) fn parse(stdout: &str) -> Option<Self> {
        let mut lines = stdout.lines().map(str::trim);
        let machine = lines.next().filter(|m| !m.is_empty())?.to_owned();
        let root = lines.next()? == "0";
        let home = lines.next().unwrap_or("").to_owned();
        Some(Self {
            machine,
            root,
            home,
        })
    }

    /// Where the binary is uploaded: straight into the install directory for root (the final
    /// rename is then on the same file system), else the user's home, copied over by `sudo`.
    pub(crate) fn staging_path(&self, install_dir: &str) -> String {
        if self.root {
            format!("{install_dir}/elb-agent.part")
        } else {
            format!("{}/.elb-agent.upload", self.home.trim_end_matches('/'))
        }
    }
}

/// One host's install: where, as whom, and what the agent is told.
#[derive(Debug)]
pub(crate) struct Install<'a> {
    /// Install directory, checked by [`unit::check_install_dir`].
    pub install_dir: &'a str,
    /// Where the binary was uploaded.
    pub staging: &'a str,
    /// Whether the user is root.
    pub root: bool,
    /// The agent's identity.
    pub identity: UnitIdentity<'a>,
}

impl Install<'_> {
    /// The command line for `exec`: the script under `sh -c`, through `sudo -n` unless root.
    pub(crate) fn command(&self) -> String {
        let sudo = if self.root { "" } else { "sudo -n " };
        format!("{sudo}sh -c {}", quote(&self.script()))
    }

    /// The install script. Binary: staged copy -> `elb-agent.part` -> `chmod 755` -> atomic
    /// `mv -f` (a running old agent keeps its inode). With systemd (`/run/systemd/system`): the
    /// unit through a `.part` file, `daemon-reload`, `enable`, `restart`. Without: the old agent
    /// (pid file, and only if that pid really runs our binary) gets SIGTERM, then SIGKILL after
    /// 15 s; the new one starts detached (`setsid`, its output appended to the log) with its
    /// pid and log files in the install dir.
    pub(crate) fn script(&self) -> String {
        let dir = self.install_dir;
        let id = &self.identity;
        let unit_text = unit::render(id, dir, false);
        let agent_args = id.shell_args(false);
        format!(
            r#"set -eu
dir={dir}
bin="$dir/elb-agent"
mkdir -p "$dir"
staging={staging}
if [ "$staging" != "$bin.part" ]; then cp "$staging" "$bin.part"; rm -f "$staging"; fi
chmod 755 "$bin.part"
mv -f "$bin.part" "$bin"
if [ -d /run/systemd/system ]; then
  cat > {unit_path}.part <<'ELB_UNIT_END'
{unit_text}ELB_UNIT_END
  mv -f {unit_path}.part {unit_path}
  systemctl daemon-reload
  systemctl enable elb-agent.service
  systemctl restart elb-agent.service
  echo "elb-agent (re)started by systemd"
  exit 0
fi
alive() {{
  [ -r "/proc/$1/stat" ] && read -r stat 2>/dev/null < "/proc/$1/stat" || return 1
  stat=${{stat##*) }}
  [ -n "$stat" ] && [ "${{stat%% *}}" != Z ]
}}
pidfile="$dir/elb-agent.pid"
old=
if [ -r "$pidfile" ]; then read -r old < "$pidfile" || true; fi
case "$old" in ''|*[!0-9]*) old= ;; esac
if [ -n "$old" ] && alive "$old" &&
   [ "$(tr '\000' '\n' < "/proc/$old/cmdline" 2>/dev/null | head -n 1)" = "$bin" ]; then
  kill -TERM "$old" 2>/dev/null || true
  i=0
  while alive "$old" && [ "$i" -lt 750 ]; do sleep 0.02; i=$((i + 1)); done
  if alive "$old"; then kill -KILL "$old" 2>/dev/null || true; sleep 0.2; fi
  echo "stopped the old elb-agent (pid $old)"
fi
setsid "$bin" {agent_args} >> "$dir/elb-agent.log" 2>&1 < /dev/null &
echo $! > "$pidfile"
echo "elb-agent started detached (pid $!), log $dir/elb-agent.log"
"#,
            staging = quote(self.staging),
            unit_path = unit::UNIT_PATH,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn install(root: bool) -> Install<'static> {
        Install {
            install_dir: "/opt/elb",
            staging: if root {
                "/opt/elb/elb-agent.part"
            } else {
                "/home/u/.elb-agent.upload"
            },
            root,
            identity: UnitIdentity {
                cluster: "c1",
                instance_id: "i-1",
                instance_type: "t3.micro",
                az: "ca-central-1a",
            },
        }
    }

    #[test]
    fn words_are_quoted_only_when_needed_and_quotes_cannot_escape() {
        assert_eq!(quote("/opt/elb"), "/opt/elb");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn root_runs_the_script_directly_and_others_through_sudo_n() {
        assert!(install(true).command().starts_with("sh -c 'set -eu\n"));
        assert!(install(false)
            .command()
            .starts_with("sudo -n sh -c 'set -eu\n"));
    }

    #[test]
    fn the_script_replaces_the_binary_atomically_and_picks_systemd_or_detached() {
        let script = install(false).script();
        for needle in [
            "cp \"$staging\" \"$bin.part\"",
            "chmod 755 \"$bin.part\"\nmv -f \"$bin.part\" \"$bin\"\n",
            "if [ -d /run/systemd/system ]; then",
            "ExecStart=/opt/elb/elb-agent --listen 0.0.0.0:8000 --cluster \"c1\"",
            "systemctl daemon-reload\n  systemctl enable elb-agent.service\n  systemctl restart \
             elb-agent.service\n",
            "setsid \"$bin\" --listen 0.0.0.0:8000 --cluster c1 --instance-id i-1 \
             --instance-type t3.micro --az ca-central-1a >> \"$dir/elb-agent.log\"",
        ] {
            assert!(script.contains(needle), "{needle}\n---\n{script}");
        }
    }

    #[test]
    fn the_scripts_are_valid_posix_shell_that_shellcheck_accepts() {
        for script in [install(true).script(), install(false).script()] {
            let mut child = std::process::Command::new("shellcheck")
                .args(["--shell=sh", "-"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("shellcheck is installed (scripts/test.sh installs it)");
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}\n---\n{script}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }

    #[test]
    fn the_probe_reports_arch_user_and_home() {
        let probe = Probe::parse("x86_64\n1000\n/home/u\n").unwrap();
        assert!(!probe.root);
        assert_eq!(probe.staging_path("/opt/elb"), "/home/u/.elb-agent.upload");
        let probe = Probe::parse("aarch64\n0\n/root\n").unwrap();
        assert!(probe.root && probe.machine == "aarch64");
        assert_eq!(probe.staging_path("/opt/elb"), "/opt/elb/elb-agent.part");
        assert_eq!(Probe::parse(""), None);
    }
}
