//! The managed AWS Application Load Balancer beside elb's own, for comparison: the seed's
//! `aws_lb.py` as one idempotent command. [`up`] finds what exists by name and tag and
//! reconciles it (creating only what is missing), [`status`] reads target health as the ALB
//! reports it, [`down`] removes what `up` made, and [`join`]/[`leave`] keep a cluster's target
//! group in step with `elb launch` and `elb kill --cluster`.
//!
//! What `up` makes, all tagged at creation (`Project`, `ManagedBy`, `Name`, and `Cluster` on
//! target groups):
//! - the security group `<project>-alb` (port 80 from the client CIDR), and port 8000 of the
//!   agents' group `<project>-agents` opened to it (a group-to-group rule);
//! - the internet-facing load balancer `<project>-alb` in the default VPC's default subnets (one
//!   per availability zone, at least two);
//! - one target group `<project>-<cluster>` per cluster the routing names (HTTP:8000, the
//!   health check, the deregistration delay), every running instance of the cluster registered;
//! - a listener on port 80 whose default action and rules follow the [`Routing`];
//! - with `--https-cert`/`--https-key` (or `--https-certificate-arn`), an HTTPS listener with the
//!   same default action and rules, the given security policy, the first certificate as its
//!   default and the others for SNI; certificates given as files are imported into ACM, tagged,
//!   and found again by fingerprint on the next run.

mod report;

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

pub use report::{AlbReport, GroupReport, StatusReport};

use crate::cloud::ec2::acm::CertificatePem;
use crate::cloud::ec2::elbv2::{
    AlbAction, HealthCheck, Inventory, Listener, ListenerProtocol, LoadBalancing, LISTENER_PORT,
};
use crate::cloud::ec2::Ec2;
use crate::cloud::firewall::{Cidr, Rule};
use crate::cloud::{security_group_name, Instance};
use crate::progress::Progress;
use crate::routing::{Routing, RuleAction};
use crate::Error;
use proto::balancer_config::StickinessKind;
use proto::AGENT_PORT;

/// Longest name ELBv2 accepts for a load balancer or target group.
const MAX_NAME_LEN: usize = 32;

/// What `elb alb up` asks for.
#[derive(Debug, Clone)]
pub struct AlbSpec {
    /// Which cluster serves which path.
    pub routing: Routing,
    /// Who may reach port 80.
    pub client_cidr: Cidr,
    /// The target groups' health check.
    pub health: HealthCheck,
    /// Seconds a deregistered target keeps draining.
    pub deregistration_delay: u32,
    /// How long a new target's share ramps up (ALB's slow start; zero: off).
    pub slow_start: Duration,
    /// The target groups' stickiness, if any.
    pub stickiness: Option<proto::balancer_config::Stickiness>,
    /// How long to wait for the load balancer to be active and its targets healthy (zero: do
    /// not wait for the targets), and how often to look.
    pub wait: Duration,
    /// Time between two looks while waiting.
    pub poll: Duration,
    /// The HTTPS listener, when asked for.
    pub https: Option<AlbHttps>,
}

/// The HTTPS listener `up` makes beside port 80.
#[derive(Debug, Clone)]
pub struct AlbHttps {
    /// Its port.
    pub port: u16,
    /// ELBv2's security policy name.
    pub policy: String,
    /// Its certificates, the default first.
    pub certificates: Vec<CertificateSource>,
    /// Whether the port-80 listener redirects every request here instead of routing.
    pub redirect_http: bool,
}

/// Where an HTTPS listener's certificate comes from.
#[derive(Debug, Clone)]
pub enum CertificateSource {
    /// PEM files, imported into ACM (once).
    Files {
        /// The certificate file, for messages.
        path: String,
        /// Its certificate, chain and key.
        pem: CertificatePem,
    },
    /// A certificate already in ACM (or IAM).
    Arn(String),
}

impl AlbSpec {
    /// The target group attributes the spec sets, as ELBv2 names them.
    fn attributes(&self) -> Vec<(&'static str, String)> {
        let mut attributes = vec![
            (
                "deregistration_delay.timeout_seconds",
                self.deregistration_delay.to_string(),
            ),
            (
                "slow_start.duration_seconds",
                self.slow_start.as_secs().to_string(),
            ),
        ];
        let secs = |ms: u64| (ms / 1000).to_string();
        match &self.stickiness {
            None => attributes.push(("stickiness.enabled", "false".into())),
            Some(sticky) => {
                attributes.push(("stickiness.enabled", "true".into()));
                match sticky.kind {
                    StickinessKind::LbCookie => attributes.extend([
                        ("stickiness.type", "lb_cookie".into()),
                        (
                            "stickiness.lb_cookie.duration_seconds",
                            secs(sticky.duration_ms),
                        ),
                    ]),
                    StickinessKind::AppCookie => attributes.extend([
                        ("stickiness.type", "app_cookie".into()),
                        (
                            "stickiness.app_cookie.cookie_name",
                            sticky.cookie_name.clone().unwrap_or_default(),
                        ),
                        (
                            "stickiness.app_cookie.duration_seconds",
                            secs(sticky.duration_ms),
                        ),
                    ]),
                }
            }
        }
        attributes
    }
}

/// The API clients `alb` works through, for one project.
pub struct Apis<'a> {
    /// EC2 (instances, security groups, subnets), with the same project's ELBv2 side.
    pub ec2: &'a Ec2,
    /// The project.
    pub project: &'a str,
}

impl Apis<'_> {
    fn elb(&self) -> &LoadBalancing {
        self.ec2.load_balancing()
    }
}

/// The load balancer's name: `<project>-alb`.
pub fn load_balancer_name(project: &str) -> String {
    format!("{project}-alb")
}

/// The ALB's security group name: `<project>-alb`.
pub fn security_group(project: &str) -> String {
    format!("{project}-alb")
}

/// A cluster's target group name: `<project>-<cluster>`.
pub fn target_group_name(project: &str, cluster: &str) -> String {
    format!("{project}-{cluster}")
}

/// Checks, before any call, that every name `up` would give fits ELBv2's rules: at most 32
/// letters, digits and hyphens, not starting or ending with a hyphen.
pub fn check_names(project: &str, routing: &Routing) -> Result<(), Error> {
    let names = std::iter::once(load_balancer_name(project)).chain(
        routing
            .clusters()
            .into_iter()
            .map(|c| target_group_name(project, c)),
    );
    for name in names {
        let ok = name.len() <= MAX_NAME_LEN
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if !ok {
            return Err(Error::Usage(format!(
                "`{name}` cannot name an ALB or target group: ELBv2 takes at most \
                 {MAX_NAME_LEN} letters, digits and hyphens. Use a shorter --project or cluster \
                 name without `.` or `_`"
            )));
        }
    }
    Ok(())
}

/// The project's running instances, by cluster.
async fn running(apis: &Apis<'_>, cluster: Option<&str>) -> Result<Vec<Instance>, Error> {
    Ok(apis
        .ec2
        .project_instances(cluster, false)
        .await?
        .into_iter()
        .filter(|i| i.state == "running")
        .collect())
}

/// Creates or reconciles the ALB of `spec`; returns what exists afterwards. Nothing is created
/// twice: a second run registers new instances, deregisters gone ones and fixes rules and
/// attributes.
pub async fn up(apis: &Apis<'_>, spec: &AlbSpec) -> Result<AlbReport, Error> {
    let instances = running(apis, None).await?;
    let clusters: BTreeSet<String> = instances.iter().map(|i| i.cluster.clone()).collect();
    spec.routing.check_clusters(&clusters, &[])?;

    let network = apis.ec2.network(None).await?;
    let subnets = apis.ec2.default_subnets(&network.vpc_id).await?;
    if subnets.len() < 2 {
        return Err(Error::Usage(format!(
            "an application load balancer needs subnets in at least two availability zones, and \
             the default VPC {} has default subnets in {}: pick a --region with two or more \
             zones (or create a default subnet in another zone with `aws ec2 \
             create-default-subnet --availability-zone <zone>`)",
            network.vpc_id,
            match subnets.first() {
                Some((_, az)) => format!("only {az}"),
                None => "none".to_owned(),
            }
        )));
    }

    let group = apis
        .ec2
        .ensure_group(
            &security_group(apis.project),
            "elb's managed ALB",
            &network.vpc_id,
            &std::iter::once(LISTENER_PORT)
                .chain(spec.https.as_ref().map(|h| h.port))
                .map(|port| Rule {
                    port,
                    cidr: spec.client_cidr.to_string(),
                })
                .collect::<Vec<_>>(),
        )
        .await?;
    let agents = apis
        .ec2
        .group_id(&security_group_name(apis.project), &network.vpc_id)
        .await?
        .ok_or_else(|| {
            Error::Usage(format!(
                "the agents' security group {} is missing although instances run: relaunch \
                 them with `elb launch` (which creates it)",
                security_group_name(apis.project)
            ))
        })?;
    apis.ec2
        .allow_from_group(&agents, AGENT_PORT, &group.id)
        .await?;

    let name = load_balancer_name(apis.project);
    let lb = match apis.elb().find_load_balancer(&name).await? {
        Some(lb) => {
            apis.ec2
                .note(format!("load balancer {name}: exists ({})", lb.state));
            lb
        }
        None => {
            let subnet_ids: Vec<String> = subnets.iter().map(|(id, _)| id.clone()).collect();
            let lb = apis
                .elb()
                .create_load_balancer(&name, &subnet_ids, &group.id)
                .await?;
            apis.ec2.note(format!(
                "load balancer {name}: created in {}",
                subnets
                    .iter()
                    .map(|(_, az)| az.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            lb
        }
    };
    let lb = apis
        .elb()
        .wait_active(&lb.arn, spec.poll, spec.wait.max(spec.poll))
        .await?;

    let mut groups = Vec::new();
    for cluster in spec.routing.clusters() {
        let members: Vec<String> = instances
            .iter()
            .filter(|i| i.cluster == cluster)
            .map(|i| i.id.clone())
            .collect();
        let arn = ensure_target_group(apis, spec, &network.vpc_id, cluster).await?;
        sync_targets(apis, &arn, &members).await?;
        groups.push((cluster.to_owned(), arn));
    }
    let arn_of = |cluster: &str| {
        groups
            .iter()
            .find(|(c, _)| c == cluster)
            .map(|(_, arn)| arn.clone())
            .unwrap_or_default()
    };
    let http = Listening {
        port: LISTENER_PORT,
        protocol: ListenerProtocol::Http,
        sni: Vec::new(),
        redirect: spec
            .https
            .as_ref()
            .filter(|https| https.redirect_http)
            .map(|https| proto::balancer_config::Redirect {
                status: 301,
                protocol: Some("HTTPS".into()),
                port: Some(https.port.to_string()),
                ..proto::balancer_config::Redirect::default()
            }),
    };
    // The listeners as they were: each wanted one is found on its port, the others go.
    let existing = apis.elb().listeners(&lb.arn).await?;
    ensure_listener(apis, &lb.arn, &existing, &http, &spec.routing, &arn_of).await?;
    let https = match &spec.https {
        Some(https) => {
            let listening = https_listener(apis, https).await?;
            ensure_listener(apis, &lb.arn, &existing, &listening, &spec.routing, &arn_of).await?;
            Some(listening)
        }
        None => None,
    };
    remove_other_listeners(apis, &existing, https.as_ref().map(|h| h.port)).await?;

    let health = if spec.wait.is_zero() {
        None
    } else {
        Some(wait_healthy(apis, &groups, spec).await?)
    };
    Ok(AlbReport::new(
        lb,
        &spec.routing,
        &groups,
        https.as_ref().map(report::HttpsReport::of),
        health,
    ))
}

/// Finds or creates `cluster`'s target group and sets its health check and deregistration
/// delay to the spec's where they differ. Returns its ARN.
async fn ensure_target_group(
    apis: &Apis<'_>,
    spec: &AlbSpec,
    vpc_id: &str,
    cluster: &str,
) -> Result<String, Error> {
    let name = target_group_name(apis.project, cluster);
    let arn = match apis.elb().find_target_group(&name).await? {
        Some(group) => {
            if group.health != spec.health {
                apis.elb()
                    .modify_health_check(&group.arn, &spec.health)
                    .await?;
                apis.ec2
                    .note(format!("target group {name}: health check updated"));
            }
            group.arn
        }
        None => {
            let arn = apis
                .elb()
                .create_target_group(&name, cluster, vpc_id, AGENT_PORT, &spec.health)
                .await?;
            apis.ec2.note(format!("target group {name}: created"));
            arn
        }
    };
    let have = apis.elb().attributes(&arn).await?;
    let changed: Vec<(&str, String)> = spec
        .attributes()
        .into_iter()
        .filter(|(key, value)| have.get(*key) != Some(value))
        .collect();
    apis.elb().set_attributes(&arn, &changed).await?;
    if !changed.is_empty() {
        let keys: Vec<&str> = changed.iter().map(|(k, _)| *k).collect();
        apis.ec2
            .note(format!("target group {name}: {} set", keys.join(", ")));
    }
    Ok(arn)
}

/// Registers the `members` a group lacks and deregisters the targets that are no longer
/// members (they drain). Returns how many were registered and deregistered.
async fn sync_targets(
    apis: &Apis<'_>,
    arn: &str,
    members: &[String],
) -> Result<(usize, usize), Error> {
    let registered: Vec<String> = apis
        .elb()
        .target_health(arn)
        .await?
        .into_iter()
        .filter(|t| t.state != "draining")
        .map(|t| t.id)
        .collect();
    let missing: Vec<String> = members
        .iter()
        .filter(|id| !registered.contains(id))
        .cloned()
        .collect();
    let gone: Vec<String> = registered
        .iter()
        .filter(|id| !members.contains(id))
        .cloned()
        .collect();
    apis.elb().register(arn, &missing, AGENT_PORT).await?;
    apis.elb().deregister(arn, &gone, AGENT_PORT).await?;
    if !missing.is_empty() || !gone.is_empty() {
        apis.ec2.note(format!(
            "targets: {} registered, {} deregistered",
            missing.len(),
            gone.len()
        ));
    }
    Ok((missing.len(), gone.len()))
}

/// A listener as `up` wants it.
#[derive(Debug, Clone)]
pub struct Listening {
    /// Its port.
    pub port: u16,
    /// HTTP, or HTTPS with its policy and default certificate.
    pub protocol: ListenerProtocol,
    /// An HTTPS listener's other certificates (chosen by SNI).
    pub sni: Vec<String>,
    /// A redirect of every request instead of the routing (its default action, and no rules).
    pub redirect: Option<proto::balancer_config::Redirect>,
}

/// The HTTPS listener of `https`: certificate files imported into ACM (or found there from an
/// earlier run), ARNs taken as they are.
async fn https_listener(apis: &Apis<'_>, https: &AlbHttps) -> Result<Listening, Error> {
    let mut arns = Vec::with_capacity(https.certificates.len());
    for source in &https.certificates {
        let arn = match source {
            CertificateSource::Arn(arn) => arn.clone(),
            CertificateSource::Files { path, pem } => {
                let name = load_balancer_name(apis.project);
                let (arn, imported) = apis.elb().ensure_certificate(pem, &name).await?;
                let how = if imported {
                    "imported into ACM"
                } else {
                    "in ACM"
                };
                apis.ec2.note(format!("certificate {path}: {how} as {arn}"));
                arn
            }
        };
        arns.push(arn);
    }
    let mut arns = arns.into_iter();
    let default = arns.next().ok_or_else(|| {
        Error::Usage(
            "an HTTPS listener needs a certificate: give --https-cert and --https-key".into(),
        )
    })?;
    Ok(Listening {
        port: https.port,
        protocol: ListenerProtocol::Https {
            policy: https.policy.clone(),
            certificate_arn: default,
        },
        sni: arns.collect(),
        redirect: None,
    })
}

/// Deletes the listeners of `existing` that `up` no longer wants: any but port 80 and the
/// HTTPS port (an HTTPS listener from an earlier run with `--https-cert`, say).
async fn remove_other_listeners(
    apis: &Apis<'_>,
    existing: &[Listener],
    https_port: Option<u16>,
) -> Result<(), Error> {
    for listener in existing {
        if listener.port != LISTENER_PORT && Some(listener.port) != https_port {
            apis.elb().delete_listener(&listener.arn).await?;
            apis.ec2.note(format!(
                "listener :{} ({}): removed",
                listener.port, listener.protocol
            ));
        }
    }
    Ok(())
}

/// Makes the listener on `want.port` (one of `existing`, else a new one on `lb_arn`) terminate
/// as `want` says and forward as `routing` says: the default action to the default cluster's
/// group, one rule per path rule at its priority; rules not in the routing go, and so do SNI
/// certificates not wanted.
async fn ensure_listener(
    apis: &Apis<'_>,
    lb_arn: &str,
    existing: &[Listener],
    want: &Listening,
    routing: &Routing,
    arn_of: &dyn Fn(&str) -> String,
) -> Result<(), Error> {
    let port = want.port;
    let default = normalized(&match &want.redirect {
        Some(redirect) => AlbAction::Redirect(redirect.clone()),
        None => alb_action(&routing.default, arn_of),
    });
    let describe_default = || match &want.redirect {
        Some(_) => "a redirect to HTTPS".to_owned(),
        None => routing.default.describe(),
    };
    let listener = existing.iter().find(|l| l.port == port);
    let name = load_balancer_name(apis.project);
    let listener_arn = match listener {
        Some(l) => {
            if !want.protocol.matches(l) {
                apis.elb().set_protocol(&l.arn, &want.protocol).await?;
                apis.ec2.note(format!(
                    "listener :{port}: now {}",
                    describe_protocol(&want.protocol)
                ));
            }
            if l.default_action.as_ref() != Some(&default) {
                apis.elb().set_default_action(&l.arn, &default).await?;
                apis.ec2.note(format!(
                    "listener :{port}: default now {}",
                    describe_default()
                ));
            }
            l.arn.clone()
        }
        None => {
            let arn = apis
                .elb()
                .create_listener(lb_arn, &name, port, &want.protocol, &default)
                .await?;
            apis.ec2.note(format!(
                "listener :{port}: created, {}, default {}",
                describe_protocol(&want.protocol),
                describe_default()
            ));
            arn
        }
    };
    if matches!(want.protocol, ListenerProtocol::Https { .. }) {
        let have = apis.elb().sni_certificates(&listener_arn).await?;
        let missing: Vec<String> = want
            .sni
            .iter()
            .filter(|a| !have.contains(a))
            .cloned()
            .collect();
        let extra: Vec<String> = have
            .iter()
            .filter(|a| !want.sni.contains(a))
            .cloned()
            .collect();
        let elb = apis.elb();
        elb.change_sni_certificates(&listener_arn, &missing, true)
            .await?;
        elb.change_sni_certificates(&listener_arn, &extra, false)
            .await?;
        if !missing.is_empty() || !extra.is_empty() {
            apis.ec2.note(format!(
                "listener :{port}: {} SNI certificate(s) added, {} removed",
                missing.len(),
                extra.len()
            ));
        }
    }
    let existing = apis.elb().rules(&listener_arn).await?;
    // A redirecting listener has no rules: its default action takes every request.
    let wanted: &[crate::routing::PathRule] = if want.redirect.is_some() {
        &[]
    } else {
        &routing.rules
    };
    for rule in &existing {
        if !wanted.iter().any(|r| r.priority == rule.priority) {
            apis.elb().delete_rule(&rule.arn).await?;
            apis.ec2
                .note(format!("listener :{port}: rule {} removed", rule.priority));
        }
    }
    for rule in wanted {
        let target = normalized(&alb_action(&rule.action, arn_of));
        match existing.iter().find(|r| r.priority == rule.priority) {
            Some(have)
                if have.patterns == [rule.pattern.clone()]
                    && have.conditions == rule.conditions
                    && have.action.as_ref() == Some(&target) => {}
            Some(have) => {
                apis.elb()
                    .modify_rule(&have.arn, (&rule.pattern, &rule.conditions), &target)
                    .await?;
                apis.ec2.note(format!(
                    "listener :{port}: rule {} now {} -> {}",
                    rule.priority,
                    rule.pattern,
                    rule.action.describe()
                ));
            }
            None => {
                apis.elb()
                    .create_rule(
                        &listener_arn,
                        rule.priority,
                        (&rule.pattern, &rule.conditions),
                        &target,
                        &name,
                    )
                    .await?;
                apis.ec2.note(format!(
                    "listener :{port}: rule {} {} -> {}",
                    rule.priority,
                    rule.pattern,
                    rule.action.describe()
                ));
            }
        }
    }
    Ok(())
}

/// A rule's action for ELBv2, clusters by their groups' ARNs; a weighted forward to one group
/// (or with one weight above 0 alone) is the plain forward ELBv2 reads back.
fn alb_action(action: &RuleAction, arn_of: &dyn Fn(&str) -> String) -> AlbAction {
    match action {
        RuleAction::Forward(cluster) => AlbAction::Forward(arn_of(cluster)),
        RuleAction::Weighted {
            groups,
            stickiness_ms,
        } => {
            let groups: Vec<(String, u32)> = groups
                .iter()
                .map(|g| (arn_of(&g.group), g.weight))
                .collect();
            match &groups[..] {
                [(arn, _)] => AlbAction::Forward(arn.clone()),
                _ => AlbAction::Weighted {
                    groups,
                    stickiness_secs: (*stickiness_ms > 0).then(|| stickiness_ms / 1000),
                },
            }
        }
        RuleAction::Redirect(redirect) => AlbAction::Redirect(redirect.clone()),
        RuleAction::Fixed(fixed) => AlbAction::Fixed(fixed.clone()),
    }
}

/// An action as ELBv2 reads it back: a redirect with every part filled in, a fixed response
/// with its content type (ELBv2's default `text/plain`).
fn normalized(action: &AlbAction) -> AlbAction {
    match action {
        AlbAction::Redirect(redirect) => AlbAction::Redirect(redirect.filled()),
        AlbAction::Fixed(fixed) => AlbAction::Fixed(proto::balancer_config::FixedResponse {
            content_type: Some(
                fixed
                    .content_type
                    .clone()
                    .unwrap_or_else(|| "text/plain".into()),
            ),
            body: fixed.body.clone().filter(|b| !b.is_empty()),
            status: fixed.status,
        }),
        other => other.clone(),
    }
}

/// `HTTP`, or `HTTPS (policy)`, for notes.
fn describe_protocol(protocol: &ListenerProtocol) -> String {
    match protocol {
        ListenerProtocol::Http => "HTTP".to_owned(),
        ListenerProtocol::Https { policy, .. } => format!("HTTPS ({policy})"),
    }
}

/// Polls every group's target health until all targets are healthy or `spec.wait` is over,
/// showing progress. Returns the last reading either way: an unhealthy target is reported with
/// its reason, not waited on forever.
async fn wait_healthy(
    apis: &Apis<'_>,
    groups: &[(String, String)],
    spec: &AlbSpec,
) -> Result<Vec<GroupReport>, Error> {
    let deadline = Instant::now() + spec.wait;
    let mut progress: Option<Progress> = None;
    loop {
        let reading = read_health(apis, groups).await?;
        let total: usize = reading.iter().map(|g| g.targets.len()).sum();
        let healthy: usize = reading.iter().map(GroupReport::healthy).sum();
        progress
            .get_or_insert_with(|| Progress::new("health checks", "healthy", total))
            .update(healthy, total);
        if healthy == total || Instant::now() >= deadline {
            if let Some(p) = progress.take() {
                p.finish();
            }
            return Ok(reading);
        }
        tokio::time::sleep(spec.poll).await;
    }
}

async fn read_health(
    apis: &Apis<'_>,
    groups: &[(String, String)],
) -> Result<Vec<GroupReport>, Error> {
    let mut reports = Vec::with_capacity(groups.len());
    for (cluster, arn) in groups {
        reports.push(GroupReport {
            cluster: cluster.clone(),
            target_group: target_group_name(apis.project, cluster),
            targets: apis.elb().target_health(arn).await?,
        });
    }
    Ok(reports)
}

/// The project's target groups as `(cluster, arn)`, from the tagged inventory.
fn project_groups(project: &str, inventory: &Inventory) -> Vec<(String, String)> {
    let prefix = format!("{project}-");
    inventory
        .target_groups
        .iter()
        .filter_map(|(arn, name)| Some((name.strip_prefix(&prefix)?.to_owned(), arn.clone())))
        .collect()
}

/// Every target of every project target group with its health as the ALB reports it.
pub async fn status(apis: &Apis<'_>) -> Result<StatusReport, Error> {
    let name = load_balancer_name(apis.project);
    let lb = apis.elb().find_load_balancer(&name).await?.ok_or_else(|| {
        Error::Usage(format!(
            "project {} has no ALB ({name}): `elb alb up` creates it",
            apis.project
        ))
    })?;
    let inventory = apis.elb().inventory().await?;
    let groups = project_groups(apis.project, &inventory);
    Ok(StatusReport {
        load_balancer: lb,
        groups: read_health(apis, &groups).await?,
    })
}

/// Removes what `up` made, in dependency order: listeners, the load balancer (waiting until it
/// is gone), the target groups, the agents' rule that names the ALB's group, then that group.
pub async fn down(apis: &Apis<'_>, timeout: Duration, poll: Duration) -> Result<usize, Error> {
    let inventory = apis.elb().inventory().await?;
    let deadline = Instant::now() + timeout;
    let removed = apis.elb().delete(&inventory, poll, deadline).await?;
    let network = apis.ec2.network(None).await?;
    let mut groups = 0;
    if let Some(alb_group) = apis
        .ec2
        .group_id(&security_group(apis.project), &network.vpc_id)
        .await?
    {
        if let Some(agents) = apis
            .ec2
            .group_id(&security_group_name(apis.project), &network.vpc_id)
            .await?
        {
            apis.ec2
                .revoke_from_group(&agents, AGENT_PORT, &alb_group)
                .await?;
        }
        apis.ec2.delete_security_group(&alb_group, deadline).await?;
        apis.ec2.note(format!(
            "deleted security group {alb_group} ({})",
            security_group(apis.project)
        ));
        groups = 1;
    }
    Ok(removed + groups)
}

/// After `elb launch` of `cluster`: registers `instances` in the cluster's target group when
/// the project has an ALB with one. Returns how many were registered.
pub async fn join(apis: &Apis<'_>, cluster: &str, instances: &[Instance]) -> Result<usize, Error> {
    let Some(group) = cluster_group(apis, cluster).await? else {
        return Ok(0);
    };
    let members: Vec<String> = running(apis, Some(cluster))
        .await?
        .into_iter()
        .map(|i| i.id)
        .chain(instances.iter().map(|i| i.id.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let (added, _) = sync_targets(apis, &group, &members).await?;
    Ok(added)
}

/// Before `elb kill --cluster`: deregisters `instances` from the cluster's target group when the
/// project has an ALB with one, so they drain instead of failing checks. Returns how many.
pub async fn leave(apis: &Apis<'_>, cluster: &str, instances: &[Instance]) -> Result<usize, Error> {
    let Some(group) = cluster_group(apis, cluster).await? else {
        return Ok(0);
    };
    let ids: Vec<String> = instances.iter().map(|i| i.id.clone()).collect();
    apis.elb().deregister(&group, &ids, AGENT_PORT).await?;
    if !ids.is_empty() {
        apis.ec2.note(format!(
            "ALB: {} target(s) of {cluster} deregistered",
            ids.len()
        ));
    }
    Ok(ids.len())
}

/// The cluster's target group when the project has an ALB.
async fn cluster_group(apis: &Apis<'_>, cluster: &str) -> Result<Option<String>, Error> {
    if apis
        .elb()
        .find_load_balancer(&load_balancer_name(apis.project))
        .await?
        .is_none()
    {
        return Ok(None);
    }
    Ok(apis
        .elb()
        .find_target_group(&target_group_name(apis.project, cluster))
        .await?
        .map(|g| g.arn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_elbv2_refuses_are_caught_before_any_call() {
        assert!(check_names("elb-from-scratch", &Routing::seed()).is_ok());
        let err = check_names("my_project", &Routing::seed()).unwrap_err();
        assert!(err.to_string().contains("my_project-alb"), "{err}");
        let long = "p".repeat(25);
        let err = check_names(&long, &Routing::seed()).unwrap_err();
        assert!(err.to_string().contains("32"), "{err}");
    }

    #[test]
    fn project_groups_are_named_after_their_cluster() {
        let inventory = Inventory {
            target_groups: vec![
                ("arn:1".into(), "p-cluster1".into()),
                ("arn:2".into(), "other".into()),
            ],
            ..Inventory::default()
        };
        assert_eq!(
            project_groups("p", &inventory),
            [("cluster1".to_owned(), "arn:1".to_owned())]
        );
    }
}
