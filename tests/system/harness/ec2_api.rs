//! A raw EC2 Query API client straight to moto, for what the tests check or set up behind
//! `elb`'s back: tags on volumes, IMDSv2 settings, group rules, imported keys, decoy instances.
//!
//! It goes to moto directly (not through the shim), so its calls neither show in the shim's
//! request log nor trip its faults, and it carries the test's `x-moto-account-id` so it sees
//! exactly what that test's `elb` created. moto routes a request to EC2 and picks the region from
//! the `Authorization` credential scope; it does not check signatures.

use std::collections::BTreeMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use roxmltree::{Document, Node};

use super::http::{runtime, send};

/// An EC2 API client for one moto account.
#[derive(Clone)]
pub struct Ec2Api {
    port: u16,
    account: String,
}

/// An EC2 error answer, or a transport failure (`status` 0).
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub body: String,
}

/// What the tests look at in an instance.
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub state: String,
    pub instance_type: String,
    pub tags: BTreeMap<String, String>,
    pub http_tokens: String,
    pub key_name: String,
    pub group_ids: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Volume {
    pub id: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub vpc_id: String,
    pub tags: BTreeMap<String, String>,
    /// Ingress rules, one per (protocol, from port, to port, IPv4 range).
    pub ingress: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    pub protocol: String,
    pub from_port: String,
    pub to_port: String,
    pub cidr: String,
}

#[derive(Debug, Clone)]
pub struct KeyPair {
    pub name: String,
    pub public_key: String,
    pub tags: BTreeMap<String, String>,
}

impl Ec2Api {
    pub fn new(moto_port: u16, account: String) -> Self {
        Self {
            port: moto_port,
            account,
        }
    }

    /// The moto account this client works in (the account of the ARNs moto makes).
    pub fn account(&self) -> &str {
        &self.account
    }

    /// Calls EC2's `action` in `region` and returns the XML body of a 2xx answer.
    pub fn call(
        &self,
        region: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> Result<String, ApiError> {
        self.call_service(("ec2", "2016-11-15"), region, action, params)
    }

    /// Calls `action` of a Query-protocol `(service, API version)` (moto routes by the
    /// service of the credential scope) and returns the XML body of a 2xx answer.
    pub fn call_service(
        &self,
        (service, version): (&str, &str),
        region: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> Result<String, ApiError> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", action)
            .append_pair("Version", version);
        for (k, v) in params {
            form.append_pair(k, v);
        }
        self.post(
            (service, region),
            &[(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            form.finish(),
        )
    }

    /// Calls `action` of a JSON-protocol service (`signing` names it in the credential scope,
    /// `prefix` in `X-Amz-Target`: `("acm", "CertificateManager")`) and returns the JSON body of
    /// a 2xx answer.
    pub fn call_json(
        &self,
        (signing, prefix): (&str, &str),
        region: &str,
        action: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        let target = format!("{prefix}.{action}");
        let text = self.post(
            (signing, region),
            &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", &target),
            ],
            body.to_string(),
        )?;
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }

    /// POSTs `body` with `headers` to moto in this client's account, with a dummy signature of
    /// `service` in `region` (moto routes by it); the body of a 2xx answer.
    fn post(
        &self,
        (service, region): (&str, &str),
        headers: &[(&str, &str)],
        body: String,
    ) -> Result<String, ApiError> {
        let mut request = Request::post("/")
            .header("host", format!("127.0.0.1:{}", self.port))
            .header("x-moto-account-id", &self.account)
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=testing/20240101/{region}/{service}/aws4_request, \
                     SignedHeaders=host, Signature=0"
                ),
            );
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .expect("a well-formed request");
        let response = runtime()
            .block_on(send(self.port, request))
            .map_err(|body| ApiError { status: 0, body })?;
        let status = response.status().as_u16();
        let body = String::from_utf8_lossy(response.body()).into_owned();
        if response.status().is_success() {
            Ok(body)
        } else {
            Err(ApiError { status, body })
        }
    }

    fn call_ok(&self, region: &str, action: &str, params: &[(&str, &str)]) -> String {
        self.call(region, action, params)
            .unwrap_or_else(|e| panic!("{action} in {region} failed: {e:?}"))
    }

    /// Every instance in `region` (terminated ones included) that matches all `filters`
    /// (`("tag:Project", "x")`, `("instance-state-name", "running")`, ...).
    pub fn instances(&self, region: &str, filters: &[(&str, &str)]) -> Vec<Instance> {
        let params = filter_params(filters);
        let xml = self.call_ok(region, "DescribeInstances", &as_refs(&params));
        let doc = parse(&xml);
        doc.descendants()
            .filter(|n| n.has_tag_name("instancesSet"))
            .flat_map(items)
            .map(|i| Instance {
                id: text(i, "instanceId"),
                state: child(i, "instanceState")
                    .map(|s| text(s, "name"))
                    .unwrap_or_default(),
                instance_type: text(i, "instanceType"),
                tags: tags(i),
                http_tokens: child(i, "metadataOptions")
                    .map(|m| text(m, "httpTokens"))
                    .unwrap_or_default(),
                key_name: text(i, "keyName"),
                group_ids: child(i, "groupSet")
                    .map(|g| items(g).map(|item| text(item, "groupId")).collect())
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// The volumes attached to `instance_id`.
    pub fn volumes_of(&self, region: &str, instance_id: &str) -> Vec<Volume> {
        let params = filter_params(&[("attachment.instance-id", instance_id)]);
        let xml = self.call_ok(region, "DescribeVolumes", &as_refs(&params));
        let doc = parse(&xml);
        let set = doc.descendants().find(|n| n.has_tag_name("volumeSet"));
        set.map(|s| {
            items(s)
                .map(|v| Volume {
                    id: text(v, "volumeId"),
                    tags: tags(v),
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// The default VPC's default subnets in `region` as `(subnet id, zone)`, and the VPC id.
    pub fn default_subnets(&self, region: &str) -> (String, Vec<(String, String)>) {
        let params = filter_params(&[("is-default", "true")]);
        let xml = self.call_ok(region, "DescribeVpcs", &as_refs(&params));
        let doc = parse(&xml);
        let vpc = doc
            .descendants()
            .find(|n| n.has_tag_name("vpcId"))
            .and_then(|n| n.text())
            .expect("moto has a default VPC")
            .to_owned();
        let params = filter_params(&[("vpc-id", &vpc), ("default-for-az", "true")]);
        let xml = self.call_ok(region, "DescribeSubnets", &as_refs(&params));
        let doc = parse(&xml);
        let subnets = doc
            .descendants()
            .filter(|n| n.has_tag_name("subnetSet"))
            .flat_map(items)
            .map(|s| (text(s, "subnetId"), text(s, "availabilityZone")))
            .collect();
        (vpc, subnets)
    }

    /// Deletes a subnet (to leave a region with one zone).
    pub fn delete_subnet(&self, region: &str, subnet_id: &str) {
        self.call_ok(region, "DeleteSubnet", &[("SubnetId", subnet_id)]);
    }

    /// The security groups in `region` called `name`.
    pub fn security_groups(&self, region: &str, name: &str) -> Vec<SecurityGroup> {
        let params = filter_params(&[("group-name", name)]);
        let xml = self.call_ok(region, "DescribeSecurityGroups", &as_refs(&params));
        let doc = parse(&xml);
        let Some(set) = doc
            .descendants()
            .find(|n| n.has_tag_name("securityGroupInfo"))
        else {
            return Vec::new();
        };
        items(set)
            .map(|g| SecurityGroup {
                id: text(g, "groupId"),
                name: text(g, "groupName"),
                vpc_id: text(g, "vpcId"),
                tags: tags(g),
                ingress: child(g, "ipPermissions").map(rules).unwrap_or_default(),
            })
            .collect()
    }

    /// The key pairs in `region`, with their public key material.
    pub fn key_pairs(&self, region: &str) -> Vec<KeyPair> {
        let xml = self.call_ok(region, "DescribeKeyPairs", &[("IncludePublicKey", "true")]);
        let doc = parse(&xml);
        let Some(set) = doc.descendants().find(|n| n.has_tag_name("keySet")) else {
            return Vec::new();
        };
        items(set)
            .map(|k| KeyPair {
                name: text(k, "keyName"),
                public_key: text(k, "publicKey"),
                tags: tags(k),
            })
            .collect()
    }

    /// The id of the default VPC of `region`.
    pub fn default_vpc(&self, region: &str) -> String {
        let params = filter_params(&[("is-default", "true")]);
        let xml = self.call_ok(region, "DescribeVpcs", &as_refs(&params));
        let doc = parse(&xml);
        doc.descendants()
            .find(|n| n.has_tag_name("vpcId"))
            .and_then(|n| n.text())
            .unwrap_or_else(|| panic!("{region} has no default VPC: {xml}"))
            .to_string()
    }

    /// Launches `count` running x86_64 Amazon Linux instances behind `elb`'s back, tagged with
    /// `tags` (instances only), and returns their ids. For decoys that `kill` must not touch.
    pub fn run_instances(&self, region: &str, count: usize, tags: &[(&str, &str)]) -> Vec<String> {
        let image = self.amazon_linux_image(region);
        let count = count.to_string();
        let mut params: Vec<(String, String)> = vec![
            ("ImageId".into(), image),
            ("InstanceType".into(), "t3.micro".into()),
            ("MinCount".into(), count.clone()),
            ("MaxCount".into(), count),
        ];
        if !tags.is_empty() {
            params.push(("TagSpecification.1.ResourceType".into(), "instance".into()));
            for (n, (k, v)) in tags.iter().enumerate() {
                params.push((
                    format!("TagSpecification.1.Tag.{}.Key", n + 1),
                    k.to_string(),
                ));
                params.push((
                    format!("TagSpecification.1.Tag.{}.Value", n + 1),
                    v.to_string(),
                ));
            }
        }
        let xml = self.call_ok(region, "RunInstances", &as_refs(&params));
        let doc = parse(&xml);
        doc.descendants()
            .filter(|n| n.has_tag_name("instanceId"))
            .filter_map(|n| n.text())
            .map(String::from)
            .collect()
    }

    /// The id of an x86_64 Amazon Linux 2023 image in `region`.
    pub fn amazon_linux_image(&self, region: &str) -> String {
        let params = filter_params(&[("name", "al2023-ami-2023.*-kernel-6.1-x86_64")]);
        let xml = self.call_ok(region, "DescribeImages", &as_refs(&params));
        let doc = parse(&xml);
        doc.descendants()
            .find(|n| n.has_tag_name("imageId"))
            .and_then(|n| n.text())
            .unwrap_or_else(|| panic!("moto knows no Amazon Linux 2023 image in {region}"))
            .to_string()
    }
}

/// `Filter.N.Name` / `Filter.N.Value.1` parameters, one value per filter.
fn filter_params(filters: &[(&str, &str)]) -> Vec<(String, String)> {
    filters
        .iter()
        .enumerate()
        .flat_map(|(n, (name, value))| {
            [
                (format!("Filter.{}.Name", n + 1), name.to_string()),
                (format!("Filter.{}.Value.1", n + 1), value.to_string()),
            ]
        })
        .collect()
}

fn as_refs(params: &[(String, String)]) -> Vec<(&str, &str)> {
    params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

pub(super) fn parse(xml: &str) -> Document<'_> {
    Document::parse(xml).unwrap_or_else(|e| panic!("moto answered malformed XML ({e}): {xml}"))
}

pub(super) fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| c.has_tag_name(name))
}

/// Text of the direct child `name`, empty when absent.
pub(super) fn text(node: Node, name: &str) -> String {
    child(node, name)
        .and_then(|c| c.text())
        .unwrap_or_default()
        .to_string()
}

/// The `<item>` children of a `...Set` element.
fn items<'a, 'i>(set: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    set.children().filter(|c| c.has_tag_name("item"))
}

/// The direct `tagSet` of a resource as a map.
fn tags(node: Node) -> BTreeMap<String, String> {
    child(node, "tagSet")
        .map(|set| {
            items(set)
                .map(|t| (text(t, "key"), text(t, "value")))
                .collect()
        })
        .unwrap_or_default()
}

/// Flattens `ipPermissions` into one [`Rule`] per IPv4 range.
fn rules(permissions: Node) -> Vec<Rule> {
    let mut rules: Vec<Rule> = items(permissions)
        .flat_map(|p| {
            let (protocol, from_port, to_port) = (
                text(p, "ipProtocol"),
                text(p, "fromPort"),
                text(p, "toPort"),
            );
            child(p, "ipRanges")
                .into_iter()
                .flat_map(items)
                .map(move |r| Rule {
                    protocol: protocol.clone(),
                    from_port: from_port.clone(),
                    to_port: to_port.clone(),
                    cidr: text(r, "cidrIp"),
                })
                .collect::<Vec<_>>()
        })
        .collect();
    rules.sort();
    rules
}
