//! What instances need around them: a VPC, the project's key pair and its security group.

use std::time::Duration;

use tokio::time::Instant;

use super::{is_code, Ec2};
use crate::aws::{Node, Params};
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

/// A security group as elb reads it from `DescribeSecurityGroups`.
#[derive(Debug, Clone)]
struct SecurityGroup {
    id: String,
    name: String,
    /// The `Project` tag.
    project: Option<String>,
    /// Its single-port TCP rules from CIDR ranges.
    rules: Vec<Rule>,
    /// The groups its rules let in.
    sources: Vec<String>,
}

impl SecurityGroup {
    /// A group of a `securityGroupInfo` list.
    fn read(g: Node<'_, '_>) -> Self {
        let permissions: Vec<Node<'_, '_>> = g.list("ipPermissions").collect();
        let rules = permissions
            .iter()
            .filter(|p| p.text("ipProtocol") == Some("tcp"))
            .filter_map(|p| {
                let from: u16 = p.number("fromPort")?;
                (p.number::<u16>("toPort")? == from).then_some((from, p))
            })
            .flat_map(|(port, p)| {
                p.list("ipRanges").filter_map(move |r| {
                    Some(Rule {
                        port,
                        cidr: r.text("cidrIp")?.into(),
                    })
                })
            })
            .collect();
        let sources = permissions
            .iter()
            .flat_map(|p| p.list("groups"))
            .map(|pair| pair.string("groupId"))
            .collect();
        Self {
            id: g.string("groupId"),
            name: g.string("groupName"),
            project: g.tag("tagSet", "Project").map(str::to_owned),
            rules,
            sources,
        }
    }
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
        let mut params = Self::params();
        let vpc_id = if let Some(subnet) = subnet {
            params.list("SubnetId", [subnet]);
            self.call("ec2:DescribeSubnets", &params, |root| {
                root.list("subnetSet")
                    .next()
                    .and_then(|s| s.text("vpcId"))
                    .map(str::to_owned)
            })
            .await?
        } else {
            params.filter("is-default", &["true"]);
            self.call("ec2:DescribeVpcs", &params, |root| {
                root.list("vpcSet")
                    .next()
                    .and_then(|v| v.text("vpcId"))
                    .map(str::to_owned)
            })
            .await?
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
        let mut params = Self::params();
        params
            .filter("key-name", &[&name])
            .set("IncludePublicKey", true);
        let existing = self
            .call("ec2:DescribeKeyPairs", &params, |root| {
                root.list("keySet").next().map(|k| {
                    k.text("publicKey")
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                })
            })
            .await?;
        if let Some(existing) = existing {
            match existing {
                Some(theirs) if !same_public_key(&theirs, public_openssh) => {
                    return Err(CloudError::KeyMismatch { name });
                }
                _ => {
                    tracing::info!(%name, "reusing key pair");
                    return Ok(name);
                }
            }
        }
        let mut params = Self::params();
        params.set("KeyName", &name).set(
            "PublicKeyMaterial",
            aws_smithy_types::base64::encode(public_openssh.as_bytes()),
        );
        self.tag_specs(&mut params, &["key-pair"], &name, None, None, &[]);
        let imported = self.call("ec2:ImportKeyPair", &params, |_| ()).await;
        match imported {
            Ok(()) => tracing::info!(%name, "imported key pair"),
            // Another elb run imported it between our lookup and our import.
            Err(_) if is_code(&imported, "InvalidKeyPair.Duplicate") => {}
            Err(e) => return Err(e),
        }
        Ok(name)
    }

    async fn find_group(
        &self,
        name: &str,
        vpc_id: &str,
    ) -> Result<Option<SecurityGroup>, CloudError> {
        let mut params = Self::params();
        params
            .filter("group-name", &[name])
            .filter("vpc-id", &[vpc_id]);
        self.call("ec2:DescribeSecurityGroups", &params, |root| {
            root.list("securityGroupInfo")
                .next()
                .map(SecurityGroup::read)
        })
        .await
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
        if group.project.as_deref() != Some(self.project.as_str()) {
            return Err(CloudError::ForeignGroup {
                name,
                id: group.id,
                project: self.project.clone(),
            });
        }
        let (missing, extra_rules) = firewall::diff(wanted, &group.rules);
        for rule in &missing {
            self.authorize(&group.id, rule).await?;
        }
        Ok(GroupOutcome {
            id: group.id,
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
        let mut params = Self::params();
        params
            .set("GroupName", name)
            .set(
                "GroupDescription",
                format!("{purpose} of project {} (managed by elb)", self.project),
            )
            .set("VpcId", vpc_id);
        self.tag_specs(&mut params, &["security-group"], name, None, None, &[]);
        let created = self.call("ec2:CreateSecurityGroup", &params, |_| ()).await;
        match created {
            Ok(()) => tracing::info!(%name, "created security group"),
            // A concurrent run created it first: use theirs.
            Err(_) if is_code(&created, "InvalidGroup.Duplicate") => {}
            Err(e) => return Err(e),
        }
        self.find_group(name, vpc_id)
            .await?
            .ok_or_else(|| CloudError::GroupVanished {
                name: name.to_owned(),
            })
    }

    async fn authorize(&self, group_id: &str, rule: &Rule) -> Result<(), CloudError> {
        let mut params = Self::params();
        params.set("GroupId", group_id);
        permission(&mut params, rule.port, "IpRanges", "CidrIp", &rule.cidr);
        let result = self
            .call("ec2:AuthorizeSecurityGroupIngress", &params, |_| ())
            .await;
        match result {
            Ok(()) => tracing::info!(%group_id, %rule, "authorized"),
            Err(_) if is_code(&result, "InvalidPermission.Duplicate") => {}
            Err(e) => return Err(e),
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
        let mut params = Self::params();
        params.set("GroupId", group_id);
        permission(&mut params, port, "Groups", "GroupId", source_id);
        let result = self
            .call("ec2:AuthorizeSecurityGroupIngress", &params, |_| ())
            .await;
        match result {
            Ok(()) => tracing::info!(%group_id, port, %source_id, "authorized group"),
            Err(_) if is_code(&result, "InvalidPermission.Duplicate") => {}
            Err(e) => return Err(e),
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
        let mut params = Self::params();
        params.set("GroupId", group_id);
        permission(&mut params, port, "Groups", "GroupId", source_id);
        let result = self
            .call("ec2:RevokeSecurityGroupIngress", &params, |_| ())
            .await;
        if is_code(&result, "InvalidPermission.NotFound")
            || is_code(&result, "InvalidGroup.NotFound")
        {
            return Ok(());
        }
        result
    }

    /// The id of the project's group `name` in `vpc_id`, if it exists.
    pub async fn group_id(&self, name: &str, vpc_id: &str) -> Result<Option<String>, CloudError> {
        Ok(self
            .find_group(name, vpc_id)
            .await?
            .filter(|g| g.project.as_deref() == Some(self.project.as_str()))
            .map(|g| g.id))
    }

    /// The default subnets of `vpc_id` as `(subnet id, availability zone)`, one per zone,
    /// sorted by zone.
    pub async fn default_subnets(&self, vpc_id: &str) -> Result<Vec<(String, String)>, CloudError> {
        let mut params = Self::params();
        params
            .filter("vpc-id", &[vpc_id])
            .filter("default-for-az", &["true"]);
        let mut subnets: Vec<(String, String)> = self
            .call("ec2:DescribeSubnets", &params, |root| {
                root.list("subnetSet")
                    .filter_map(|s| {
                        Some((
                            s.text("subnetId")?.to_owned(),
                            s.text("availabilityZone")?.to_owned(),
                        ))
                    })
                    .collect()
            })
            .await?;
        subnets.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        subnets.dedup_by(|a, b| a.1 == b.1);
        Ok(subnets)
    }

    /// The project's security groups as `(id, name)`, a group that other planned groups' rules
    /// refer to after them (EC2 refuses to delete a group that another group's rule names).
    pub async fn project_security_groups(&self) -> Result<Vec<(String, String)>, CloudError> {
        let mut params = Self::params();
        params.filter("tag:Project", &[&self.project]);
        let groups = self
            .pages("ec2:DescribeSecurityGroups", &params, |root| {
                let groups = root
                    .list("securityGroupInfo")
                    .map(SecurityGroup::read)
                    .collect();
                (groups, super::next_token(root))
            })
            .await?;
        let referenced = |id: &str| groups.iter().any(|g| g.sources.iter().any(|s| s == id));
        let mut listed: Vec<(bool, String, String)> = groups
            .iter()
            .map(|g| (referenced(&g.id), g.id.clone(), g.name.clone()))
            .collect();
        listed.sort_by_key(|(referenced, _, _)| *referenced);
        Ok(listed.into_iter().map(|(_, id, name)| (id, name)).collect())
    }

    /// Names of the project's key pairs.
    pub async fn project_key_pairs(&self) -> Result<Vec<String>, CloudError> {
        let mut params = Self::params();
        params.filter("tag:Project", &[&self.project]);
        self.call("ec2:DescribeKeyPairs", &params, |root| {
            root.list("keySet")
                .filter_map(|k| k.text("keyName"))
                .map(str::to_owned)
                .collect()
        })
        .await
    }

    /// Deletes a security group, retrying with backoff while EC2 still sees network interfaces
    /// of terminated instances in it (`DependencyViolation`), until `deadline`.
    pub async fn delete_security_group(
        &self,
        id: &str,
        deadline: Instant,
    ) -> Result<(), CloudError> {
        let mut backoff = Duration::from_millis(500);
        let mut params = Self::params();
        params.set("GroupId", id);
        loop {
            let result = self.call("ec2:DeleteSecurityGroup", &params, |_| ()).await;
            if is_code(&result, "InvalidGroup.NotFound") {
                return Ok(());
            }
            if !is_code(&result, "DependencyViolation") {
                return result;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(CloudError::GroupInUse { id: id.to_owned() });
            }
            tracing::info!(%id, ?backoff, "security group still in use; retrying");
            tokio::time::sleep(backoff.min(deadline - now)).await;
            backoff = (backoff * 2).min(Duration::from_secs(8));
        }
    }

    /// Deletes a key pair (EC2 treats a missing one as success).
    pub async fn delete_key_pair(&self, name: &str) -> Result<(), CloudError> {
        let mut params = Self::params();
        params.set("KeyName", name);
        self.call("ec2:DeleteKeyPair", &params, |_| ()).await
    }
}

/// One inbound TCP rule on `port` in `IpPermissions.1`, from the `field` of one entry of the list
/// `list`: a CIDR (`IpRanges`, `CidrIp`) or a group (`Groups`, `GroupId`). Described as elb's.
fn permission(params: &mut Params, port: u16, list: &str, field: &str, source: &str) {
    let rule = params.entry("IpPermissions", 0);
    params
        .set(format!("{rule}.IpProtocol"), "tcp")
        .set(format!("{rule}.FromPort"), port)
        .set(format!("{rule}.ToPort"), port);
    let entry = params.entry(&format!("{rule}.{list}"), 0);
    params
        .set(format!("{entry}.{field}"), source)
        .set(format!("{entry}.Description"), "elb");
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
