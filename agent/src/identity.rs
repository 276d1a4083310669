//! Who this agent is: fixed at start from flags, the hostname and, optionally, instance metadata.

use crate::imds::InstanceFacts;

/// The facts about this instance that the agent reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Identity {
    pub hostname: String,
    pub cluster: Option<String>,
    pub instance_id: Option<String>,
    pub instance_type: Option<String>,
    pub availability_zone: Option<String>,
}

impl Identity {
    /// Fills what the flags left unknown from instance metadata: flags given explicitly win.
    pub(crate) fn completed_with(self, facts: InstanceFacts) -> Self {
        Self {
            instance_id: self.instance_id.or(Some(facts.instance_id)),
            instance_type: self.instance_type.or(Some(facts.instance_type)),
            availability_zone: self.availability_zone.or(Some(facts.availability_zone)),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_instance_metadata() {
        let from_flags = Identity {
            hostname: "h".into(),
            cluster: Some("c".into()),
            instance_type: Some("t3.small".into()),
            ..Identity::default()
        };
        let facts = InstanceFacts {
            instance_id: "i-1".into(),
            instance_type: "t3.micro".into(),
            availability_zone: "ca-central-1a".into(),
        };
        let id = from_flags.completed_with(facts);
        assert_eq!(id.instance_id.as_deref(), Some("i-1"));
        assert_eq!(id.instance_type.as_deref(), Some("t3.small"));
        assert_eq!(id.availability_zone.as_deref(), Some("ca-central-1a"));
        assert_eq!(id.cluster.as_deref(), Some("c"));
    }
}
