//! The kill switch's plan: what will be deleted, found by the exact `Project` tag. The same value
//! is printed by `--dry-run`, shown before the confirmation, and executed.

use serde::{Serialize, Serializer};
use tokio::time::Instant;

use crate::cloud::ec2::Ec2;
use crate::cloud::errors::CloudError;
use crate::cloud::wait::{self, Poll, Target};
use crate::cloud::{sort_instances, Instance};
use crate::progress::Progress;

/// A security group to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// `sg-...`.
    pub id: String,
    /// Its name, for people.
    pub name: String,
}

/// Everything the kill switch will delete, in order.
#[derive(Debug, Serialize)]
pub struct KillPlan {
    /// The region searched.
    pub region: String,
    /// Instances to terminate (serialized as ids).
    #[serde(serialize_with = "instance_ids")]
    pub instances: Vec<Instance>,
    /// Security groups to delete after the instances are gone (serialized as ids).
    #[serde(serialize_with = "group_ids")]
    pub security_groups: Vec<Group>,
    /// Key pair names to delete.
    pub key_pairs: Vec<String>,
    /// True when the plan is only printed.
    pub dry_run: bool,
}

fn instance_ids<S: Serializer>(instances: &[Instance], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(instances.iter().map(|i| &i.id))
}

fn group_ids<S: Serializer>(groups: &[Group], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(groups.iter().map(|g| &g.id))
}

impl KillPlan {
    /// Finds the project's live instances and, unless `keep_network`, its security groups and
    /// key pairs.
    pub async fn discover(
        ec2: &Ec2,
        region: &str,
        keep_network: bool,
        dry_run: bool,
    ) -> Result<Self, CloudError> {
        let mut instances = ec2.project_instances(None, false).await?;
        sort_instances(&mut instances);
        let (security_groups, key_pairs) = if keep_network {
            (Vec::new(), Vec::new())
        } else {
            let groups = ec2.project_security_groups().await?;
            let groups = groups
                .into_iter()
                .map(|(id, name)| Group { id, name })
                .collect();
            (groups, ec2.project_key_pairs().await?)
        };
        Ok(Self {
            region: region.to_owned(),
            instances,
            security_groups,
            key_pairs,
            dry_run,
        })
    }

    /// Whether there is nothing to delete.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty() && self.security_groups.is_empty() && self.key_pairs.is_empty()
    }

    /// The plan for people.
    pub fn render_text(&self, project: &str) -> String {
        if self.is_empty() {
            return format!("nothing to delete for project {project} in {}", self.region);
        }
        let mut out = format!("kill plan for project {project} in {}:\n", self.region);
        if !self.instances.is_empty() {
            out.push_str(&format!(
                "  terminate {} instance(s):\n",
                self.instances.len()
            ));
            for i in &self.instances {
                out.push_str(&format!(
                    "    {}  {}  {}  {}\n",
                    i.id, i.name, i.instance_type, i.state
                ));
            }
        }
        for g in &self.security_groups {
            out.push_str(&format!("  delete security group {} ({})\n", g.id, g.name));
        }
        for k in &self.key_pairs {
            out.push_str(&format!("  delete key pair {k}\n"));
        }
        if self.dry_run {
            out.push_str("dry run: nothing was deleted\n");
        }
        out.truncate(out.trim_end().len());
        out
    }

    /// The plan for programs.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Carries the plan out: terminate (in batches), wait until terminated, then delete the
    /// security groups (waiting out `DependencyViolation`) and the key pairs.
    pub async fn execute(&self, ec2: &Ec2, poll: Poll) -> Result<(), CloudError> {
        let deadline = Instant::now() + poll.timeout;
        if !self.instances.is_empty() {
            let ids: Vec<String> = self.instances.iter().map(|i| i.id.clone()).collect();
            ec2.terminate(&ids).await?;
            eprintln!("terminating {} instance(s)", ids.len());
            let mut progress = Progress::new("terminating", "terminated", ids.len());
            let waited = wait::wait_until(ec2, &ids, Target::Terminated, poll, |r, t| {
                progress.update(r, t);
            })
            .await;
            progress.finish();
            waited?;
        }
        // A group still in use must not keep the key pair alive: try everything, report the first
        // failure.
        let mut first_error = None;
        for g in &self.security_groups {
            match ec2.delete_security_group(&g.id, deadline).await {
                Ok(()) => eprintln!("deleted security group {} ({})", g.id, g.name),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        for k in &self.key_pairs {
            match ec2.delete_key_pair(k).await {
                Ok(()) => eprintln!("deleted key pair {k}"),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(dry_run: bool) -> KillPlan {
        KillPlan {
            region: "ca-central-1".into(),
            instances: vec![Instance {
                id: "i-1".into(),
                name: "p-c1".into(),
                cluster: "c1".into(),
                instance_type: "t3.micro".into(),
                az: "ca-central-1a".into(),
                public_ip: None,
                private_ip: None,
                state: "running".into(),
            }],
            security_groups: vec![Group {
                id: "sg-1".into(),
                name: "p-agents".into(),
            }],
            key_pairs: vec!["p-key".into()],
            dry_run,
        }
    }

    #[test]
    fn json_lists_ids_names_and_the_dry_run_flag() {
        let json: serde_json::Value = serde_json::from_str(&plan(true).to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "region": "ca-central-1",
                "instances": ["i-1"],
                "security_groups": ["sg-1"],
                "key_pairs": ["p-key"],
                "dry_run": true,
            })
        );
    }

    #[test]
    fn text_names_everything_in_deletion_order() {
        let text = plan(true).render_text("p");
        let at = |s: &str| {
            text.find(s)
                .unwrap_or_else(|| panic!("{s} missing from {text}"))
        };
        assert!(at("i-1") < at("sg-1") && at("sg-1") < at("p-key"));
        assert!(text.ends_with("dry run: nothing was deleted"));
        assert!(!plan(false).render_text("p").contains("dry run"));
    }

    #[test]
    fn an_empty_plan_says_nothing_to_delete() {
        let empty = KillPlan {
            region: "r".into(),
            instances: vec![],
            security_groups: vec![],
            key_pairs: vec![],
            dry_run: false,
        };
        assert!(empty.is_empty());
        assert!(empty.render_text("p").starts_with("nothing to delete"));
    }
}
