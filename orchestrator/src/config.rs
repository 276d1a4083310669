//! Settings built once at the edge (flags, environment, AWS configuration) and passed down.

use crate::output::OutputFormat;
use crate::state::StateDir;
use crate::Error;

/// Which cloud the instances live in: `--local` or `ELB_PROVIDER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Amazon EC2 (the default).
    Ec2,
    /// `elb-agent` processes on this machine, no AWS account needed.
    Local,
}

/// The chosen provider with what it needs: EC2 carries its region and a client for the AWS APIs,
/// the local provider needs neither (no AWS configuration is loaded, no credentials are checked).
#[derive(Debug)]
pub enum Provider {
    /// Amazon EC2.
    Ec2 {
        /// The AWS region, validated.
        region: String,
        /// The AWS APIs' client, its credentials resolved.
        aws: crate::aws::Client,
    },
    /// Processes on this machine.
    Local,
}

/// What the user chose for every command (in `elb`, the global flags), before anything is
/// validated or loaded.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `Project` tag value.
    pub project: String,
    /// An explicit AWS region, else the AWS configuration's (else [`crate::regions::DEFAULT_REGION`]).
    pub region: Option<String>,
    /// An AWS profile from the shared config files.
    pub profile: Option<String>,
    /// The EC2 endpoint to call instead of AWS's.
    pub endpoint_url: Option<String>,
    /// How results are printed.
    pub output: OutputFormat,
    /// Where the instances live.
    pub provider: ProviderKind,
}

/// Everything a command needs to know about where and how to act.
#[derive(Debug)]
pub struct Settings {
    /// The `Project` tag value.
    pub project: String,
    /// The project's local state directory.
    pub state: StateDir,
    /// How results are printed.
    pub output: OutputFormat,
    /// The cloud and its configuration.
    pub provider: Provider,
    /// Where domain modules' lines for people go (stderr, or the log).
    pub(crate) notes: std::sync::Arc<dyn crate::notes::Notes>,
}

impl Settings {
    /// Hands `line` to the settings' notes.
    pub(crate) fn note(&self, line: impl AsRef<str>) {
        self.notes.note(line.as_ref());
    }
}

/// The project's state directory, without loading any AWS configuration: for commands that need
/// no cloud (`deploy --hosts`).
pub fn local_state(global: &Options) -> Result<StateDir, Error> {
    validate_name("--project", &global.project)?;
    Ok(StateDir::for_project(&global.project)?)
}

/// A span of time as flags take it: a number with a unit, `ms`, `s`, `m` or `h` (`10s`,
/// `500ms`, `5m`), or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: write e.g. 10s, 500ms, 5m"))?;
    let secs = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use ms, s, m or h (e.g. 10s)"
            ))
        }
    };
    std::time::Duration::try_from_secs_f64(secs).map_err(|_| format!("`{text}` is out of range"))
}

/// Accepts names used in tags, resource names and paths: 1 to 64 of `[A-Za-z0-9._-]`, not
/// starting with a dot or dash. `what` names the input in the error (a flag, a field).
pub fn validate_name(what: &str, value: &str) -> Result<(), Error> {
    let ok_chars = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let ok_start = !value.starts_with(['.', '-']);
    if (1..=64).contains(&value.len()) && ok_chars && ok_start {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid {what} `{value}`: use 1 to 64 letters, digits, `.`, `_` or `-`, not starting \
             with `.` or `-`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_safe_in_tags_and_paths_are_accepted() {
        for ok in ["elb-from-scratch", "cluster1", "a.b_c-d", "X"] {
            assert!(validate_name("--cluster", ok).is_ok(), "{ok}");
        }
        for bad in ["", "..", "-x", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(validate_name("--cluster", bad).is_err(), "{bad}");
        }
    }
}
