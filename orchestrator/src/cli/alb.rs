//! `elb alb up|status|down`: the managed AWS ALB beside elb's own balancer (EC2 only).

use std::time::Duration;

use clap::{Args, Subcommand};

use crate::alb::{self, AlbHttps, AlbSpec, Apis, CertificateSource};
use crate::cloud::ec2::acm::CertificatePem;
use crate::cloud::ec2::elbv2::{HealthCheck, LISTENER_PORT};
use crate::cloud::ec2::Ec2;
use crate::cloud::firewall::Cidr;
use crate::config::{Provider, Settings};
use crate::routing::Routing;
use crate::Error;
use proto::balancer_config::{Stickiness, StickinessKind};

/// The `alb` subcommands.
#[derive(Debug, Subcommand)]
pub enum AlbCommand {
    /// Create the ALB, or reconcile the one that exists, and wait until its targets are healthy.
    Up(Box<UpArgs>),
    /// Each target's health as the ALB reports it (state, reason, description).
    Status,
    /// Remove the ALB, its listener, rules and target groups, and its security group.
    Down(DownArgs),
}

/// Flags of `elb alb`.
#[derive(Debug, Args)]
pub struct AlbArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AlbCommand,
}

/// The routing flags shared by `elb alb up` and `elb balance up`.
#[derive(Debug, Clone, Args)]
pub struct RoutingArgs {
    /// A rule PATTERN[;CONDITION]...=ACTION: an ALB `path-pattern` (`*`, `?`,
    /// case-sensitive), then ALB's other conditions, each after `;`: method=POST,PUT,
    /// header=NAME:PATTERN[,...], query=[KEY=]PATTERN[,...], source=CIDR[,...]. The action: a
    /// cluster, weighted clusters (blue:95,green:5), redirect:301:URL (with #{host}, #{path},
    /// ...) or fixed-response:STATUS[:TYPE[:BODY]]. Repeatable, priorities 10, 20, ... in the
    /// order given. Default: the seed's rules, /cluster1* -> cluster1, /cluster2* -> cluster2.
    #[arg(long = "rule", value_name = "PATTERN[;CONDITION]...=ACTION")]
    pub rules: Vec<String>,
    /// What requests no rule matches get: a cluster, or fixed-response:STATUS[:TYPE[:BODY]]
    /// (default: cluster1, or the first rule's cluster).
    #[arg(long = "default", value_name = "CLUSTER|fixed-response:...")]
    pub default: Option<String>,
    /// ALB's fixed-response as the default action: requests no rule matches get STATUS (2XX,
    /// 4XX or 5XX) with an optional content type (text/plain, text/html, ...) and body, e.g.
    /// a maintenance page: --fixed-response '503:text/plain:Back soon'. Same as --default
    /// fixed-response:...
    #[arg(long, value_name = "STATUS[:TYPE[:BODY]]", conflicts_with = "default")]
    pub fixed_response: Option<String>,
}

impl RoutingArgs {
    /// The routing these flags give, checked.
    pub(crate) fn routing(&self) -> Result<Routing, Error> {
        let fixed = self
            .fixed_response
            .as_ref()
            .map(|f| format!("fixed-response:{f}"));
        Routing::from_flags(&self.rules, fixed.as_deref().or(self.default.as_deref()))
    }
}

/// Flags of `elb alb up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Who may reach the ALB's port 80.
    #[arg(long, default_value = "0.0.0.0/0", value_parser = clap::value_parser!(Cidr))]
    pub client_cidr: Cidr,
    /// Path the target groups' health check requests.
    #[arg(long, default_value = "/healthz")]
    pub health_path: String,
    /// Seconds between two health checks of a target (ELBv2: 5 to 300).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(5..=300))]
    pub interval: u32,
    /// Seconds a health check may take (ELBv2: 2 to 120, below --interval).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..=120))]
    pub health_timeout: u32,
    /// Passing checks in a row before a target is healthy (2 to 10).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..=10))]
    pub healthy: u32,
    /// Failing checks in a row before a target is unhealthy (2 to 10).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..=10))]
    pub unhealthy: u32,
    /// Seconds a deregistered target keeps draining (ELBv2: 0 to 3600; ALB's own default is
    /// 300, too slow for experiments).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub deregistration_delay: u32,
    /// Seconds to wait for the load balancer to be active and every target healthy (0: do not
    /// wait for the targets).
    #[arg(long, default_value_t = 300)]
    pub wait: u64,
    /// Milliseconds between two looks while waiting.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub poll_interval_ms: u64,
    /// The path rules and the default.
    #[command(flatten)]
    pub routing: RoutingArgs,
    /// Target group settings.
    #[command(flatten)]
    pub group: GroupArgs,
    /// HTTPS, as `elb balance up` takes it: the certificates are imported into ACM.
    #[command(flatten)]
    pub https: super::balance::HttpsArgs,
    /// A certificate already in ACM for the HTTPS listener (repeatable; after the
    /// --https-cert files; the first certificate given is the default, the others are for SNI).
    #[arg(long = "https-certificate-arn", value_name = "ARN")]
    pub https_certificate_arn: Vec<String>,
    /// `elb balance up`'s, refused here with why (hidden: elb's balancer's flag).
    #[arg(long = "access-log", value_name = "PATH", hide = true)]
    pub access_log: Option<std::path::PathBuf>,
}

/// The target group flags shared by `elb alb up` and `elb balance up`.
#[derive(Debug, Clone, Args)]
pub struct GroupArgs {
    /// ALB's slow start: a newly healthy target's share of requests ramps up linearly over this
    /// long (0 or 30s to 15m, ALB's range; e.g. 60s). Default: off.
    #[arg(long, value_name = "DURATION", value_parser = super::values::parse_duration)]
    pub slow_start: Option<Duration>,
    /// ALB's stickiness: `lb_cookie:DURATION` (the balancer's own cookie, e.g. lb_cookie:1h)
    /// or `app_cookie:NAME:DURATION` (following the application's cookie NAME). Default: off.
    #[arg(long, value_name = "lb_cookie:DURATION|app_cookie:NAME:DURATION")]
    pub stickiness: Option<String>,
}

impl GroupArgs {
    /// The stickiness asked for, checked as elb's balancer checks it (ALB's rules).
    pub(crate) fn stickiness(&self) -> Result<Option<Stickiness>, Error> {
        let Some(text) = &self.stickiness else {
            return Ok(None);
        };
        let usage = |why: String| {
            Error::Usage(format!(
                "--stickiness {text}: {why}; write lb_cookie:DURATION (e.g. lb_cookie:1h) or \
                 app_cookie:NAME:DURATION (e.g. app_cookie:session:1h)"
            ))
        };
        let (kind, cookie_name, duration) = match text.split(':').collect::<Vec<_>>()[..] {
            ["lb_cookie", duration] => (StickinessKind::LbCookie, None, duration),
            ["app_cookie", name, duration] => {
                (StickinessKind::AppCookie, Some(name.to_owned()), duration)
            }
            _ => return Err(usage("not a stickiness".into())),
        };
        let duration = super::values::parse_duration(duration).map_err(usage)?;
        let stickiness = Stickiness {
            kind,
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            cookie_name,
        };
        balancer::check_stickiness(&stickiness).map_err(usage)?;
        Ok(Some(stickiness))
    }

    /// The slow start asked for, in ALB's range.
    pub(crate) fn slow_start(&self) -> Result<Duration, Error> {
        let ramp = self.slow_start.unwrap_or_default();
        let secs = ramp.as_secs();
        if !ramp.is_zero() && (!(30..=900).contains(&secs) || ramp.subsec_nanos() != 0) {
            return Err(Error::Usage(format!(
                "--slow-start {ramp:?}: ALB ramps new targets for 30 s to 15 min in whole \
                 seconds (or 0 for none); e.g. --slow-start 60s"
            )));
        }
        Ok(ramp)
    }
}

/// Flags of `elb alb down`.
#[derive(Debug, Args)]
pub struct DownArgs {
    /// Seconds to wait for the load balancer to go and its groups to be free.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Milliseconds between two looks while waiting.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub poll_interval_ms: u64,
}

impl UpArgs {
    /// The spec these flags give, checked before any call.
    fn spec(&self, project: &str) -> Result<AlbSpec, Error> {
        if self.access_log.is_some() {
            return Err(Error::Usage(
                "--access-log is for `elb balance up`: an ALB writes its access logs to an S3 \
                 bucket (its access_logs.s3.* attributes, a bucket policy for the region's ELB \
                 account), which elb does not manage. Turn them on in the console or with `aws \
                 elbv2 modify-load-balancer-attributes`; elb's balancer writes the same format to \
                 a file"
                    .into(),
            ));
        }
        let https = self.https()?;
        let routing = self.routing.routing()?;
        alb::check_names(project, &routing)?;
        if !self.health_path.starts_with('/') || self.health_path.len() > 1024 {
            return Err(Error::Usage(format!(
                "--health-path `{}` must be a path starting with `/` (e.g. /healthz)",
                self.health_path
            )));
        }
        if self.health_timeout >= self.interval {
            return Err(Error::Usage(format!(
                "--health-timeout {} must be below --interval {}: a check must end before the \
                 next one starts",
                self.health_timeout, self.interval
            )));
        }
        Ok(AlbSpec {
            routing,
            client_cidr: self.client_cidr.clone(),
            health: HealthCheck {
                path: self.health_path.clone(),
                interval_secs: self.interval,
                timeout_secs: self.health_timeout,
                healthy: self.healthy,
                unhealthy: self.unhealthy,
                matcher: "200".into(),
            },
            deregistration_delay: self.deregistration_delay,
            slow_start: self.group.slow_start()?,
            stickiness: self.group.stickiness()?,
            wait: Duration::from_secs(self.wait),
            poll: Duration::from_millis(self.poll_interval_ms),
            https,
        })
    }

    /// The HTTPS listener the flags ask for: each certificate file checked as elb's balancer
    /// checks it and read for ACM, each ARN one of ACM's (or IAM's) certificates.
    fn https(&self) -> Result<Option<AlbHttps>, Error> {
        let Some(files) = self.https.spec(LISTENER_PORT)? else {
            if self.https_certificate_arn.is_empty() {
                // Refused with why, as `elb balance up` refuses it.
                self.https.http_redirect(false)?;
                return Ok(None);
            }
            return self.https_from(Vec::new());
        };
        let mut certificates = Vec::with_capacity(files.certificates.len());
        for pair in &files.certificates {
            let certificate = proto::balancer_config::Certificate {
                cert: pair.cert.display().to_string(),
                key: pair.key.display().to_string(),
            };
            balancer::check_certificate(&certificate).map_err(Error::Usage)?;
            let read = |path: &std::path::Path| {
                std::fs::read_to_string(path)
                    .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))
            };
            let pem =
                CertificatePem::new(&read(&pair.cert)?, read(&pair.key)?).ok_or_else(|| {
                    Error::Usage(format!(
                    "{}: no PEM certificate block; --https-cert takes a PEM chain, the server's \
                     certificate first",
                    pair.cert.display()
                ))
                })?;
            certificates.push(CertificateSource::Files {
                path: pair.cert.display().to_string(),
                pem,
            });
        }
        self.https_from(certificates)
    }

    /// The HTTPS listener of `files` then the `--https-certificate-arn`s.
    fn https_from(
        &self,
        mut certificates: Vec<CertificateSource>,
    ) -> Result<Option<AlbHttps>, Error> {
        for arn in &self.https_certificate_arn {
            let service = arn.split(':').nth(2);
            if !arn.starts_with("arn:") || !matches!(service, Some("acm" | "iam")) {
                return Err(Error::Usage(format!(
                    "--https-certificate-arn {arn}: not a certificate ARN; give one of ACM's \
                     (arn:aws:acm:<region>:<account>:certificate/<id>)"
                )));
            }
            certificates.push(CertificateSource::Arn(arn.clone()));
        }
        if self.https.https_port == LISTENER_PORT {
            return Err(Error::Usage(format!(
                "--https-port {LISTENER_PORT} is the ALB's HTTP listener; e.g. --https-port 443"
            )));
        }
        Ok(Some(AlbHttps {
            port: self.https.https_port,
            policy: self.https.tls_policy.name().to_owned(),
            certificates,
            redirect_http: self.https.redirect_http_to_https,
        }))
    }
}

/// The EC2 client (with its ELBv2 side) of the settings' project; the ALB exists only on EC2.
pub(crate) fn client(settings: &Settings) -> Result<Ec2, Error> {
    match &settings.provider {
        Provider::Ec2 { region, aws } => Ok(Ec2::new(aws, region, settings)),
        Provider::Local => Err(Error::Usage(
            "the managed ALB exists only on EC2: drop --local (and ELB_PROVIDER=local); locally, \
             `elb balance` runs elb's own balancer"
                .into(),
        )),
    }
}

/// An `alb` command whose flags were checked before the settings load.
#[derive(Debug)]
pub(crate) enum Checked {
    Up(Box<AlbSpec>),
    Status,
    Down { timeout: Duration, poll: Duration },
}

impl AlbArgs {
    /// Checks everything that can be checked before any call.
    pub(crate) fn validate(&self, project: &str) -> Result<Checked, Error> {
        Ok(match &self.command {
            AlbCommand::Up(up) => Checked::Up(Box::new(up.spec(project)?)),
            AlbCommand::Status => Checked::Status,
            AlbCommand::Down(down) => Checked::Down {
                timeout: Duration::from_secs(down.timeout),
                poll: Duration::from_millis(down.poll_interval_ms),
            },
        })
    }
}

/// Runs a checked `elb alb ...`.
pub(crate) async fn run(settings: &Settings, command: Checked) -> Result<(), Error> {
    let ec2 = client(settings)?;
    let apis = Apis {
        ec2: &ec2,
        project: &settings.project,
    };
    match command {
        Checked::Up(spec) => {
            let report = alb::up(&apis, &spec).await?;
            println!("{}", report.render(settings.output));
            let unhealthy = report.unhealthy();
            if unhealthy.is_empty() {
                return Ok(());
            }
            Err(Error::Unhealthy(format!(
                "the ALB is up but {} target(s) are not healthy after {}s: {}. `elb alb status` \
                 shows them; check that the agents answer {} on port 8000 (or wait longer with \
                 --wait)",
                unhealthy.len(),
                spec.wait.as_secs(),
                unhealthy.join("; "),
                spec.health.path
            )))
        }
        Checked::Status => {
            println!("{}", alb::status(&apis).await?.render(settings.output));
            Ok(())
        }
        Checked::Down { timeout, poll } => {
            let removed = alb::down(&apis, timeout, poll).await?;
            eprintln!(
                "done: project {} has no ALB left ({removed} resource(s) removed)",
                settings.project
            );
            Ok(())
        }
    }
}
