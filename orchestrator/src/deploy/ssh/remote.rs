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

    /// Where the file `name` is uploaded: straight into the install directory for root (the final
    /// rename is then on the same file system), else the user's home, copied over by `sudo`.
    pub(crate) fn staging_path(&self, install_dir: &str, name: &str) -> String {
        if self.root {
            format!("{install_dir}/{name}.part")
        } else {
            format!("{}/.{name}.upload", self.home.trim_end_matches('/'))
        }
    }
}

/// A program `elb` installs on hosts (`elb-agent`, `elb-balancer`): its name (the binary in the
/// install dir, `<name>.service`, `<name>.pid`, `<name>.log`), its unit, and its arguments
/// where there is no systemd.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    /// The binary's file name, also the unit's and the pid and log files' stem.
    pub name: &'static str,
    /// The systemd unit file's text.
    pub unit: String,
    /// The arguments of the unit's `ExecStart`, as POSIX shell words.
    pub args: String,
    /// A system group the unit names (`SupplementaryGroups`), created before it starts.
    pub group: Option<&'static str>,
    /// Shell run before it starts, with or without systemd (`$dir` is the install dir).
    pub setup: String,
}

impl Service {
    /// The agent of `identity`, installed in `install_dir`.
    pub(crate) fn agent(identity: &UnitIdentity<'_>, install_dir: &str) -> Self {
        Self {
            name: "elb-agent",
            unit: unit::render(identity, install_dir, false),
            args: identity.shell_args(false),
            group: None,
            setup: String::new(),
        }
    }

    /// The balancer, serving `<install_dir>/elb-balancer.toml`.
    pub(crate) fn balancer(install_dir: &str) -> Self {
        Self {
            name: unit::BALANCER,
            unit: unit::render_balancer(install_dir),
            args: quote(&unit::balancer_config_path(install_dir)),
            group: Some(unit::TLS_GROUP),
            setup: unit::balancer_logs_setup(install_dir),
        }
    }

    fn unit_path(&self) -> String {
        format!("{}/{}.service", unit::UNIT_DIR, self.name)
    }
}

/// A file uploaded to `staging`, to be installed as `<install dir>/<name>` with `mode`.
#[derive(Debug, Clone)]
pub(crate) struct Staged {
    /// Where the upload went (see [`Probe::staging_path`]).
    pub staging: String,
    /// Its file name in the install dir.
    pub name: String,
    /// Its octal mode, e.g. `755`.
    pub mode: &'static str,
    /// The group it belongs to, created when missing (a private key the service reads through
    /// its unit's `SupplementaryGroups`); `None` leaves the installing user's.
    pub group: Option<&'static str>,
}

/// One host's install: where, as whom, and what.
#[derive(Debug)]
pub(crate) struct Install<'a> {
    /// Install directory, checked by [`unit::check_install_dir`].
    pub install_dir: &'a str,
    /// The uploaded files: the service's binary first, then any others (the balancer's config).
    pub files: Vec<Staged>,
    /// Whether the user is root.
    pub root: bool,
    /// What is installed.
    pub service: Service,
}

/// `script` under `sh -c`, through `sudo -n` unless `root`.
fn privileged(root: bool, script: &str) -> String {
    let sudo = if root { "" } else { "sudo -n " };
    format!("{sudo}sh -c {}", quote(script))
}

/// Moves each staged file into place: staged copy -> `<name>.part` (made under `umask 077`, so
/// it is readable by no one else before its mode is set) -> group -> chmod -> atomic `mv -f` (a
/// running program keeps its old inode).
fn place(files: &[Staged]) -> String {
    let mut script = String::new();
    for f in files {
        if let Some(group) = f.group {
            script.push_str(&ensure_group(group));
        }
        script.push_str(&format!(
            "staging={staging}\ndest=\"$dir/{name}\"\nif [ \"$staging\" != \"$dest.part\" ]; then (umask \
             077; cp \"$staging\" \"$dest.part\"); rm -f \"$staging\"; fi\n{chgrp}chmod {mode} \
             \"$dest.part\"\nmv -f \"$dest.part\" \"$dest\"\n",
            staging = quote(&f.staging),
            name = quote(&f.name),
            chgrp = f
                .group
                .map(|g| format!("chgrp {} \"$dest.part\"\n", quote(g)))
                .unwrap_or_default(),
            mode = f.mode,
        ));
    }
    script
}

/// Creates the system group `group` unless it exists.
fn ensure_group(group: &str) -> String {
    let group = quote(group);
    format!("getent group {group} >/dev/null 2>&1 || groupadd --system {group}\n")
}

/// Shell function `alive PID`: whether PID runs and is no zombie; and `ours PID`: whether it
/// also runs `$bin` (a pid file may outlive its process and the pid be reused).
const PROCESS_CHECKS: &str = r#"alive() {
  [ -r "/proc/$1/stat" ] && read -r stat 2>/dev/null < "/proc/$1/stat" || return 1
  stat=${stat##*) }
  [ -n "$stat" ] && [ "${stat%% *}" != Z ]
}
ours() {
  alive "$1" && [ "$(tr '\000' '\n' < "/proc/$1/cmdline" 2>/dev/null | head -n 1)" = "$bin" ]
}
"#;

impl Install<'_> {
    /// The command line for `exec`: the script under `sh -c`, through `sudo -n` unless root.
    pub(crate) fn command(&self) -> String {
        privileged(self.root, &self.script())
    }

    /// The install script. Files: see [`place`]. With systemd (`/run/systemd/system`): the
    /// unit through a `.part` file, `daemon-reload`, `enable`, `restart`. Without: the old
    /// process (pid file, and only if that pid really runs our binary) gets SIGTERM, then
    /// SIGKILL after 15 s; the new one starts detached (`setsid`, its output appended to the
    /// log) with its pid and log files in the install dir.
    pub(crate) fn script(&self) -> String {
        let dir = self.install_dir;
        let name = self.service.name;
        format!(
            r#"set -eu
dir={dir}
bin="$dir/{name}"
mkdir -p "$dir"
{group}{files}{setup}if [ -d /run/systemd/system ]; then
  cat > {unit_path}.part <<'ELB_UNIT_END'
{unit_text}ELB_UNIT_END
  mv -f {unit_path}.part {unit_path}
  systemctl daemon-reload
  systemctl enable {name}.service
  systemctl restart {name}.service
  echo "{name} (re)started by systemd"
  exit 0
fi
{checks}pidfile="$dir/{name}.pid"
old=
if [ -r "$pidfile" ]; then read -r old < "$pidfile" || true; fi
case "$old" in ''|*[!0-9]*) old= ;; esac
if [ -n "$old" ] && ours "$old"; then
  kill -TERM "$old" 2>/dev/null || true
  i=0
  while alive "$old" && [ "$i" -lt 750 ]; do sleep 0.02; i=$((i + 1)); done
  if alive "$old"; then kill -KILL "$old" 2>/dev/null || true; sleep 0.2; fi
  echo "stopped the old {name} (pid $old)"
fi
setsid "$bin" {args} >> "$dir/{name}.log" 2>&1 < /dev/null &
echo $! > "$pidfile"
echo "{name} started detached (pid $!), log $dir/{name}.log"
"#,
            group = self.service.group.map(ensure_group).unwrap_or_default(),
            setup = self.service.setup,
            files = place(&self.files),
            unit_path = self.service.unit_path(),
            unit_text = self.service.unit,
            args = self.service.args,
            checks = PROCESS_CHECKS,
        )
    }
}

/// A running service's new config file: placed like an install's files, then the service
/// reloads it (`systemctl reload`, or SIGHUP to the detached process of the pid file).
#[derive(Debug)]
pub(crate) struct Reload<'a> {
    /// Install directory, checked by [`unit::check_install_dir`].
    pub install_dir: &'a str,
    /// The uploaded files, put in place in this order (the config last).
    pub files: Vec<Staged>,
    /// Whether the user is root.
    pub root: bool,
    /// The service's name.
    pub name: &'static str,
}

impl Reload<'_> {
    /// The command line for `exec`; it fails (exit 3) when no detached process runs.
    pub(crate) fn command(&self) -> String {
        let dir = self.install_dir;
        let name = self.name;
        let script = format!(
            r#"set -eu
dir={dir}
bin="$dir/{name}"
{files}if [ -d /run/systemd/system ]; then
  systemctl reload {name}.service
  exit 0
fi
{checks}pid=
if [ -r "$dir/{name}.pid" ]; then read -r pid < "$dir/{name}.pid" || true; fi
case "$pid" in ''|*[!0-9]*) pid= ;; esac
if [ -z "$pid" ] || ! ours "$pid"; then echo "{name} does not run" >&2; exit 3; fi
kill -HUP "$pid"
"#,
            files = place(&self.files),
            checks = PROCESS_CHECKS,
        );
        privileged(self.root, &script)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn install(root: bool) -> Install<'static> {
        let identity = UnitIdentity {
            cluster: "c1",
            instance_id: "i-1",
            instance_type: "t3.micro",
            az: "ca-central-1a",
        };
        Install {
            install_dir: "/opt/elb",
            files: vec![Staged {
                staging: if root {
                    "/opt/elb/elb-agent.part".into()
                } else {
                    "/home/u/.elb-agent.upload".into()
                },
                name: "elb-agent".into(),
                mode: "755",
                group: None,
            }],
            root,
            service: Service::agent(&identity, "/opt/elb"),
        }
    }

    fn balancer(root: bool) -> (Install<'static>, Reload<'static>) {
        let file = |name: &str| Staged {
            staging: format!("/home/u/.{name}.upload"),
            name: name.into(),
            mode: "644",
            group: None,
        };
        let install = Install {
            install_dir: "/opt/elb",
            files: vec![file("elb-balancer"), file("elb-balancer.toml")],
            root,
            service: Service::balancer("/opt/elb"),
        };
        let reload = Reload {
            install_dir: "/opt/elb",
            files: vec![file("elb-balancer.toml")],
            root,
            name: "elb-balancer",
        };
        (install, reload)
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
            "staging=/home/u/.elb-agent.upload\ndest=\"$dir/elb-agent\"\n",
            "cp \"$staging\" \"$dest.part\"",
            "chmod 755 \"$dest.part\"\nmv -f \"$dest.part\" \"$dest\"\n",
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
        let (balancer, reload) = balancer(false);
        let reload = reload.command();
        let reload = reload
            .strip_prefix("sudo -n sh -c '")
            .and_then(|s| s.strip_suffix('\''))
            .expect("a quoted script")
            .replace("'\\''", "'");
        for script in [
            install(true).script(),
            install(false).script(),
            balancer.script(),
            reload,
        ] {
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
    fn the_balancer_gets_its_binary_and_config_and_reloads_with_sighup_or_systemctl() {
        let (install, reload) = balancer(true);
        let script = install.script();
        for needle in [
            "dest=\"$dir/elb-balancer\"\n",
            "dest=\"$dir/elb-balancer.toml\"\n",
            "systemctl restart elb-balancer.service\n",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "setsid \"$bin\" /opt/elb/elb-balancer.toml >> \"$dir/elb-balancer.log\"",
        ] {
            assert!(script.contains(needle), "{needle}\n---\n{script}");
        }
        let reload = reload.command();
        for needle in [
            "systemctl reload elb-balancer.service",
            "kill -HUP \"$pid\"",
            "exit 3",
        ] {
            assert!(reload.contains(needle), "{needle}\n---\n{reload}");
        }
        assert!(reload.starts_with("sh -c "), "{reload}");
    }

    #[test]
    fn the_probe_reports_arch_user_and_home() {
        let probe = Probe::parse("x86_64\n1000\n/home/u\n").unwrap();
        assert!(!probe.root);
        assert_eq!(
            probe.staging_path("/opt/elb", "elb-agent"),
            "/home/u/.elb-agent.upload"
        );
        let probe = Probe::parse("aarch64\n0\n/root\n").unwrap();
        assert!(probe.root && probe.machine == "aarch64");
        assert_eq!(
            probe.staging_path("/opt/elb", "elb-balancer"),
            "/opt/elb/elb-balancer.part"
        );
        assert_eq!(Probe::parse(""), None);
    }
}
