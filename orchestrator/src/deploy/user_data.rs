//! The cloud-init user-data script that installs elb-agent at first boot.
//!
//! `elb launch --deploy user-data` hands every instance the same script (`user-data.sh`): it
//! downloads the agent from `--agent-url`, checks the SHA-256, installs it under the install dir
//! and starts it (systemd unit, or a detached process with a pid file where systemd is absent),
//! with `--imds` so each agent learns its own instance id. Every value is substituted as one
//! single-quoted shell word, and the result must fit EC2's 16 KiB user-data limit.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::shell_word;
use super::unit::{self, UnitIdentity};
use crate::agent_binary::AgentBinary;

const TEMPLATE: &str = include_str!("user-data.sh");

/// EC2 refuses user data above 16 KiB, counted on the raw bytes before base64.
pub(crate) const MAX_USER_DATA: usize = 16 * 1024;

/// Why no user-data script can be made from the given input.
#[derive(Debug, thiserror::Error)]
pub enum UserDataError {
    /// `--agent-url` is neither https nor a loopback http URL.
    #[error("--agent-url `{url}` {problem}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong and how to fix it.
        problem: &'static str,
    },
    /// `--agent-sha256` is not 64 hex digits.
    #[error(
        "--agent-sha256 `{0}` is not a SHA-256: give the 64 hex digits `sha256sum elb-agent` \
         prints, or leave the flag out to use the checksum of the local agent binary"
    )]
    BadSha256(String),
    /// The user data is larger than EC2 accepts.
    #[error(
        "{what} is {size} bytes, and EC2 accepts at most {MAX_USER_DATA} bytes of user data \
         (before base64): make it smaller"
    )]
    TooLarge {
        /// What was measured.
        what: String,
        /// Its size in bytes.
        size: usize,
    },
}

/// Where instances download the agent from: `https://...`, or `http://` to a loopback address
/// (127.0.0.0/8, ::1), which only a test host on the same machine can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AgentUrl(String);

impl AgentUrl {
    /// Checks the scheme (and for `http://`, that the host is a loopback IP literal).
    pub(crate) fn parse(text: &str) -> Result<Self, UserDataError> {
        let bad = |problem| UserDataError::BadUrl {
            url: text.to_owned(),
            problem,
        };
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains spaces or control characters"));
        }
        let (https, rest) = match (text.strip_prefix("https://"), text.strip_prefix("http://")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => return Err(bad("must start with https://")),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default();
        if host.is_empty() || rest.len() == authority.len() {
            return Err(bad(
                "needs a host and a path, e.g. https://example.com/elb-agent",
            ));
        }
        if !https && !host_is_loopback(host) {
            return Err(bad(
                "is plain http: instances download the agent over https only (http:// is \
                 accepted for loopback addresses, 127.0.0.0/8 and [::1], for tests on this \
                 machine)",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The URL as given.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The protocols curl may use, for `--proto` and `--proto-redir`.
    fn curl_proto(&self) -> &'static str {
        if self.0.starts_with("https://") {
            "=https"
        } else {
            "=http"
        }
    }
}

/// `127.x.y.z[:port]` or `[::1][:port]`.
fn host_is_loopback(host_port: &str) -> bool {
    let ip = match host_port.strip_prefix('[') {
        Some(v6) => v6
            .split(']')
            .next()
            .and_then(|ip| ip.parse::<Ipv6Addr>().ok())
            .map(IpAddr::V6),
        None => host_port
            .split(':')
            .next()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
            .map(IpAddr::V4),
    };
    ip.is_some_and(|ip| ip.is_loopback())
}

/// A SHA-256 as 64 lowercase hex digits, the form `sha256sum -c` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sha256Hex(String);

impl Sha256Hex {
    /// Accepts 64 hex digits in either case.
    pub(crate) fn parse(text: &str) -> Result<Self, UserDataError> {
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(text.to_ascii_lowercase()))
        } else {
            Err(UserDataError::BadSha256(text.to_owned()))
        }
    }

    /// The SHA-256 of a local agent binary.
    pub(crate) fn of(binary: &AgentBinary) -> Self {
        Self(binary.sha256_hex())
    }

    /// The 64 lowercase hex digits.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks user data of `size` bytes against EC2's limit; `what` names it in the error.
pub(crate) fn check_size(what: &str, size: usize) -> Result<(), UserDataError> {
    if size <= MAX_USER_DATA {
        Ok(())
    } else {
        Err(UserDataError::TooLarge {
            what: what.to_owned(),
            size,
        })
    }
}

/// What the script installs, and what the agent is told.
#[derive(Debug)]
pub(crate) struct Script<'a> {
    /// Where the agent is downloaded from.
    pub url: &'a AgentUrl,
    /// Its expected SHA-256.
    pub sha256: &'a Sha256Hex,
    /// Directory of the binary (and, without systemd, of its pid and log files), checked by
    /// [`unit::check_install_dir`].
    pub install_dir: &'a str,
    /// What every instance's agent is told; the rest (instance id, AZ) it reads from instance
    /// metadata with `--imds`, since one script serves every instance of the launch.
    pub identity: UnitIdentity<'a>,
}

impl Script<'_> {
    /// The script, checked against EC2's size limit.
    pub(crate) fn render(&self) -> Result<String, UserDataError> {
        let unit = unit::render(&self.identity, self.install_dir, true);
        let script = fill(
            TEMPLATE,
            &[
                ("AGENT_URL", &shell_word(&self.url.0)),
                ("AGENT_SHA256", &shell_word(&self.sha256.0)),
                ("CURL_PROTO", &shell_word(self.url.curl_proto())),
                ("INSTALL_DIR", &shell_word(self.install_dir)),
                // Inside a quoted here-document: taken literally. `unit::render` drops control
                // characters from values, so no line of it can end the document early.
                ("UNIT", unit.trim_end()),
                ("UNIT_PATH", &shell_word(unit::UNIT_PATH)),
                ("AGENT_ARGS", &self.identity.shell_args(true)),
            ],
        );
        check_size("the user-data script", script.len())?;
        tracing::debug!(bytes = script.len(), "user-data script rendered");
        Ok(script)
    }
}

/// Replaces every `@NAME@` of `template` with its value in one pass, so a value that itself
/// contains `@NAME@` is never substituted again. Panics on a placeholder without a value: the
/// template and this module change together.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(start) = rest.find('@') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()))
            .unwrap_or(after.len());
        let (name, tail) = after.split_at(name_len);
        match (tail.strip_prefix('@'), name.is_empty()) {
            (Some(tail), false) => {
                let value = values
                    .iter()
                    .find(|(key, _)| *key == name)
                    .unwrap_or_else(|| panic!("user-data.sh placeholder @{name}@ has no value"));
                out.push_str(value.1);
                rest = tail;
            }
            _ => {
                out.push('@');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn script<'a>(url: &'a AgentUrl, sha256: &'a Sha256Hex, cluster: &'a str) -> Script<'a> {
        Script {
            url,
            sha256,
            install_dir: "/opt/elb",
            identity: UnitIdentity {
                cluster,
                instance_type: "t3.micro",
                ..UnitIdentity::default()
            },
        }
    }

    fn render(url: &str, cluster: &str) -> String {
        let (url, sha256) = (
            AgentUrl::parse(url).unwrap(),
            Sha256Hex::parse(SHA).unwrap(),
        );
        script(&url, &sha256, cluster).render().unwrap()
    }

    /// What `sh` makes of `words`, one per line.
    fn sh_words(words: &str) -> String {
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf '%s\\n' {words}")])
            .output()
            .expect("run sh");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// The value `sh` gives `$name` after the script's assignments (everything before `log()`).
    fn sh_value(script: &str, name: &str) -> String {
        let (assignments, _) = script.split_once("\nlog()").expect("a log() function");
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("{assignments}\nprintf '%s' \"${name}\"")])
            .output()
            .expect("run sh");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// The unit as the script's here-document writes it.
    fn unit_text(script: &str) -> String {
        let (_, rest) = script
            .split_once("<<'ELB_UNIT_END'\n")
            .expect("a here-document");
        let (unit, _) = rest.split_once("\nELB_UNIT_END\n").expect("its end");
        unit.to_owned()
    }

    #[test]
    fn hostile_values_stay_one_literal_shell_word() {
        for hostile in [
            "'; rm -rf / #",
            "$(reboot)",
            "`reboot`",
            "a\nb",
            "\\'\"$HOME",
            "@UNIT@",
            "",
        ] {
            assert_eq!(sh_words(&shell_word(hostile)), format!("{hostile}\n"));
        }
    }

    #[test]
    fn the_script_hands_sh_every_value_verbatim() {
        let url = "https://example.com/@AGENT_SHA256@/elb-agent?x='$(reboot)'&y=`id`";
        let script = render(url, "c'1 $(reboot)\nELB_UNIT_END\n");
        assert!(script.starts_with("#!/bin/sh\n"));
        assert_eq!(sh_value(&script, "agent_url"), url);
        assert_eq!(sh_value(&script, "agent_sha256"), SHA);
        assert_eq!(sh_value(&script, "install_dir"), "/opt/elb");
        assert_eq!(sh_value(&script, "unit_path"), unit::UNIT_PATH);
        let unit = unit_text(&script);
        assert!(
            unit.contains(
                "ExecStart=/opt/elb/elb-agent --listen 0.0.0.0:8000 --cluster \"c'1 \
                 $$(reboot)ELB_UNIT_END\""
            ) && unit.contains("--instance-type \"t3.micro\"")
                && unit.trim_end().ends_with("WantedBy=multi-user.target"),
            "{unit}"
        );
        assert!(
            script.contains(
                "setsid \"$binary\" --listen 0.0.0.0:8000 --cluster 'c'\\''1 \
                 $(reboot)\nELB_UNIT_END\n' --instance-id '' --instance-type t3.micro --az '' \
                 --imds >>"
            ),
            "{script}"
        );
    }

    #[test]
    fn every_agent_gets_imds_to_learn_its_instance_id() {
        let script = render("https://example.com/elb-agent", "c1");
        let unit = unit_text(&script);
        let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
        assert!(exec.ends_with(" --imds"), "{exec}");
    }

    #[test]
    fn curl_keeps_to_https_unless_the_url_is_loopback_http() {
        let https = render("https://example.com/elb-agent", "c1");
        assert_eq!(sh_value(&https, "curl_proto"), "=https");
        let http = render("http://127.0.0.1:8080/elb-agent", "c1");
        assert_eq!(sh_value(&http, "curl_proto"), "=http");
        assert!(https.contains("--proto \"$curl_proto\" --proto-redir \"$curl_proto\""));
    }

    #[test]
    fn plain_http_is_accepted_for_loopback_hosts_only() {
        for ok in [
            "https://example.com/elb-agent",
            "https://10.0.0.5:8443/a/elb-agent?v=1",
            "http://127.0.0.1:8080/elb-agent",
            "http://127.203.0.1/elb-agent",
            "http://[::1]:8080/elb-agent",
        ] {
            assert!(AgentUrl::parse(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("http://10.0.0.1/elb-agent", "https only"),
            ("http://127.0.0.1.evil.example/elb-agent", "https only"),
            ("http://localhost/elb-agent", "https only"),
            ("ftp://example.com/elb-agent", "must start with https://"),
            ("example.com/elb-agent", "must start with https://"),
            ("https://example.com", "needs a host and a path"),
            ("https:///elb-agent", "needs a host and a path"),
            ("https://example.com/a b", "spaces"),
        ] {
            let msg = AgentUrl::parse(bad).unwrap_err().to_string();
            assert!(msg.contains(bad) && msg.contains(why), "{bad}: {msg}");
        }
    }

    #[test]
    fn a_sha256_is_64_hex_digits_in_either_case() {
        assert_eq!(Sha256Hex::parse(&SHA.to_uppercase()).unwrap().as_str(), SHA);
        for bad in [&SHA[1..], &format!("{SHA}0"), &SHA.replace('a', "g"), ""] {
            let msg = Sha256Hex::parse(bad).unwrap_err().to_string();
            assert!(msg.contains("64 hex digits"), "{msg}");
        }
    }

    #[test]
    fn user_data_over_16_kib_is_refused_with_its_size_and_the_limit() {
        assert!(check_size("x", MAX_USER_DATA).is_ok());
        let msg = check_size("--user-data big.sh", MAX_USER_DATA + 1)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("big.sh") && msg.contains("16385") && msg.contains("16384"));

        let (url, sha256) = (
            AgentUrl::parse("https://example.com/elb-agent").unwrap(),
            Sha256Hex::parse(SHA).unwrap(),
        );
        let fits = script(&url, &sha256, "c1").render().unwrap();
        assert!(fits.len() < MAX_USER_DATA / 2, "{} bytes", fits.len());
        let long_path = format!("https://example.com/{}", "a".repeat(MAX_USER_DATA));
        let url = AgentUrl::parse(&long_path).unwrap();
        let msg = script(&url, &sha256, "c1")
            .render()
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("user-data script") && msg.contains("16384"),
            "{msg}"
        );
    }
}
