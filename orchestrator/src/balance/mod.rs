//! elb's own balancer in the fleet: the orchestrator as `elb-balancer`'s control plane. [`up`]
//! turns the fleet into the balancer's config file and starts the balancer (or, when one runs,
//! rewrites its config and reloads it), [`sync`] follows the fleet after `launch` and `kill`,
//! [`status`] reads its `/status`, [`down`] stops it.
//!
//! Locally the balancer is an `elb-balancer` process on a loopback address of its own, recorded
//! like an instance (`Role=balancer`); its config file is written atomically and SIGHUP makes it
//! reload, keeping every surviving target's state. New instances enter `initial` and get traffic
//! once healthy; removed ones drain.

pub mod config;
mod report;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use proto::{BalancerStatus, TargetState};
use tokio::time::Instant;

pub use config::{BalanceSpec, ALL};
pub use report::render_status;

use crate::agent_binary;
use crate::cloud::local::{LocalCloud, Record};
use crate::cloud::spec::KillOptions;
use crate::cloud::wait::Poll;
use crate::cloud::{Cloud, Instance};
use crate::config::{Provider, Settings};
use crate::http::{Connection, Endpoint};
use crate::plan::KillPlan;
use crate::Error;

/// Port of the balancer's admin listener (`/status`, `/metrics`) on its address.
pub const ADMIN_PORT: u16 = 9901;
/// How long a fresh balancer may take to answer `/status`.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Time between two looks while waiting for the balancer.
const POLL: Duration = Duration::from_millis(50);
/// Per-request timeout of the admin calls.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The project's running balancer: where clients and `elb` reach it.
#[derive(Debug, Clone)]
pub struct Balancer {
    /// Its instance id.
    pub id: String,
    /// The client listener.
    pub listen: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
}

impl Balancer {
    /// The base URL clients load (`http://ip:port`).
    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }
}

/// The local provider; the balancer on EC2 is not built yet, and says so.
fn local(settings: &Settings) -> Result<LocalCloud, Error> {
    match &settings.provider {
        Provider::Local => Ok(LocalCloud::new(settings)),
        Provider::Ec2 { .. } => Err(Error::Usage(
            "elb balance runs the balancer locally only so far (`elb --local balance up`); on \
             EC2, compare with the managed ALB (`elb alb up`)"
                .into(),
        )),
    }
}

/// Where a recorded balancer listens, from its config file.
fn located(record: &Record) -> Result<(Balancer, proto::balancer_config::Config), Error> {
    let path = LocalCloud::config_path(record);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::Usage(format!(
            "cannot read the balancer's config {}: {e}; `elb --local balance down` then `up` \
             makes a new one",
            path.display()
        ))
    })?;
    let config = config::parse(&text).map_err(|e| {
        Error::Usage(format!(
            "the balancer's config {} does not parse ({e}); `elb --local balance up` rewrites it",
            path.display()
        ))
    })?;
    let listen = config
        .listeners
        .first()
        .map(|l| l.address)
        .ok_or_else(|| Error::Usage(format!("{} has no listener", path.display())))?;
    Ok((
        Balancer {
            id: record.id.clone(),
            listen,
            admin: config.admin.address,
        },
        config,
    ))
}

/// The project's balancer, if one is recorded.
pub async fn find(settings: &Settings) -> Result<Option<Balancer>, Error> {
    let cloud = local(settings)?;
    match cloud.balancer()? {
        Some(record) => Ok(Some(located(&record)?.0)),
        None => Ok(None),
    }
}

/// Starts the balancer for `spec` over the fleet, or reconfigures the running one; returns it
/// once it answers and serves the new config (its targets checked by [`wait_healthy`]).
pub async fn up(
    settings: &Settings,
    spec: &BalanceSpec,
    binary: Option<&Path>,
) -> Result<Balancer, Error> {
    let cloud = local(settings)?;
    let fleet = crate::cloud::fleet(settings, None).await?;
    if fleet.is_empty() {
        return Err(Error::Usage(
            "the project has no running instances to balance: `elb --local launch` some first"
                .into(),
        ));
    }
    let existing = fleet.iter().map(|i| i.cluster.clone()).collect();
    spec.routing.check_clusters(&existing, &[ALL])?;
    match cloud.balancer()? {
        Some(record) => {
            let (balancer, old) = located(&record)?;
            let mut new = config::build(spec, &fleet, balancer.listen, balancer.admin);
            new.limits = old.limits;
            if balancer.listen.port() != spec.port {
                eprintln!(
                    "note: the balancer keeps listening on {} (a listener cannot change on \
                     reload; `elb --local balance down` then `up --port {}` moves it)",
                    balancer.listen, spec.port
                );
                new.listeners = old.listeners;
            }
            push(&cloud, &record, &balancer, &new).await?;
            eprintln!(
                "balancer {} reconfigured: {} on {}",
                balancer.id,
                spec.algorithm.name(),
                balancer.url()
            );
            Ok(balancer)
        }
        None => {
            let binary = agent_binary::locate_balancer(binary)?;
            let ports = [spec.port, ADMIN_PORT];
            let record = cloud.start_balancer(&binary, &ports, |ip| {
                let listen = SocketAddr::new(IpAddr::V4(ip), spec.port);
                let admin = SocketAddr::new(IpAddr::V4(ip), ADMIN_PORT);
                config::render(&config::build(spec, &fleet, listen, admin))
            })?;
            let (balancer, _) = located(&record)?;
            if let Err(e) = wait_started(&balancer, &record).await {
                // Nothing half-started stays behind: the record, the process, the files go.
                down(settings).await?;
                return Err(e);
            }
            eprintln!(
                "balancer {} started: {} on {}, admin {}",
                balancer.id,
                spec.algorithm.name(),
                balancer.url(),
                balancer.admin
            );
            Ok(balancer)
        }
    }
}

/// Pushes the fleet's current membership to the running balancer, if there is one: every
/// group's targets become the running instances of its cluster, but those in `leaving` (about to
/// be killed: they drain); everything else stays. Returns whether a balancer was there.
pub async fn sync(settings: &Settings, leaving: &[String]) -> Result<bool, Error> {
    let Provider::Local = settings.provider else {
        return Ok(false);
    };
    let cloud = LocalCloud::new(settings);
    let Some(record) = cloud.balancer()? else {
        return Ok(false);
    };
    let (balancer, old) = located(&record)?;
    let mut fleet = crate::cloud::fleet(settings, None).await?;
    fleet.retain(|i| !leaving.contains(&i.id));
    let new = config::retarget(old, &fleet);
    push(&cloud, &record, &balancer, &new).await?;
    let targets: usize = new.target_groups.iter().map(|g| g.targets.len()).sum();
    eprintln!("balancer {}: {targets} target(s) after sync", balancer.id);
    Ok(true)
}

/// Switches every group of the running balancer to `algorithm` (everything else stays) and
/// waits until it serves the new config.
pub async fn set_algorithm(
    settings: &Settings,
    algorithm: proto::balancer_config::Algorithm,
) -> Result<Balancer, Error> {
    let cloud = local(settings)?;
    let record = cloud
        .balancer()?
        .ok_or_else(|| no_balancer(&settings.project))?;
    let (balancer, mut config) = located(&record)?;
    for group in &mut config.target_groups {
        group.algorithm = algorithm;
    }
    config.version = Some(format!("elb-{}", algorithm.name()));
    push(&cloud, &record, &balancer, &config).await?;
    Ok(balancer)
}

/// The balancer's `/status`.
pub async fn status(settings: &Settings) -> Result<BalancerStatus, Error> {
    let balancer = find(settings)
        .await?
        .ok_or_else(|| no_balancer(&settings.project))?;
    admin_status(balancer.admin).await.map_err(|why| {
        Error::Usage(format!(
            "the balancer {} does not answer on {} ({why}): `elb --local ls` shows whether it \
             runs; `elb --local balance down` then `up` replaces it",
            balancer.id, balancer.admin
        ))
    })
}

fn no_balancer(project: &str) -> Error {
    Error::Usage(format!(
        "project {project} has no balancer: `elb --local balance up` starts one"
    ))
}

/// Stops the balancer (SIGTERM: in-flight requests finish) and removes its record and config.
pub async fn down(settings: &Settings) -> Result<bool, Error> {
    let cloud = local(settings)?;
    let Some(record) = cloud.balancer()? else {
        return Ok(false);
    };
    let instance: Instance = cloud
        .instances(None, false)
        .await?
        .into_iter()
        .find(|i| i.id == record.id)
        .ok_or_else(|| no_balancer(&settings.project))?;
    let options = KillOptions {
        cluster: None,
        dry_run: false,
        keep_network: false,
        grace: Duration::from_secs(15),
        wait: Poll {
            interval: POLL,
            timeout: Duration::from_secs(30),
        },
    };
    cloud
        .kill(&KillPlan::new("local", vec![instance], false), &options)
        .await?;
    Ok(true)
}

/// Waits until every target of every group is healthy (or `timeout` passes); returns the last
/// status. A group fails open while none is healthy, so a run started earlier would measure the
/// start-up, not the algorithm.
pub async fn wait_healthy(balancer: &Balancer, timeout: Duration) -> Result<BalancerStatus, Error> {
    let deadline = Instant::now() + timeout;
    loop {
        let status = admin_status(balancer.admin).await.map_err(Error::Usage)?;
        let all_healthy = status
            .groups
            .iter()
            .flat_map(|g| &g.targets)
            .all(|t| t.state == TargetState::Healthy);
        if all_healthy || Instant::now() >= deadline {
            return Ok(status);
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn wait_started(balancer: &Balancer, record: &Record) -> Result<(), Error> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match admin_status(balancer.admin).await {
            Ok(_) => return Ok(()),
            Err(_) if !LocalCloud::runs(record) => {
                return Err(Error::Usage(format!(
                    "the balancer exited at start; its log ends with:\n{}",
                    LocalCloud::log_tail(record)
                )))
            }
            Err(why) if Instant::now() >= deadline => {
                return Err(Error::Usage(format!(
                    "the balancer {} did not answer on {} within {} s ({why}); its log is {}. \
                     `elb --local balance down` removes it",
                    balancer.id,
                    balancer.admin,
                    START_TIMEOUT.as_secs(),
                    record.log.display()
                )))
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Replaces the running balancer's config with `config` (atomic write, SIGHUP) and waits until
/// it serves a generation newer than the one before, or reports the reason it refused it.
async fn push(
    cloud: &LocalCloud,
    record: &Record,
    balancer: &Balancer,
    config: &proto::balancer_config::Config,
) -> Result<(), Error> {
    let generation = admin_status(balancer.admin)
        .await
        .ok()
        .map(|s| s.config_generation);
    cloud.reload_balancer(record, &config::render(config))?;
    let Some(before) = generation else {
        return Ok(());
    };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let status = admin_status(balancer.admin).await.map_err(Error::Usage)?;
        if status.config_generation > before {
            return Ok(());
        }
        if let Some(error) = status
            .last_reload_error
            .filter(|_| status.reloads_refused > 0)
        {
            if Instant::now() >= deadline {
                return Err(Error::Usage(format!(
                    "the balancer refused the new config: {error}"
                )));
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::Usage(format!(
                "the balancer {} did not load the new config within {} s",
                balancer.id,
                START_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `GET /status` on the admin listener at `admin`.
pub async fn admin_status(admin: SocketAddr) -> Result<BalancerStatus, String> {
    let exchange = async {
        let mut connection = Connection::open(&Endpoint::agent(admin)).await?;
        connection.get("/status").await
    };
    let (code, body) = tokio::time::timeout(ADMIN_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("timed out after {} ms", ADMIN_TIMEOUT.as_millis()))?
        .map_err(|e| e.to_string())?;
    if !code.is_success() {
        return Err(format!("HTTP {}", code.as_u16()));
    }
    serde_json::from_slice(&body).map_err(|e| format!("bad JSON: {e}"))
}
