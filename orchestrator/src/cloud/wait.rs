//! Waiting for instances to reach a state: one DescribeInstances call per poll for all of them,
//! a short interval and a deadline (the SDK's waiters poll every 15 s or more: too slow for a CLI).

use std::time::Duration;

use tokio::time::Instant;

use super::ec2::Ec2;
use super::errors::CloudError;
use super::Instance;

/// The state to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// After a launch.
    Running,
    /// After the kill switch.
    Terminated,
}

impl Target {
    /// The EC2 state name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Terminated => "terminated",
        }
    }
}

/// How often to poll, and until when.
#[derive(Debug, Clone, Copy)]
pub struct Poll {
    /// Pause between two polls.
    pub interval: Duration,
    /// Give up after this long.
    pub timeout: Duration,
}

/// Where a wait stands after one poll.
#[derive(Debug, PartialEq, Eq)]
struct Tally {
    ready: usize,
    waiting: Vec<String>,
    /// An instance that can no longer reach the target, with its state.
    lost: Option<(String, String)>,
}

fn tally(ids: &[String], seen: &[Instance], target: Target) -> Tally {
    let state_of = |id: &str| seen.iter().find(|i| i.id == id).map(|i| i.state.as_str());
    let waiting: Vec<String> = ids
        .iter()
        .filter(|id| state_of(id) != Some(target.as_str()))
        .cloned()
        .collect();
    let lost = match target {
        Target::Running => seen
            .iter()
            .find(|i| {
                matches!(
                    i.state.as_str(),
                    "shutting-down" | "terminated" | "stopping" | "stopped"
                )
            })
            .map(|i| (i.id.clone(), i.state.clone())),
        Target::Terminated => None,
    };
    Tally {
        ready: ids.len() - waiting.len(),
        waiting,
        lost,
    }
}

/// Polls `ids` until all are in `target` state and returns them, calling `on_poll(ready, total)`
/// after every poll. Ids that EC2 does not know yet (eventual consistency) count as not ready.
pub async fn wait_until(
    ec2: &Ec2,
    ids: &[String],
    target: Target,
    poll: Poll,
    mut on_poll: impl FnMut(usize, usize),
) -> Result<Vec<Instance>, CloudError> {
    let deadline = Instant::now() + poll.timeout;
    let mut last = Tally {
        ready: 0,
        waiting: ids.to_vec(),
        lost: None,
    };
    loop {
        match ec2.describe(ids).await? {
            Some(seen) => {
                last = tally(ids, &seen, target);
                if let Some((id, state)) = last.lost.take() {
                    return Err(CloudError::InstanceLost { id, state });
                }
                on_poll(last.ready, ids.len());
                if last.waiting.is_empty() {
                    return Ok(seen);
                }
            }
            None => {
                tracing::debug!("EC2 does not list every instance yet");
                on_poll(last.ready, ids.len());
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(CloudError::WaitTimeout {
                target: target.as_str(),
                ready: last.ready,
                total: ids.len(),
                waiting: last.waiting,
                secs: poll.timeout.as_secs(),
            });
        }
        tokio::time::sleep(poll.interval.min(deadline - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, state: &str) -> Instance {
        Instance {
            id: id.into(),
            name: "p-c".into(),
            cluster: "c".into(),
            instance_type: "t3.micro".into(),
            az: "ca-central-1a".into(),
            public_ip: None,
            private_ip: None,
            state: state.into(),
            role: None,
            launched_at_unix_ms: None,
        }
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn instances_not_listed_yet_count_as_waiting() {
        let t = tally(
            &ids(&["i-1", "i-2", "i-3"]),
            &[instance("i-1", "running")],
            Target::Running,
        );
        assert_eq!(
            t,
            Tally {
                ready: 1,
                waiting: ids(&["i-2", "i-3"]),
                lost: None
            }
        );
    }

    #[test]
    fn a_terminated_instance_is_lost_for_a_launch_but_done_for_a_kill() {
        let seen = [instance("i-1", "running"), instance("i-2", "terminated")];
        let launch = tally(&ids(&["i-1", "i-2"]), &seen, Target::Running);
        assert_eq!(launch.lost, Some(("i-2".into(), "terminated".into())));
        let kill = tally(&ids(&["i-1", "i-2"]), &seen, Target::Terminated);
        assert_eq!(
            kill,
            Tally {
                ready: 1,
                waiting: ids(&["i-1"]),
                lost: None
            }
        );
    }
}
