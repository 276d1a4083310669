//! What instances need around them: a VPC, the project's key pair and its security group.

use std::time::Duration;

use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, SecurityGroup, UserIdGroupPair};
use tokio::time::Instant;

use super::{filter, is_code, tag_value, Ec2};
use crate::cloud::errors::CloudError;
use crate::cloud::firewall::{self, Rule};
use crate::cloud::{key_pair_name, security_group_name};

/// Where instances go: a VPC, and the subnet when one was asked for.
#[derive(Debug, Clone)]
pub struct Network {
    /// The VPC that holds the security group.
    pub vpc_id: String,
    /// `None`: let EC2 pick a default subnet of the default VPC.
    pub subnet_id: Option<String>,
}

/// The security group after [`Ec2::ensure_security_group`].
#[derive(Debug)]
pub struct GroupOutcome {
    /// `sg-...`.
    pub id: String,
    /// Whether this run created it.
    pub created: bool,
    /// Rules on our ports that the group has but this launch did not ask for.
    pub extra_rules: Vec<Rule>,
}

/// Whether two OpenSSH public key lines hold the same key (comments aside).
fn same_public_key(a: &str, b: &str) -> bool {
    a.split_whitespace()
        .take(2)
        .eq(b.split_whitespace().take(2))
}

impl Ec2 {
    /// The VPC (and subnet) to launch into: `subnet`'s VPC, else the region's default VPC.
    pub async fn network(&self, subnet: Option<&str>) -> Result<Network, CloudError> {
        let vpc_id = if let Some(subnet) = subnet {
            let out = self
                .client
                .describe_subnets()
                .subnet_ids(subnet)
                .send()
                .await
                .map_err(|e| CloudError::from_sdk("ec2:DescribeSubnets", e))?;
            out.subnets()
                .first()
                .and_then(|s| s.vpc_id())
                .map(str::to_owned)
        } else {
            let out = self
                .client
                .describe_vpcs()
                .filters(filter("is-default", &["true"]))
                .send()
                .await
                .map_err(|e| CloudError::from_sdk("ec2:DescribeVpcs", e))?;
            out.vpcs()
                .first()
                .and_then(|v| v.vpc_id())
                .map(str::to_owned)
        };
        let vpc_id = vpc_id.ok_or(CloudError::NoVpc {
            subnet: subnet.map(str::to_owned),
        })?;
        Ok(Network {
            vpc_id,
            subnet_id: subnet.map(str::to_owned),
        })
    }

    /// Makes sure the project's key pair exists in EC2 and holds `public_openssh`, importing it
    /// (tagged) when missing. Returns the key pair's name. EC2 never sees the private half.
    pub async fn ensure_key_pair(&self, public_openssh: &str) -> Result<String, CloudError> {
        let name = key_pair_name(&self.project);
        let out = self
            .client
            .describe_key_pairs()
            .filters(filter("key-name", &[&name]))
            .include_public_key(true)
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("ec2:DescribeKeyPairs", e))?;
        if let Some(existing) = out.key_pairs().first() {
            match existing.public_key() {
                Some(theirs) if !same_public_key(theirs, public_openssh) => {
                    return Err(CloudError::KeyMismatch { name });
                }
                _ => {
                    tracing::info!(%name, "reusing key pair");
                    return Ok(name);
                }
            }
        }
        let imported = self
            .client
            .import_key_pair()
            .key_name(&name)
            .public_key_material(Blob::new(public_openssh.as_bytes()))
            .tag_specifications(self.tag_spec(ResourceType::KeyPair, &name, None))
            .send()
            .await;
        match imported {
            Ok(_) => tracing::info!(%name, "imported key pair"),
            // Another elb run imported it between our lookup and our import.
            Err(e) if is_code(&e, "InvalidKeyPair.Duplicate") => {}
            Err(e) => return Err(CloudError::from_sdk("ec2:ImportKeyPair", e)),
        }
        Ok(name)
    }

    async fn find_group(
        &self,
        name: &str,
        vpc_id: &str,
    ) -> Result<Option<SecurityGroup>, CloudError> {
        let out = self
            .client
            .describe_security_groups()
            .filters(filter("group-name", &[name]))
            .filters(filter("vpc-id", &[vpc_id]))
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("ec2:DescribeSecurityGroups", e))?;
        Ok(out.security_groups().first().cloned())
    }

    /// Finds or creates the project's agents' security group in `vpc_id` and authorizes the
    /// `wanted` rules it lacks. Existing rules are never revoked.
    pub async fn ensure_security_group(
        &self,
        vpc_id: &str,
        wanted: &[Rule],
    ) -> Result<GroupOutcome, CloudError> {
        let name = security_group_name(&self.project);
        self.ensure_group(&name, "elb agents", vpc_id, wanted).await
    }

    /// Finds or creates the project's security group `name` (for `purpose`, in its
    /// description) in `vpc_id` and authorizes the `wanted` rules it lacks. A group of that name
    /// without our `Project` tag is refused, never used.
    pub async fn ensure_group(
        &self,
        name: &str,
        purpose: &str,
        vpc_id: &str,
        wanted: &[Rule],
    ) -> Result<GroupOutcome, CloudError> {
        let name = name.to_owned();
        let (group, created) = match self.find_group(&name, vpc_id).await? {
            Some(group) => (group, false),
            None => (self.create_group(&name, purpose, vpc_id).await?, true),
        };
        let id = group.group_id().unwrap_or_default().to_owned();
        if tag_value(group.tags(), "Project") != Some(self.project.as_str()) {
            return Err(CloudError::ForeignGroup {
                name,
                id,
                project: self.project.clone(),
            });
        }
        let existing: Vec<Rule> = group
            .ip_permissions()
            .iter()
            .filter(|p| p.ip_protocol() == Some("tcp") && p.from_port() == p.to_port())
            .filter_map(|p| Some((u16::try_from(p.from_port()?).ok()?, p.ip_ranges())))
            .flat_map(|(port, ranges)| {
                ranges.iter().filter_map(move |r| {
                    Some(Rule {
                        port,
                        cidr: r.cidr_ip()?.into(),
                    })
                })
            })
            .collect();
        let (missing, extra_rules) = firewall::diff(wanted, &existing);
        for rule in &missing {
            self.authorize(&id, rule).await?;
        }
        Ok(GroupOutcome {
            id,
            created,
            extra_rules,
        })
    }

    async fn create_group(
        &self,
        name: &str,
        purpose: &str,
        vpc_id: &str,
    ) -> Result<SecurityGroup, CloudError> {
        let created = self
            .client
            .create_security_group()
            .group_name(name)
            .description(format!(
                "{purpose} of project {} (managed by elb)",
                self.project
            ))
            .vpc_id(vpc_id)
            .tag_specifications(self.tag_spec(ResourceType::SecurityGroup, name, None))
            .send()
            .await;
        match created {
            Ok(_) => tracing::info!(%name, "created security group"),
            // A concurrent run created it first: use theirs.
            Err(e) if is_code(&e, "InvalidGroup.Duplicate") => {}
            Err(e) => return Err(CloudError::from_sdk("ec2:CreateSecurityGroup", e)),
        }
        self.find_group(name, vpc_id)
            .await?
            .ok_or_else(|| CloudError::GroupVanished {
                name: name.to_owned(),
            })
    }

    async fn authorize(&self, group_id: &str, rule: &Rule) -> Result<(), CloudError> {
        let port = i32::from(rule.port);
        let permission = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(port)
            .to_port(port)
            .ip_ranges(
                IpRange::builder()
                    .cidr_ip(&rule.cidr)
                    .description("elb")
                    .build(),
            )
            .build();
        let result = self
            .client
            .authorize_security_group_ingress()
            .group_id(group_id)
            .ip_permissions(permission)
            .send()
            .await;
        match result {
            Ok(_) => tracing::info!(%group_id, %rule, "authorized"),
            Err(e) if is_code(&e, "InvalidPermission.Duplicate") => {}
            Err(e) => return Err(CloudError::from_sdk("ec2:AuthorizeSecurityGroupIngress", e)),
        }
        Ok(())
    }

    /// Opens `port` of group `group_id` to members of group `source_id` (a group-to-group rule,
    /// as an ALB set-up opens the targets to the load balancer). Idempotent.
    pub async fn allow_from_group(
        &self,
        group_id: &str,
        port: u16,
        source_id: &str,
    ) -> Result<(), CloudError> {
        let result = self
            .client
            .authorize_security_group_ingress()
            .group_id(group_id)
            .ip_permissions(group_permission(port, source_id))
            .send()
            .await;
        match result {
            Ok(_) => tracing::info!(%group_id, port, %source_id, "authorized group"),
            Err(e) if is_code(&e, "InvalidPermission.Duplicate") => {}
            Err(e) => return Err(CloudError::from_sdk("ec2:AuthorizeSecurityGroupIngress", e)),
        }
        Ok(())
    }

    /// Removes the rule [`Ec2::allow_from_group`] made, so that the source group can be deleted.
    /// A rule that is not there is no error.
    pub async fn revoke_from_group(
        &self,
        group_id: &str,
        port: u16,
        source_id: &str,
    ) -> Result<(), CloudError> {
        let result = self
            .client
            .revoke_security_group_ingress()
            .group_id(group_id)
            .ip_permissions(group_permission(port, source_id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, "InvalidPermission.NotFound") => Ok(()),
            Err(e) if is_code(&e, "InvalidGroup.NotFound") => Ok(()),
            Err(e) => Err(CloudError::from_sdk("ec2:RevokeSecurityGroupIngress", e)),
        }
    }

    /// The id of the project's group `name` in `vpc_id`, if it exists.
    pub async fn group_id(&self, name: &str, vpc_id: &str) -> Result<Option<String>, CloudError> {
        Ok(self
            .find_group(name, vpc_id)
            .await?
            .filter(|g| tag_value(g.tags(), "Project") == Some(self.project.as_str()))
            .and_then(|g| g.group_id().map(str::to_owned)))
    }

    /// The default subnets of `vpc_id` as `(subnet id, availability zone)`, one per zone,
    /// sorted by zone.
    pub async fn default_subnets(&self, vpc_id: &str) -> Result<Vec<(String, String)>, CloudError> {
        let out = self
            .client
            .describe_subnets()
            .filters(filter("vpc-id", &[vpc_id]))
            .filters(filter("default-for-az", &["true"]))
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("ec2:DescribeSubnets", e))?;
        let mut subnets: Vec<(String, String)> = out
            .subnets()
            .iter()
            .filter_map(|s| Some((s.subnet_id()?.to_owned(), s.availability_zone()?.to_owned())))
            .collect();
        subnets.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        subnets.dedup_by(|a, b| a.1 == b.1);
        Ok(subnets)
    }

    /// The project's security groups as `(id, name)`, a group that other planned groups' rules
    /// refer to after them (EC2 refuses to delete a group that another group's rule names).
    pub async fn project_security_groups(&self) -> Result<Vec<(String, String)>, CloudError> {
        let pages = self
            .client
            .describe_security_groups()
            .filters(self.project_filter())
            .into_paginator()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| CloudError::from_sdk("ec2:DescribeSecurityGroups", e))?;
        let groups: Vec<&SecurityGroup> = pages.iter().flat_map(|p| p.security_groups()).collect();
        let referenced = |id: &str| {
            groups.iter().any(|g| {
                g.ip_permissions()
                    .iter()
                    .flat_map(|p| p.user_id_group_pairs())
                    .any(|pair| pair.group_id() == Some(id))
            })
        };
        let mut listed: Vec<(bool, String, String)> = groups
            .iter()
            .filter_map(|g| {
                let id = g.group_id()?;
                Some((referenced(id), id.to_owned(), g.group_name()?.to_owned()))
            })
            .collect();
        listed.sort_by_key(|(referenced, _, _)| *referenced);
        Ok(listed.into_iter().map(|(_, id, name)| (id, name)).collect())
    }

    /// Names of the project's key pairs.
    pub async fn project_key_pairs(&self) -> Result<Vec<String>, CloudError> {
        let out = self
            .client
            .describe_key_pairs()
            .filters(self.project_filter())
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("ec2:DescribeKeyPairs", e))?;
        Ok(out
            .key_pairs()
            .iter()
            .filter_map(|k| k.key_name())
            .map(str::to_owned)
            .collect())
    }

    /// Deletes a security group, retrying with backoff while EC2 still sees network interfaces
    /// of terminated instances in it (`DependencyViolation`), until `deadline`.
    pub async fn delete_security_group(
        &self,
        id: &str,
        deadline: Instant,
    ) -> Result<(), CloudError> {
        let mut backoff = Duration::from_millis(500);
        loop {
            match self
                .client
                .delete_security_group()
                .group_id(id)
                .send()
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_code(&e, "InvalidGroup.NotFound") => return Ok(()),
                Err(e) if is_code(&e, "DependencyViolation") => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(CloudError::GroupInUse { id: id.to_owned() });
                    }
                    tracing::info!(%id, ?backoff, "security group still in use; retrying");
                    tokio::time::sleep(backoff.min(deadline - now)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(8));
                }
                Err(e) => return Err(CloudError::from_sdk("ec2:DeleteSecurityGroup", e)),
            }
        }
    }

    /// Deletes a key pair (EC2 treats a missing one as success).
    pub async fn delete_key_pair(&self, name: &str) -> Result<(), CloudError> {
        self.client
            .delete_key_pair()
            .key_name(name)
            .send()
            .await
            .map(drop)
            .map_err(|e| CloudError::from_sdk("ec2:DeleteKeyPair", e))
    }
}

/// TCP `port` from the members of group `source_id`.
fn group_permission(port: u16, source_id: &str) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(i32::from(port))
        .to_port(i32::from(port))
        .user_id_group_pairs(
            UserIdGroupPair::builder()
                .group_id(source_id)
                .description("elb")
                .build(),
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_compare_without_comments() {
        let ours = "ssh-ed25519 AAAAC3Nza";
        assert!(same_public_key(
            ours,
            "ssh-ed25519 AAAAC3Nza elb-from-scratch-key"
        ));
        assert!(!same_public_key(ours, "ssh-ed25519 AAAAother"));
    }
}
