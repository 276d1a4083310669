//! The systemd units of elb-agent (`agent/elb-agent.service`, rendered for one instance) and of
//! elb-balancer (`balancer/elb-balancer.service`).

use super::shell_word;
use proto::AGENT_PORT;

/// The unit template; its header comment documents the placeholders.
const TEMPLATE: &str = include_str!("../../../agent/elb-agent.service");

/// The balancer's unit template; its header comment documents the placeholder.
const BALANCER_TEMPLATE: &str = include_str!("../../../balancer/elb-balancer.service");

/// Where units are installed on a host.
pub(crate) const UNIT_DIR: &str = "/etc/systemd/system";

/// Where the agent's unit is installed on a host.
pub(crate) const UNIT_PATH: &str = "/etc/systemd/system/elb-agent.service";

/// The balancer's binary and unit name.
pub(crate) const BALANCER: &str = "elb-balancer";

/// The default `--install-dir`: the binary, and without systemd its pid and log files.
pub(crate) const DEFAULT_INSTALL_DIR: &str = "/opt/elb";

/// What the agent is told about the instance it runs on. An empty field is "not known": the
/// agent treats it as not given (and, with `--imds`, asks instance metadata).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UnitIdentity<'a> {
    /// The cluster name.
    pub cluster: &'a str,
    /// EC2 instance id.
    pub instance_id: &'a str,
    /// EC2 instance type.
    pub instance_type: &'a str,
    /// Availability zone.
    pub az: &'a str,
}

impl UnitIdentity<'_> {
    /// The agent's arguments for this identity, those of the unit's `ExecStart`, as POSIX shell
    /// words: how the agent starts where there is no systemd.
    pub(crate) fn shell_args(&self, imds: bool) -> String {
        let listen = format!("0.0.0.0:{AGENT_PORT}");
        let mut args = vec![
            "--listen",
            &listen,
            "--cluster",
            self.cluster,
            "--instance-id",
            self.instance_id,
            "--instance-type",
            self.instance_type,
            "--az",
            self.az,
        ];
        if imds {
            args.push("--imds");
        }
        let words: Vec<String> = args.into_iter().map(shell_word).collect();
        words.join(" ")
    }
}

/// The unit file for one instance, with the binary at `<install_dir>/elb-agent`. With `imds`, the
/// agent also reads what it is not told from instance metadata. `install_dir` must have passed
/// [`check_install_dir`].
pub(crate) fn render(id: &UnitIdentity<'_>, install_dir: &str, imds: bool) -> String {
    TEMPLATE
        .replace("@INSTALL_DIR@", install_dir)
        .replace("@CLUSTER@", &systemd_quoted(id.cluster))
        .replace("@INSTANCE_ID@", &systemd_quoted(id.instance_id))
        .replace("@INSTANCE_TYPE@", &systemd_quoted(id.instance_type))
        .replace("@AZ@", &systemd_quoted(id.az))
        .replace("@IMDS@", if imds { " --imds" } else { "" })
}

/// The system group of the balancer's private keys on its host: mode 640 files of this group,
/// which the balancer's unit takes as a supplementary group (its `DynamicUser` could not read a
/// root-owned key otherwise).
pub(crate) const TLS_GROUP: &str = "elb-tls";

/// The balancer's unit, with the binary and its config in `install_dir` (checked by
/// [`check_install_dir`]).
pub(crate) fn render_balancer(install_dir: &str) -> String {
    BALANCER_TEMPLATE.replace("@INSTALL_DIR@", install_dir)
}

/// The balancer's logs directory on its host (the unit's `LogsDirectory`), where its access
/// log goes.
pub(crate) const BALANCER_LOG_DIR: &str = "/var/log/elb-balancer";

/// Shell that makes the balancer's logs directory (systemd's `LogsDirectory` gives it to the
/// dynamic user at start; without systemd the balancer runs as the installing user) and, where
/// logrotate is, rotates its `*.log` files daily, keeping 7, and tells the balancer to reopen
/// them (SIGUSR1: to the unit, or to the pid in `install_dir`'s pid file).
pub(crate) fn balancer_logs_setup(install_dir: &str) -> String {
    format!(
        r#"mkdir -p {BALANCER_LOG_DIR}
if [ -d /etc/logrotate.d ]; then
  cat > /etc/logrotate.d/{BALANCER}.part <<'ELB_LOGROTATE_END'
{BALANCER_LOG_DIR}/*.log {{
  daily
  rotate 7
  compress
  delaycompress
  missingok
  notifempty
  postrotate
    systemctl kill -s USR1 {BALANCER}.service 2>/dev/null || kill -USR1 "$(cat {install_dir}/{BALANCER}.pid 2>/dev/null)" 2>/dev/null || true
  endscript
}}
ELB_LOGROTATE_END
  mv -f /etc/logrotate.d/{BALANCER}.part /etc/logrotate.d/{BALANCER}
fi
"#
    )
}

/// Where the balancer's config lives in `install_dir`.
pub(crate) fn balancer_config_path(install_dir: &str) -> String {
    format!("{install_dir}/{BALANCER}.toml")
}

/// Accepts an absolute path of `[A-Za-z0-9._/-]` without `..`: it goes unquoted into the unit's
/// `ExecStart` and into shell commands, so nothing in it may need quoting.
pub(crate) fn check_install_dir(dir: &str) -> Result<(), String> {
    let plain = dir
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
    if dir.starts_with('/') && dir.len() > 1 && plain && !dir.split('/').any(|p| p == "..") {
        Ok(())
    } else {
        Err(format!(
            "invalid --install-dir `{dir}`: use an absolute path of letters, digits, `.`, `_`, \
             `-` and `/` (e.g. {DEFAULT_INSTALL_DIR})"
        ))
    }
}

/// The inside of a double-quoted systemd argument: `\` and `"` escaped, `%` (specifiers) and `$`
/// (variables) doubled, control characters dropped.
fn systemd_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars().filter(|c| !c.is_control()) {
        match c {
            '\\' | '"' => {
                out.push('\\');
                out.push(c);
            }
            '%' | '$' => {
                out.push(c);
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec_start(unit: &str) -> &str {
        unit.lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .expect("an ExecStart line")
    }

    #[test]
    fn every_placeholder_is_filled_and_the_binary_sits_in_the_install_dir() {
        let id = UnitIdentity {
            cluster: "cluster1",
            instance_id: "i-0123",
            instance_type: "t3.micro",
            az: "ca-central-1a",
        };
        let unit = render(&id, "/opt/elb", true);
        assert!(!unit.contains('@'), "{unit}");
        assert_eq!(
            exec_start(&unit),
            "/opt/elb/elb-agent --listen 0.0.0.0:8000 --cluster \"cluster1\" --instance-id \
             \"i-0123\" --instance-type \"t3.micro\" --az \"ca-central-1a\" --imds"
        );
    }

    #[test]
    fn unknown_fields_stay_empty_arguments_and_imds_is_optional() {
        let unit = render(&UnitIdentity::default(), "/srv/a", false);
        assert_eq!(
            exec_start(&unit),
            "/srv/a/elb-agent --listen 0.0.0.0:8000 --cluster \"\" --instance-id \"\" \
             --instance-type \"\" --az \"\""
        );
    }

    #[test]
    fn without_systemd_the_agent_gets_the_unit_s_arguments_as_shell_words() {
        let id = UnitIdentity {
            cluster: "it's",
            instance_id: "",
            instance_type: "t3.micro",
            az: "ca-central-1a",
        };
        assert_eq!(
            id.shell_args(true),
            "--listen 0.0.0.0:8000 --cluster 'it'\\''s' --instance-id '' --instance-type \
             t3.micro --az ca-central-1a --imds"
        );
    }

    #[test]
    fn the_balancer_unit_reloads_with_sighup_and_serves_its_config() {
        let unit = render_balancer("/opt/elb");
        assert!(!unit.contains('@'), "{unit}");
        assert_eq!(
            exec_start(&unit),
            "/opt/elb/elb-balancer /opt/elb/elb-balancer.toml"
        );
        assert!(unit
            .lines()
            .any(|l| l == "ExecReload=/bin/kill -HUP $MAINPID"));
    }

    #[test]
    fn values_cannot_break_out_of_their_argument() {
        assert_eq!(systemd_quoted("a\"b\\c%d$e\nf"), "a\\\"b\\\\c%%d$$ef");
    }

    #[test]
    fn install_dirs_must_be_plain_absolute_paths() {
        assert!(check_install_dir("/opt/elb").is_ok());
        assert!(check_install_dir("/tmp/x-1/y_2.z").is_ok());
        for bad in [
            "",
            "/",
            "opt/elb",
            "/opt/e lb",
            "/opt/$x",
            "/opt/../etc",
            "/a'b",
        ] {
            assert!(check_install_dir(bad).is_err(), "{bad}");
        }
    }
}
