//! Inbound rules of the agents' security group, as plain data: validated CIDRs, the rules a launch
//! wants, and which of them a group still lacks.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use proto::AGENT_PORT;

/// Port the deploy step reaches over SSH.
pub const SSH_PORT: u16 = 22;

/// An IPv4 CIDR block in canonical form (host bits zero), e.g. `203.0.113.7/32`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

/// Why a CIDR was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid CIDR `{input}`: {reason}; write an IPv4 block such as 203.0.113.7/32 (one address) \
     or 0.0.0.0/0 (everyone)"
)]
pub struct CidrError {
    input: String,
    reason: &'static str,
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| CidrError {
            input: input.to_owned(),
            reason,
        };
        let (addr, prefix) = input
            .split_once('/')
            .ok_or_else(|| err("missing `/<prefix>`"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| err("not an IPv4 address"))?;
        let prefix: u8 = match prefix.parse() {
            Ok(p) if p <= 32 && !prefix.starts_with('+') => p,
            _ => return Err(err("the prefix must be a number from 0 to 32")),
        };
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        if u32::from(addr) & !mask != 0 {
            return Err(err(
                "host bits are set after the prefix (use the network address)",
            ));
        }
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    /// `0.0.0.0/0`: everyone.
    pub const WORLD: Self = Self {
        addr: Ipv4Addr::UNSPECIFIED,
        prefix: 0,
    };

    /// True for `0.0.0.0/0`.
    pub fn is_world(&self) -> bool {
        self.prefix == 0
    }
}

/// One inbound TCP rule: a port open to a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    /// TCP port (from and to are the same).
    pub port: u16,
    /// Source block, as AWS spells it.
    pub cidr: String,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tcp/{} from {}", self.port, self.cidr)
    }
}

/// The rules a launch asks for: the app port from `app`, SSH from each of `ssh`.
pub fn wanted_rules(app: &Cidr, ssh: &[Cidr]) -> Vec<Rule> {
    let mut rules = vec![Rule {
        port: AGENT_PORT,
        cidr: app.to_string(),
    }];
    rules.extend(ssh.iter().map(|c| Rule {
        port: SSH_PORT,
        cidr: c.to_string(),
    }));
    rules.sort();
    rules.dedup();
    rules
}

/// Splits `wanted` against what a group already has: the rules to authorize, and the existing
/// rules on our ports that this launch did not ask for (reported, never revoked: another
/// cluster of the same project may rely on them).
pub fn diff(wanted: &[Rule], existing: &[Rule]) -> (Vec<Rule>, Vec<Rule>) {
    let missing = wanted
        .iter()
        .filter(|r| !existing.contains(r))
        .cloned()
        .collect();
    let extra = existing
        .iter()
        .filter(|r| (r.port == AGENT_PORT || r.port == SSH_PORT) && !wanted.contains(r))
        .cloned()
        .collect();
    (missing, extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn valid_cidrs_round_trip() {
        for s in [
            "0.0.0.0/0",
            "203.0.113.7/32",
            "10.0.0.0/8",
            "192.168.1.0/24",
        ] {
            assert_eq!(cidr(s).to_string(), s);
        }
        assert!(cidr("0.0.0.0/0").is_world());
        assert!(!cidr("1.2.3.4/32").is_world());
    }

    #[test]
    fn malformed_cidrs_are_rejected_with_the_reason() {
        let cases = [
            ("1.2.3.4", "missing"),
            ("1.2.3/32", "IPv4"),
            ("1.2.3.4/33", "0 to 32"),
            ("1.2.3.4/+8", "0 to 32"),
            ("1.2.3.4/x", "0 to 32"),
            ("10.0.0.1/8", "host bits"),
            ("::1/128", "IPv4"),
        ];
        for (input, why) in cases {
            let err = input.parse::<Cidr>().unwrap_err().to_string();
            assert!(err.contains(why) && err.contains(input), "{input}: {err}");
        }
    }

    #[test]
    fn wanted_rules_cover_app_and_every_ssh_source_once() {
        let rules = wanted_rules(
            &cidr("0.0.0.0/0"),
            &[cidr("1.2.3.4/32"), cidr("1.2.3.4/32")],
        );
        assert_eq!(
            rules,
            vec![
                Rule {
                    port: SSH_PORT,
                    cidr: "1.2.3.4/32".into()
                },
                Rule {
                    port: AGENT_PORT,
                    cidr: "0.0.0.0/0".into()
                },
            ]
        );
        assert_eq!(wanted_rules(&cidr("0.0.0.0/0"), &[]).len(), 1);
    }

    #[test]
    fn diff_authorizes_only_missing_rules_and_reports_foreign_ones_on_our_ports() {
        let wanted = wanted_rules(&cidr("0.0.0.0/0"), &[cidr("1.2.3.4/32")]);
        let existing = vec![
            Rule {
                port: AGENT_PORT,
                cidr: "0.0.0.0/0".into(),
            },
            Rule {
                port: SSH_PORT,
                cidr: "9.9.9.9/32".into(),
            },
            Rule {
                port: 443,
                cidr: "0.0.0.0/0".into(),
            },
        ];
        let (missing, extra) = diff(&wanted, &existing);
        assert_eq!(
            missing,
            vec![Rule {
                port: SSH_PORT,
                cidr: "1.2.3.4/32".into()
            }]
        );
        assert_eq!(
            extra,
            vec![Rule {
                port: SSH_PORT,
                cidr: "9.9.9.9/32".into()
            }]
        );
    }

    #[test]
    fn an_up_to_date_group_needs_nothing() {
        let wanted = wanted_rules(&cidr("0.0.0.0/0"), &[]);
        let (missing, extra) = diff(&wanted, &wanted);
        assert!(missing.is_empty() && extra.is_empty());
    }
}
