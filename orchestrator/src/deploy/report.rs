//! What a deploy did on each host, and the result table (or JSON, CSV) printed at the end.

use std::time::Duration;

use serde::Serialize;

use super::DeployError;
use crate::output::OutputFormat;

/// Why one host failed, as the result column names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FailureKind {
    /// No SSH connection before the deadline (down, cut off, firewalled, no sshd).
    Unreachable,
    /// The server refused the user and key.
    AuthRefused,
    /// The host presented another key than the one recorded in known_hosts.
    HostKeyChanged,
    /// The host key could not be checked (a host certificate, an unreadable known_hosts).
    HostKeyUnverified,
    /// No agent build for the host's architecture (or it could not be read).
    NoAgentBinary,
    /// The SFTP upload failed.
    UploadFailed,
    /// The install commands failed (their stderr is in the error).
    InstallFailed,
    /// The agent did not answer `GET /healthz` with 200 in time.
    NotHealthy,
}

impl FailureKind {
    /// The name shown in the result column.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Unreachable => "unreachable",
            Self::AuthRefused => "auth refused",
            Self::HostKeyChanged => "host key changed",
            Self::HostKeyUnverified => "host key unverified",
            Self::NoAgentBinary => "no agent binary",
            Self::UploadFailed => "upload failed",
            Self::InstallFailed => "install failed",
            Self::NotHealthy => "agent not healthy",
        }
    }
}

/// One host's failure: its kind and what happened, with the fix when there is one.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// The kind.
    pub kind: FailureKind,
    /// The details.
    pub message: String,
}

impl Failure {
    /// A failure of `kind` described by `message`.
    pub(crate) fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// The outcome for one host.
#[derive(Debug, Clone)]
pub(crate) struct HostResult {
    /// The host as shown to the user (address, or instance id and address).
    pub host: String,
    /// Success, or why not.
    pub outcome: Result<(), Failure>,
    /// Time spent on this host.
    pub elapsed: Duration,
}

/// Every host's outcome, in the order the hosts were given.
#[derive(Debug, Clone)]
pub(crate) struct DeployReport {
    /// One entry per host.
    pub hosts: Vec<HostResult>,
    /// Wall time of the whole deploy.
    pub elapsed: Duration,
}

/// A row of the JSON and CSV forms.
#[derive(Serialize)]
struct Row<'a> {
    host: &'a str,
    result: &'a str,
    seconds: f64,
    error: Option<&'a str>,
}

impl DeployReport {
    fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.hosts.iter().map(|h| Row {
            host: &h.host,
            result: h
                .outcome
                .as_ref()
                .map_or_else(|f| f.kind.as_str(), |()| "ok"),
            seconds: (h.elapsed.as_secs_f64() * 100.0).round() / 100.0,
            error: h.outcome.as_ref().err().map(|f| f.message.as_str()),
        })
    }

    /// Hosts that failed.
    pub(crate) fn failed(&self) -> usize {
        self.hosts.iter().filter(|h| h.outcome.is_err()).count()
    }

    /// The report in `format`: a table (host, result, time, error), a JSON array of
    /// `{host, result, seconds, error}`, or CSV with those columns.
    pub(crate) fn render(&self, format: OutputFormat) -> String {
        match format {
            OutputFormat::Table => {
                let mut table = crate::output::table(["host", "result", "time", "error"]);
                for row in self.rows() {
                    table.add_row([
                        row.host.to_owned(),
                        row.result.to_owned(),
                        format!("{:.1}s", row.seconds),
                        row.error.unwrap_or("").to_owned(),
                    ]);
                }
                table.to_string()
            }
            OutputFormat::Json => {
                let rows: Vec<Row<'_>> = self.rows().collect();
                serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".to_owned())
            }
            OutputFormat::Csv => {
                let quote = |f: &str| format!("\"{}\"", f.replace('"', "\"\""));
                let mut out = String::from("host,result,seconds,error");
                for row in self.rows() {
                    out.push_str(&format!(
                        "\n{},{},{},{}",
                        quote(row.host),
                        row.result,
                        row.seconds,
                        quote(row.error.unwrap_or(""))
                    ));
                }
                out
            }
        }
    }

    /// `Ok` when every host succeeded, else the error that makes `elb` exit 1.
    pub(crate) fn check(&self) -> Result<(), DeployError> {
        match self.failed() {
            0 => Ok(()),
            failed => Err(DeployError::HostsFailed {
                failed,
                total: self.hosts.len(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> DeployReport {
        DeployReport {
            hosts: vec![
                HostResult {
                    host: "10.0.0.1".into(),
                    outcome: Ok(()),
                    elapsed: Duration::from_millis(1234),
                },
                HostResult {
                    host: "10.0.0.2".into(),
                    outcome: Err(Failure::new(FailureKind::Unreachable, "timed out, \"x\"")),
                    elapsed: Duration::from_secs(3),
                },
            ],
            elapsed: Duration::from_secs(3),
        }
    }

    #[test]
    fn the_table_names_each_host_its_result_time_and_error() {
        let text = report().render(OutputFormat::Table);
        for needle in ["host", "10.0.0.1", "ok", "1.2s", "unreachable", "timed out"] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
    }

    #[test]
    fn json_and_csv_carry_the_same_rows() {
        let json: serde_json::Value =
            serde_json::from_str(&report().render(OutputFormat::Json)).unwrap();
        assert_eq!(json[0]["result"], "ok");
        assert!(json[0]["error"].is_null());
        assert_eq!(json[1]["result"], "unreachable");
        let csv = report().render(OutputFormat::Csv);
        assert_eq!(
            csv.lines().collect::<Vec<_>>(),
            [
                "host,result,seconds,error",
                "\"10.0.0.1\",ok,1.23,\"\"",
                "\"10.0.0.2\",unreachable,3,\"timed out, \"\"x\"\"\""
            ]
        );
    }

    #[test]
    fn any_failed_host_fails_the_command() {
        assert!(matches!(
            report().check(),
            Err(DeployError::HostsFailed {
                failed: 1,
                total: 2
            })
        ));
    }
}
