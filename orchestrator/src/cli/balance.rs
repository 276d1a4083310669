//! `elb balance up|sync|status|down`: elb's own balancer in front of the fleet.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use proto::balancer_config::{Algorithm, Redirect, TlsPolicy};

use super::alb::RoutingArgs;
use super::deploy::SshArgs;
use super::launch::RunningWait;
use crate::balance::{self, BalanceSpec, CertificateFiles, Ec2Options, HttpsSpec};
use crate::cloud::firewall::Cidr;
use crate::config::{Provider, Settings};
use crate::deploy::unit;
use crate::routing::RuleAction;
use crate::Error;

/// Flags of `elb balance`.
#[derive(Debug, Args)]
pub struct BalanceArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: BalanceCommand,
}

/// The `balance` subcommands.
#[derive(Debug, Subcommand)]
pub enum BalanceCommand {
    /// Start the balancer in front of the fleet, or reconfigure the one that runs.
    Up(Box<UpArgs>),
    /// Push the fleet's current instances to the balancer (launch and kill do it too).
    Sync,
    /// Each group and target: state and why, in flight, latency estimate, requests, errors.
    Status(StatusArgs),
    /// Stop the balancer (in-flight requests finish) and remove it.
    Down,
}

/// Flags of `elb balance up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// How each group picks a target.
    #[arg(long, default_value = "round_robin", value_parser = super::values::algorithm_parser())]
    pub algorithm: Algorithm,
    /// The path rules and the default (`all` names a group of every instance).
    #[command(flatten)]
    pub routing: RoutingArgs,
    /// Target group settings, as `elb alb up` takes them.
    #[command(flatten)]
    pub group: super::alb::GroupArgs,
    /// The client listener's port.
    #[arg(long, default_value_t = 80)]
    pub port: u16,
    /// An HTTPS listener beside the HTTP one.
    #[command(flatten)]
    pub https: HttpsArgs,
    /// ALB's access log, one line per request in ALB's format: a file on this machine (local),
    /// or a file name in /var/log/elb-balancer on the balancer's instance (EC2, rotated by
    /// logrotate there). Default: off.
    #[arg(long, value_name = "PATH")]
    pub access_log: Option<PathBuf>,
    /// `elb alb up`'s, refused here with why (hidden: it is the ALB's flag).
    #[arg(long = "https-certificate-arn", value_name = "ARN", hide = true)]
    pub https_certificate_arn: Vec<String>,
    /// Milliseconds between two health checks of a target (timeout: half of it, at most 1 s).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(10..=300_000))]
    pub health_interval_ms: u64,
    /// The elb-balancer executable (default: beside `elb`, or `$ELB_BALANCER`); on EC2 the
    /// static build.
    #[arg(long)]
    pub balancer: Option<PathBuf>,
    /// Seconds to wait until every target is healthy (0: do not wait).
    #[arg(long, default_value_t = 30)]
    pub wait: u64,
    /// The balancer's EC2 instance, its group and how it is reached.
    #[command(flatten)]
    pub ec2: Ec2Args,
}

/// The HTTPS flags of `elb balance up` and `elb alb up` (which imports the certificates into ACM).
#[derive(Debug, Args)]
pub struct HttpsArgs {
    /// HTTPS: a certificate chain (PEM, the server's certificate first) for an HTTPS listener
    /// beside the HTTP one. Repeat with --https-key for more names: the first is the default
    /// certificate, the others are chosen by the name clients send (SNI). On EC2 the files are
    /// copied to the balancer's instance.
    #[arg(long = "https-cert", value_name = "PEM")]
    pub https_cert: Vec<PathBuf>,
    /// The private key (PEM, mode 600) of the --https-cert given at the same place.
    #[arg(long = "https-key", value_name = "PEM")]
    pub https_key: Vec<PathBuf>,
    /// The HTTPS listener's port.
    #[arg(long, default_value_t = 443)]
    pub https_port: u16,
    /// Redirect every request of the HTTP listener to HTTPS (301, same host, path and query, the
    /// HTTPS port), as an ALB whose port-80 listener redirects.
    #[arg(long)]
    pub redirect_http_to_https: bool,
    /// The HTTPS listener's TLS versions and suites, by ALB's policy name.
    #[arg(long, default_value = TlsPolicy::default().name(), value_parser = super::values::tls_policy_parser())]
    pub tls_policy: TlsPolicy,
}

/// The EC2 flags of `elb balance up` (refused with `--local`). Deploy's `--parallel` has no
/// use for one instance, so it is hidden and ignored.
#[derive(Debug, Args)]
#[command(mut_arg("parallel", |arg| arg.hide(true)))]
pub struct Ec2Args {
    /// Instance type of the balancer (EC2; x86_64).
    #[arg(long = "type", default_value = "t3.small")]
    pub instance_type: String,
    /// Who may reach the listener port (EC2: the balancer's security group).
    #[arg(long, default_value = "0.0.0.0/0", value_parser = clap::value_parser!(Cidr))]
    pub client_cidr: Cidr,
    /// Who may reach SSH and the admin port (EC2; repeat for more sources), e.g. your own
    /// address as /32: `elb` installs the balancer over SSH and reads its /status.
    #[arg(long, value_parser = clap::value_parser!(Cidr))]
    pub ssh_cidr: Vec<Cidr>,
    /// Directory of the balancer and its config on the instance (EC2).
    #[arg(long, default_value = unit::DEFAULT_INSTALL_DIR)]
    pub install_dir: String,
    /// How to log in to the instance (EC2).
    #[command(flatten)]
    pub ssh: SshArgs,
    /// How long to wait for the instance to run (EC2).
    #[command(flatten)]
    pub running: RunningWait,
}

/// Flags of `elb balance status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Redraw every this many seconds, like `top` (Ctrl-C stops).
    #[arg(long, value_name = "SECS")]
    pub watch: Option<f64>,
}

impl UpArgs {
    /// The spec these flags give, checked before anything is loaded.
    pub(crate) fn spec(&self) -> Result<BalanceSpec, Error> {
        if !self.https_certificate_arn.is_empty() {
            return Err(Error::Usage(
                "--https-certificate-arn is for `elb alb up`: elb's balancer needs the \
                 certificate's private key, which ACM does not give out. Give the PEM files with \
                 --https-cert and --https-key (both commands take those)"
                    .into(),
            ));
        }
        if self.port == 0 {
            return Err(Error::Usage(
                "--port 0: the balancer needs a fixed port clients can be told; pick one, e.g. \
                 --port 8080"
                    .into(),
            ));
        }
        let mut routing = self.routing.routing()?;
        if self.routing.rules.is_empty()
            && routing.default == RuleAction::Forward(balance::ALL.into())
        {
            // `--default all` alone: one mixed group, no path rules.
            routing.rules.clear();
        }
        let https = self.https.spec(self.port)?;
        let spec = BalanceSpec {
            routing,
            algorithm: self.algorithm,
            port: self.port,
            health_interval_ms: self.health_interval_ms,
            http_redirect: self.https.http_redirect(https.is_some())?,
            https,
            slow_start: self.group.slow_start()?,
            stickiness: self.group.stickiness()?,
            // The balancer resolves a relative path against its config's directory; the user
            // means their own.
            access_log: self
                .access_log
                .as_ref()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
        };
        spec.check()?;
        Ok(spec)
    }
}

impl HttpsArgs {
    /// Whether any HTTPS flag was given.
    pub(crate) fn given(&self) -> bool {
        !self.https_cert.is_empty() || !self.https_key.is_empty()
    }

    /// The HTTP listener's redirect to the HTTPS one when asked for; refused without HTTPS.
    pub(crate) fn http_redirect(&self, https: bool) -> Result<Option<Redirect>, Error> {
        if !self.redirect_http_to_https {
            return Ok(None);
        }
        if !https {
            return Err(Error::Usage(
                "--redirect-http-to-https needs an HTTPS listener to send clients to: give \
                 --https-cert and --https-key"
                    .into(),
            ));
        }
        Ok(Some(Redirect {
            status: 301,
            protocol: Some("HTTPS".into()),
            port: Some(self.https_port.to_string()),
            ..Redirect::default()
        }))
    }

    /// The HTTPS listener the flags ask for beside HTTP's `port`, if any: as many keys as
    /// certificates, a port of its own, files that exist.
    pub(crate) fn spec(&self, port: u16) -> Result<Option<HttpsSpec>, Error> {
        if !self.given() {
            return Ok(None);
        }
        if self.https_cert.len() != self.https_key.len() {
            return Err(Error::Usage(format!(
                "{} --https-cert and {} --https-key: give each certificate its key, in the same \
                 order (--https-cert a.pem --https-key a.key --https-cert b.pem --https-key b.key)",
                self.https_cert.len(),
                self.https_key.len()
            )));
        }
        if self.https_port == 0 || self.https_port == port {
            return Err(Error::Usage(format!(
                "--https-port {}: the HTTPS listener needs a fixed port of its own (not --port \
                 {}); e.g. --https-port 443",
                self.https_port, port
            )));
        }
        let mut certificates = Vec::with_capacity(self.https_cert.len());
        for (cert, key) in self.https_cert.iter().zip(&self.https_key) {
            for file in [cert, key] {
                if !file.is_file() {
                    return Err(Error::Usage(format!(
                        "{}: no such file; --https-cert and --https-key take PEM files",
                        file.display()
                    )));
                }
            }
            // The balancer reads them from wherever it runs: absolute paths.
            let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
            certificates.push(CertificateFiles {
                cert: absolute(cert),
                key: absolute(key),
            });
        }
        Ok(Some(HttpsSpec {
            port: self.https_port,
            certificates,
            policy: self.tls_policy,
        }))
    }
}

impl UpArgs {
    /// On EC2 the access log is a file name in the balancer's logs directory on its instance.
    fn check_access_log_on_ec2(&self) -> Result<(), Error> {
        let Some(path) = &self.access_log else {
            return Ok(());
        };
        let bare = path.components().count() == 1 && path.file_name().is_some();
        if bare {
            return Ok(());
        }
        Err(Error::Usage(format!(
            "--access-log {}: on EC2 the log is written on the balancer's instance, in {}: give \
             a file name, e.g. --access-log access.log",
            path.display(),
            balance::INSTANCE_LOG_DIR
        )))
    }

    /// The EC2 options these flags give.
    fn ec2_options(&self) -> Ec2Options {
        let ec2 = &self.ec2;
        Ec2Options {
            instance_type: ec2.instance_type.clone(),
            client_cidr: ec2.client_cidr.clone(),
            ssh_cidr: ec2.ssh_cidr.clone(),
            ssh: ec2.ssh.options(),
            install_dir: ec2.install_dir.clone(),
            binary: self.balancer.clone(),
            wait: ec2.running.poll(),
        }
    }
}

/// Runs `elb balance ...`.
pub(crate) async fn run(settings: &Settings, args: &BalanceArgs) -> Result<(), Error> {
    match &args.command {
        BalanceCommand::Up(up) => {
            let spec = up.spec()?;
            let balancer =
                match &settings.provider {
                    Provider::Local if !up.ec2.ssh_cidr.is_empty() => return Err(Error::Usage(
                        "--ssh-cidr is for a balancer on EC2: a local one needs no SSH. Drop it"
                            .into(),
                    )),
                    Provider::Local => balance::up(settings, &spec, up.balancer.as_deref()).await?,
                    Provider::Ec2 { .. } => {
                        up.check_access_log_on_ec2()?;
                        let options = up.ec2_options();
                        balance::up_ec2(settings, &spec, &options).await?
                    }
                };
            if up.wait > 0 {
                let status = balance::wait_healthy(&balancer, Duration::from_secs(up.wait)).await?;
                println!("{}", balance::render_status(&status, settings.output));
            }
            eprintln!("clients: {}", balancer.url());
            if let Some(https) = &spec.https {
                eprintln!("clients: https://{}:{}", balancer.listen.ip(), https.port);
            }
            Ok(())
        }
        BalanceCommand::Sync => match balance::sync(settings, &[]).await? {
            Some(_) => Ok(()),
            None => Err(Error::Usage(format!(
                "project {} has no balancer to sync: `elb {}balance up` starts one",
                settings.project,
                balance::provider_flag(settings)
            ))),
        },
        BalanceCommand::Status(status) => {
            let balancer = balance::require(settings).await?;
            loop {
                let now = balance::status(settings, &balancer).await?;
                if status.watch.is_some() {
                    print!("\x1b[2J\x1b[H");
                }
                println!("{}", balance::render_status(&now, settings.output));
                match status.watch {
                    Some(secs) if secs > 0.0 => {
                        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                    }
                    _ => return Ok(()),
                }
            }
        }
        BalanceCommand::Down => {
            if balance::down(settings).await? {
                eprintln!("done: the balancer of project {} is gone", settings.project);
            } else {
                eprintln!("project {} has no balancer", settings.project);
            }
            Ok(())
        }
    }
}
