//! The kill switch's plan: what will be deleted, found by the exact `Project` tag. The same value
//! is printed by `--dry-run`, shown before the confirmation, and executed.

use std::path::PathBuf;

use serde::{Serialize, Serializer};

use crate::cloud::ec2::elbv2::Inventory;
use crate::cloud::{sort_instances, Instance};

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
    /// Load balancers, listeners, rules and target groups to delete first (EC2).
    #[serde(skip_serializing_if = "Inventory::is_empty")]
    pub load_balancing: Inventory,
    /// Auto Scaling groups (deleted with their instances, waited for) and launch templates
    /// (`(id, name)`) to delete before anything else (EC2): a group left running would start new
    /// instances while the old ones go.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub auto_scaling_groups: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub launch_templates: Vec<(String, String)>,
    /// CloudWatch alarms (the instances' idle alarms) and dashboards to delete (EC2).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dashboards: Vec<String>,
    /// What could not be searched, and why (e.g. CloudWatch without its IAM permissions):
    /// such resources, if any, stay.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsearched: Vec<String>,
    /// Instances to terminate (serialized as ids).
    #[serde(serialize_with = "instance_ids")]
    pub instances: Vec<Instance>,
    /// Security groups to delete after the instances are gone (serialized as ids).
    #[serde(serialize_with = "group_ids")]
    pub security_groups: Vec<Group>,
    /// Key pair names to delete.
    pub key_pairs: Vec<String>,
    /// Control groups to remove after the instances are gone (local provider).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cgroups: Vec<PathBuf>,
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
    /// A plan to delete `instances` (sorted here) in `region` and nothing else yet.
    pub fn new(region: &str, mut instances: Vec<Instance>, dry_run: bool) -> Self {
        sort_instances(&mut instances);
        Self {
            region: region.to_owned(),
            load_balancing: Inventory::default(),
            auto_scaling_groups: Vec::new(),
            launch_templates: Vec::new(),
            alarms: Vec::new(),
            dashboards: Vec::new(),
            unsearched: Vec::new(),
            instances,
            security_groups: Vec::new(),
            key_pairs: Vec::new(),
            cgroups: Vec::new(),
            dry_run,
        }
    }

    /// Whether there is nothing to delete.
    pub fn is_empty(&self) -> bool {
        self.load_balancing.is_empty()
            && self.auto_scaling_groups.is_empty()
            && self.launch_templates.is_empty()
            && self.alarms.is_empty()
            && self.dashboards.is_empty()
            && self.instances.is_empty()
            && self.security_groups.is_empty()
            && self.key_pairs.is_empty()
            && self.cgroups.is_empty()
    }

    /// The plan for people; `location` says where, e.g. `in ca-central-1`.
    pub fn render_text(&self, project: &str, location: &str) -> String {
        let unsearched: String = self
            .unsearched
            .iter()
            .map(|why| format!("\n  not searched: {why}"))
            .collect();
        if self.is_empty() {
            return format!("nothing to delete for project {project} {location}{unsearched}");
        }
        let mut out = format!("kill plan for project {project} {location}:\n");
        for name in &self.auto_scaling_groups {
            out.push_str(&format!(
                "  delete Auto Scaling group {name} (with its instances)\n"
            ));
        }
        for (id, name) in &self.launch_templates {
            out.push_str(&format!("  delete launch template {name} ({id})\n"));
        }
        for name in &self.alarms {
            out.push_str(&format!("  delete CloudWatch alarm {name}\n"));
        }
        for name in &self.dashboards {
            out.push_str(&format!("  delete CloudWatch dashboard {name}\n"));
        }
        let lbs = &self.load_balancing;
        for arn in &lbs.listeners {
            out.push_str(&format!("  delete listener {arn}\n"));
        }
        if !lbs.rules.is_empty() {
            out.push_str(&format!("    (with its {} rule(s))\n", lbs.rules.len()));
        }
        for (arn, name) in &lbs.load_balancers {
            out.push_str(&format!("  delete load balancer {name} ({arn})\n"));
        }
        for (arn, name) in &lbs.target_groups {
            out.push_str(&format!("  delete target group {name} ({arn})\n"));
        }
        for (arn, domain) in &lbs.certificates {
            out.push_str(&format!("  delete certificate {domain} ({arn}) from ACM\n"));
        }
        if !self.instances.is_empty() {
            out.push_str(&format!(
                "  terminate {} instance(s):\n",
                self.instances.len()
            ));
            for i in &self.instances {
                let address = i.address().unwrap_or("-");
                out.push_str(&format!(
                    "    {}  {}  {}  {}  {}\n",
                    i.id, i.name, i.instance_type, address, i.state
                ));
            }
        }
        for g in &self.security_groups {
            out.push_str(&format!("  delete security group {} ({})\n", g.id, g.name));
        }
        for k in &self.key_pairs {
            out.push_str(&format!("  delete key pair {k}\n"));
        }
        for c in &self.cgroups {
            out.push_str(&format!("  remove cgroup {}\n", c.display()));
        }
        out.push_str(unsearched.trim_start_matches('\n'));
        if !unsearched.is_empty() {
            out.push('\n');
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(dry_run: bool) -> KillPlan {
        KillPlan {
            region: "ca-central-1".into(),
            load_balancing: Inventory {
                load_balancers: vec![("arn:lb".into(), "p-alb".into())],
                listeners: vec!["arn:listener".into()],
                rules: vec!["arn:rule".into()],
                target_groups: vec![("arn:tg".into(), "p-c1".into())],
                certificates: vec![("arn:cert".into(), "example.test".into())],
            },
            instances: vec![Instance::running("i-1", "c1")],
            security_groups: vec![Group {
                id: "sg-1".into(),
                name: "p-agents".into(),
            }],
            key_pairs: vec!["p-key".into()],
            auto_scaling_groups: vec!["p-c1".into()],
            launch_templates: vec![("lt-1".into(), "p-c1".into())],
            alarms: vec!["elb-p-idle-i-1".into()],
            dashboards: vec!["elb-p".into()],
            unsearched: vec![],
            cgroups: vec![],
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
                "load_balancing": {
                    "load_balancers": [["arn:lb", "p-alb"]],
                    "listeners": ["arn:listener"],
                    "rules": ["arn:rule"],
                    "target_groups": [["arn:tg", "p-c1"]],
                    "certificates": [["arn:cert", "example.test"]],
                },
                "auto_scaling_groups": ["p-c1"],
                "launch_templates": [["lt-1", "p-c1"]],
                "alarms": ["elb-p-idle-i-1"],
                "dashboards": ["elb-p"],
                "instances": ["i-1"],
                "security_groups": ["sg-1"],
                "key_pairs": ["p-key"],
                "dry_run": true,
            })
        );
    }

    #[test]
    fn text_names_everything_in_deletion_order() {
        let text = plan(true).render_text("p", "in ca-central-1");
        let at = |s: &str| {
            text.find(s)
                .unwrap_or_else(|| panic!("{s} missing from {text}"))
        };
        let instance = "terminate 1 instance";
        assert!(at("Auto Scaling group p-c1") < at("launch template p-c1"));
        assert!(at("launch template p-c1") < at("alarm elb-p-idle-i-1"));
        assert!(at("alarm elb-p-idle-i-1") < at("dashboard elb-p"));
        assert!(at("dashboard elb-p") < at("arn:listener"));
        assert!(at("arn:listener") < at("p-alb") && at("p-alb") < at("arn:tg"));
        assert!(at("arn:tg") < at("arn:cert") && at("arn:cert") < at(instance));
        assert!(at(instance) < at("sg-1") && at("sg-1") < at("p-key"));
        assert!(text.ends_with("dry run: nothing was deleted"));
        assert!(!plan(false)
            .render_text("p", "in ca-central-1")
            .contains("dry run"));
    }

    #[test]
    fn an_empty_plan_says_nothing_to_delete() {
        let empty = KillPlan::new("r", vec![], false);
        assert!(empty.is_empty());
        assert!(empty
            .render_text("p", "in r")
            .starts_with("nothing to delete"));
    }
}
