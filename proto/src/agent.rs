//! The agent's answers on `/`, `/cluster1`, `/cluster2`, `/healthz` and its error bodies.

use serde::{Deserialize, Serialize};

use crate::StatsSnapshot;

/// Answer of `GET /`, `GET /cluster1` and `GET /cluster2`.
///
/// `message` and `instance_id` keep the seed FastAPI app's contract: `instance_id` carries the
/// *hostname*, as the seed did. The EC2 instance id, when known, is in `ec2_instance_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceAnswer {
    /// Version of this document ([`crate::SCHEMA`]).
    pub schema: u32,
    /// The seed's message, e.g. `Instance is responding`.
    pub message: String,
    /// The hostname, under the seed's (misleading) key name.
    pub instance_id: String,
    /// The hostname.
    pub hostname: String,
    /// The cluster this agent was deployed into (`--cluster`), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The EC2 instance id (`i-...`), when known from flags or instance metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec2_instance_id: Option<String>,
    /// The EC2 instance type (`t3.micro`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec2_instance_type: Option<String>,
    /// The availability zone (`ca-central-1a`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// The agent's latest stats snapshot (at most one sample interval old).
    pub stats: StatsSnapshot,
}

/// Answer of `GET /healthz`: a constant, cheap liveness document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok` when the agent answers at all.
    pub status: String,
}

/// Body of every error answer (404, 405, 413, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Version of this document ([`crate::SCHEMA`]).
    pub schema: u32,
    /// The HTTP status code, repeated for clients that only keep the body.
    pub status: u16,
    /// A short human-readable reason, e.g. `not found`.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SCHEMA;

    fn answer() -> InstanceAnswer {
        InstanceAnswer {
            schema: SCHEMA,
            message: "Instance is responding".into(),
            instance_id: "ip-10-0-0-1".into(),
            hostname: "ip-10-0-0-1".into(),
            cluster: Some("cluster1".into()),
            ec2_instance_id: Some("i-0123456789abcdef0".into()),
            ec2_instance_type: Some("t3.small".into()),
            availability_zone: Some("ca-central-1a".into()),
            stats: crate::stats::tests::snapshot(),
        }
    }

    #[test]
    fn instance_answer_round_trips() {
        let a = answer();
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<InstanceAnswer>(&json).unwrap(), a);
    }

    #[test]
    fn instance_answer_keeps_the_seed_field_names() {
        let v = serde_json::to_value(answer()).unwrap();
        assert_eq!(v["message"], "Instance is responding");
        assert_eq!(v["instance_id"], "ip-10-0-0-1");
        for key in [
            "schema",
            "hostname",
            "cluster",
            "ec2_instance_id",
            "ec2_instance_type",
            "availability_zone",
            "stats",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
    }

    #[test]
    fn unknown_instance_facts_are_left_out_and_read_back_as_none() {
        let a = InstanceAnswer {
            cluster: None,
            ec2_instance_id: None,
            ec2_instance_type: None,
            availability_zone: None,
            ..answer()
        };
        let v = serde_json::to_value(&a).unwrap();
        assert!(v.get("ec2_instance_id").is_none());
        assert!(v.get("cluster").is_none());
        assert_eq!(serde_json::from_value::<InstanceAnswer>(v).unwrap(), a);
    }

    #[test]
    fn readers_ignore_fields_added_later() {
        let mut v = serde_json::to_value(answer()).unwrap();
        v["added_in_schema_2"] = serde_json::json!({"x": 1});
        assert_eq!(
            serde_json::from_value::<InstanceAnswer>(v).unwrap(),
            answer()
        );
    }

    #[test]
    fn error_body_and_health_field_names() {
        let e = ErrorBody {
            schema: SCHEMA,
            status: 404,
            error: "not found".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"schema":1,"status":404,"error":"not found"}"#
        );
        let h = Health {
            status: "ok".into(),
        };
        assert_eq!(serde_json::to_string(&h).unwrap(), r#"{"status":"ok"}"#);
    }
}
