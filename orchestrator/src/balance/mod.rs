//! elb's own balancer in the fleet: the orchestrator as `elb-balancer`'s control plane. [`up`]
//! turns the fleet into the balancer's config file and starts the balancer (or, when one runs,
//! rewrites its config and reloads it), [`sync`] follows the fleet after `launch` and `kill`,
//! [`status`] reads its `/status`, [`down`] stops it.
//!
//! Locally the balancer is an `elb-balancer` process on a loopback address of its own, recorded
//! like an instance (`Role=balancer`); its config file is written atomically and SIGHUP makes it
//! reload, keeping every surviving target's state. On EC2 it is an instance of its own reached
//! over SSH ([`ec2`]): the config goes over SFTP (atomically) and `systemctl reload` (or SIGHUP)
//! loads it. Either way, new instances enter `initial` and get traffic once healthy; removed
//! ones drain.

pub mod config;
pub mod ec2;
mod report;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use proto::balancer_config::Protocol;
use proto::{BalancerStatus, TargetState};
use tokio::time::Instant;

pub use config::{BalanceSpec, CertificateFiles, HttpsSpec, ALL, INSTANCE_LOG_DIR};
pub use ec2::Ec2Options;
pub use report::render_status;

use crate::agent_binary;
use crate::cloud::ec2::Ec2;
use crate::cloud::local::{LocalCloud, Record};
use crate::cloud::plan::KillPlan;
use crate::cloud::spec::KillOptions;
use crate::cloud::wait::Poll;
use crate::cloud::{Cloud, Instance};
use crate::config::{Provider, Settings};
use crate::deploy::ssh::HostFile;
use crate::Error;
use config::FilesAt;

/// Port of the balancer's admin listener (`/status`, `/metrics`) on its address.
pub const ADMIN_PORT: u16 = 9901;
/// How long a fresh balancer may take to answer `/status`.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Time between two looks while waiting for the balancer.
const POLL: Duration = Duration::from_millis(50);
/// Per-request timeout of the admin calls.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Refuses `--cluster balancer` where it would reach the balancer's own instance, whose
/// `Cluster` tag is [`ec2::CLUSTER`]: `launch` would put agents beside it, `kill --cluster` would
/// terminate it without revoking its rule (that is `elb balance down`).
pub fn refuse_balancer_cluster(command: &str, cluster: &str) -> Result<(), Error> {
    if cluster != ec2::CLUSTER {
        return Ok(());
    }
    let fix = match command {
        "kill" => "to remove elb's balancer, run `elb balance down`",
        _ => "pick another cluster name",
    };
    Err(Error::Usage(format!(
        "`--cluster {cluster}` names elb's balancer instance, not a cluster of agents: {fix}"
    )))
}

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

/// The local provider, for the local-only parts (the demo's start of a local balancer).
fn local(settings: &Settings) -> Result<LocalCloud, Error> {
    match &settings.provider {
        Provider::Local => Ok(LocalCloud::new(settings)),
        Provider::Ec2 { .. } => Err(Error::Usage(
            "this starts a local balancer; on EC2 use `elb balance up --ssh-cidr <ip>/32`".into(),
        )),
    }
}

/// Where the project's balancer runs, and how its config is read and replaced.
enum Place {
    /// A local process, recorded in the project state.
    Local { cloud: LocalCloud, record: Record },
    /// An EC2 instance, reached over SSH.
    Ec2(ec2::Site),
}

/// The project's balancer, if there is one.
async fn place(settings: &Settings) -> Result<Option<Place>, Error> {
    match &settings.provider {
        Provider::Local => {
            let cloud = LocalCloud::new(settings);
            Ok(cloud
                .balancer()?
                .map(|record| Place::Local { cloud, record }))
        }
        Provider::Ec2 { region, aws } => {
            let ec2 = Ec2::new(aws, region, settings);
            Ok(ec2::find(&ec2, &settings.state).await?.map(Place::Ec2))
        }
    }
}

impl Place {
    /// Where the config is, for messages.
    fn config_name(&self) -> String {
        match self {
            Self::Local { record, .. } => LocalCloud::config_path(record).display().to_string(),
            Self::Ec2(site) => format!("the config on {}", site.instance.id),
        }
    }

    /// The flag of suggested commands.
    fn flag(&self) -> &'static str {
        match self {
            Self::Local { .. } => "--local ",
            Self::Ec2(_) => "",
        }
    }

    /// The running config, parsed.
    async fn config(&self) -> Result<proto::balancer_config::Config, Error> {
        let (name, flag) = (self.config_name(), self.flag());
        let text = match self {
            Self::Local { record, .. } => std::fs::read_to_string(LocalCloud::config_path(record))
                .map_err(|e| {
                    Error::Usage(format!(
                        "cannot read {name}: {e}; `elb {flag}balance down` then `up` makes a \
                         new one"
                    ))
                })?,
            Self::Ec2(site) => site.config().await?.ok_or_else(|| {
                Error::Usage(format!(
                    "the balancer {} has no config yet: `elb balance up` installs it",
                    site.instance.id
                ))
            })?,
        };
        config::parse(&text).map_err(|e| {
            Error::Usage(format!(
                "{name} does not parse ({e}); `elb {flag}balance up` rewrites it"
            ))
        })
    }

    /// Where the balancer with `config` listens.
    fn balancer(&self, config: &proto::balancer_config::Config) -> Result<Balancer, Error> {
        let listen = config
            .listeners
            .first()
            .map(|l| l.address)
            .ok_or_else(|| Error::Usage(format!("{} has no listener", self.config_name())))?;
        match self {
            Self::Local { record, .. } => Ok(Balancer {
                id: record.id.clone(),
                listen,
                admin: config.admin.address,
            }),
            Self::Ec2(site) => {
                let ip = site.address()?;
                Ok(Balancer {
                    id: site.instance.id.clone(),
                    listen: SocketAddr::new(ip, listen.port()),
                    admin: SocketAddr::new(ip, config.admin.address.port()),
                })
            }
        }
    }

    /// Replaces the running config (on EC2 with `files` beside it: a local balancer reads the
    /// certificates where they are) and makes the balancer reload it.
    async fn reload(&self, text: &str, files: &[HostFile]) -> Result<(), Error> {
        match self {
            Self::Local { cloud, record } => Ok(cloud.reload_balancer(record, text)?),
            Self::Ec2(site) => site.reload(text, files).await,
        }
    }
}

/// The project's balancer, if there is one (on EC2 its config is read over SSH).
pub async fn find(settings: &Settings) -> Result<Option<Balancer>, Error> {
    match place(settings).await? {
        Some(place) => {
            let config = place.config().await?;
            Ok(Some(place.balancer(&config)?))
        }
        None => Ok(None),
    }
}

/// The project's running agents, refusing an empty fleet or routing to a cluster it lacks.
async fn balanced_fleet(settings: &Settings, spec: &BalanceSpec) -> Result<Vec<Instance>, Error> {
    let fleet = crate::cloud::fleet(settings, None).await?;
    if fleet.is_empty() {
        let flag = match settings.provider {
            Provider::Local => "--local ",
            Provider::Ec2 { .. } => "",
        };
        return Err(Error::Usage(format!(
            "the project has no running instances to balance: `elb {flag}launch` some first"
        )));
    }
    let existing = fleet.iter().map(|i| i.cluster.clone()).collect();
    spec.routing.check_clusters(&existing, &[ALL])?;
    Ok(fleet)
}

/// Starts the balancer for `spec` on its own EC2 instance (creating the instance, its group
/// and the agents' rule when missing, see [`ec2`]), or reconfigures the one that runs; returns
/// it once it answers and serves the new config.
pub async fn up_ec2(
    settings: &Settings,
    spec: &BalanceSpec,
    options: &Ec2Options,
) -> Result<Balancer, Error> {
    let Provider::Ec2 { region, aws } = &settings.provider else {
        return Err(Error::Usage(
            "EC2 options for a local balancer: drop --type, --ssh-cidr and --client-cidr".into(),
        ));
    };
    let fleet = balanced_fleet(settings, spec).await?;
    let cloud = Ec2::new(aws, region, settings);
    let files = certificate_files(spec)?;
    let (site, binary) = ec2::provision(
        &cloud,
        &settings.project,
        &settings.state,
        options,
        &spec.ports(),
    )
    .await?;
    let new = ec2::build(spec, &fleet, &options.install_dir);
    let place = Place::Ec2(site.clone());
    let balancer = place.balancer(&new)?;
    if admin_status(balancer.admin).await.is_ok() {
        let old = place.config().await?;
        same_listeners(&place, &old, &new)?;
        push(&place, &balancer, &new, &files).await?;
        announce(settings, &balancer, spec, "reconfigured");
        return Ok(balancer);
    }
    check(&place, &new, &files)?;
    let binary = match binary {
        Some(binary) => binary,
        None => ec2::load_binary(options.binary.as_deref())?,
    };
    settings.note(format!(
        "installing the balancer on {} over SSH",
        balancer.id
    ));
    if let Err(e) = site.install(&binary, &config::render(&new), &files).await {
        settings.note(format!(
            "the balancer's instance {} stays, tagged: `elb balance up` tries again, `elb \
             balance down` removes it",
            balancer.id
        ));
        return Err(e);
    }
    wait_answering(
        &balancer,
        || None,
        || {
            format!(
                "its log is {}/elb-balancer.log on the instance (or `journalctl -u elb-balancer` \
             with systemd); `elb balance down` removes it",
                options.install_dir
            )
        },
    )
    .await?;
    announce(settings, &balancer, spec, "started");
    Ok(balancer)
}

/// Starts the balancer for `spec` over the fleet, or reconfigures the running one; returns it
/// once it answers and serves the new config (its targets checked by [`wait_healthy`]).
pub async fn up(
    settings: &Settings,
    spec: &BalanceSpec,
    binary: Option<&Path>,
) -> Result<Balancer, Error> {
    let cloud = local(settings)?;
    let fleet = balanced_fleet(settings, spec).await?;
    match cloud.balancer()? {
        Some(record) => {
            let place = Place::Local { cloud, record };
            let old = place.config().await?;
            let balancer = place.balancer(&old)?;
            let mut new = config::build(
                spec,
                &fleet,
                SocketAddr::new(balancer.listen.ip(), spec.port),
                balancer.admin,
                FilesAt::AsGiven,
            );
            new.limits = old.limits.clone();
            same_listeners(&place, &old, &new)?;
            push(&place, &balancer, &new, &[]).await?;
            announce(settings, &balancer, spec, "reconfigured");
            Ok(balancer)
        }
        None => {
            let binary = agent_binary::locate_balancer(binary)?;
            // Checked as it will be written, but for the address the balancer gets.
            let loopback = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
            check_as_is(
                Path::new("the balancer's config"),
                &config::build(
                    spec,
                    &fleet,
                    SocketAddr::new(loopback, spec.port),
                    SocketAddr::new(loopback, ADMIN_PORT),
                    FilesAt::AsGiven,
                ),
            )?;
            let ports: Vec<u16> = spec.ports().into_iter().chain([ADMIN_PORT]).collect();
            let record = cloud.start_balancer(&binary, &ports, |ip| {
                let listen = SocketAddr::new(IpAddr::V4(ip), spec.port);
                let admin = SocketAddr::new(IpAddr::V4(ip), ADMIN_PORT);
                config::render(&config::build(
                    spec,
                    &fleet,
                    listen,
                    admin,
                    FilesAt::AsGiven,
                ))
            })?;
            let place = Place::Local {
                cloud,
                record: record.clone(),
            };
            let balancer = place.balancer(&place.config().await?)?;
            let started = wait_answering(
                &balancer,
                || (!LocalCloud::runs(&record)).then(|| LocalCloud::log_tail(&record)),
                || {
                    format!(
                        "its log is {}. `elb --local balance down` removes it",
                        record.log.display()
                    )
                },
            );
            if let Err(e) = started.await {
                // Nothing half-started stays behind: the record, the process, the files go.
                down(settings).await?;
                return Err(e);
            }
            announce(settings, &balancer, spec, "started");
            Ok(balancer)
        }
    }
}

/// Checks `config` with the balancer's own validation (the `balancer` library) before it is
/// pushed, so that a config the balancer would refuse is reported at once, in the balancer's
/// words, and the running one is left alone. Certificates are read where the balancer finds
/// them: a local balancer's where they are; for an EC2 host, `files` (the copies `up` uploads)
/// stand in for the copies there, and a push without them (a sync, whose copies are already
/// on the host) checks everything but the HTTPS listeners. An EC2 host's access log is in its
/// logs directory, which the install makes there: not looked for here.
fn check(
    place: &Place,
    config: &proto::balancer_config::Config,
    files: &[HostFile],
) -> Result<(), Error> {
    let name = std::path::PathBuf::from(place.config_name());
    let Place::Ec2(_) = place else {
        return check_as_is(&name, config);
    };
    let mut local = config.clone();
    local.access_log = None;
    if files.is_empty() {
        local.listeners.retain(|l| l.protocol == Protocol::Http);
        return check_as_is(&name, &local);
    }
    // A fresh directory only this user can read (the copies hold private keys): a random name,
    // created here (never one found), removed below.
    let copies = std::env::temp_dir().join(format!(
        "elb-check-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let checked = (|| -> Result<(), String> {
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&copies)
            .map_err(|e| format!("cannot create {}: {e}", copies.display()))?;
        for file in files {
            let path = copies.join(&file.name);
            let mode = u32::from_str_radix(file.mode, 8).unwrap_or(0o600);
            crate::state::write_atomic(&path, &file.bytes, mode).map_err(|e| e.to_string())?;
        }
        for certificate in local.listeners.iter_mut().flat_map(|l| &mut l.certificates) {
            for path in [&mut certificate.cert, &mut certificate.key] {
                let name = std::path::Path::new(path.as_str())
                    .file_name()
                    .map(|n| copies.join(n));
                if let Some(copy) = name {
                    *path = copy.display().to_string();
                }
            }
        }
        Ok(())
    })();
    let checked = checked
        .map_err(|e| Error::Usage(format!("cannot check the config: {e}")))
        .and_then(|()| check_as_is(&name, &local));
    let _ = std::fs::remove_dir_all(&copies);
    checked
}

/// [`check`] of a config whose files are where it names them; errors name the file `name`.
fn check_as_is(name: &Path, config: &proto::balancer_config::Config) -> Result<(), Error> {
    balancer::check_config(name, &config::render(config))
        .map(drop)
        .map_err(|e| Error::Usage(format!("the balancer would refuse this config: {e}")))
}

/// Refuses a reconfiguration that changes the listeners (their ports or protocols): the
/// balancer binds them at start and refuses such a reload, so the user is told how to move
/// them instead.
fn same_listeners(
    place: &Place,
    old: &proto::balancer_config::Config,
    new: &proto::balancer_config::Config,
) -> Result<(), Error> {
    let shape = |c: &proto::balancer_config::Config| -> Vec<(u16, Protocol)> {
        c.listeners
            .iter()
            .map(|l| (l.address.port(), l.protocol))
            .collect()
    };
    if shape(old) == shape(new) {
        return Ok(());
    }
    let describe = |c: &proto::balancer_config::Config| -> String {
        c.listeners
            .iter()
            .map(|l| format!("{:?} {}", l.protocol, l.address.port()).to_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(Error::Usage(format!(
        "the running balancer listens on {} and this asks for {}: listeners cannot change on \
         a reload; `elb {}balance down` then `up` with these flags moves them",
        describe(old),
        describe(new),
        place.flag()
    )))
}

/// The certificates and keys an HTTPS spec names, read to be copied to an EC2 balancer's host
/// (keys with mode 640, group [`crate::deploy::unit::TLS_GROUP`]).
fn certificate_files(spec: &BalanceSpec) -> Result<Vec<HostFile>, Error> {
    let Some(https) = &spec.https else {
        return Ok(Vec::new());
    };
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| {
            Error::Usage(format!(
                "cannot read {}: {e}; --https-cert and --https-key take PEM files",
                path.display()
            ))
        })
    };
    let mut files = Vec::with_capacity(2 * https.certificates.len());
    for (n, pair) in https.certificates.iter().enumerate() {
        let (cert, key) = config::HttpsSpec::copy_names(n);
        files.push(HostFile {
            name: cert,
            bytes: read(&pair.cert)?,
            mode: "644",
            group: None,
        });
        // Readable by root and the balancer's group only: under systemd the balancer runs as
        // a dynamic user that has that group (`SupplementaryGroups` in its unit).
        files.push(HostFile {
            name: key,
            bytes: read(&pair.key)?,
            mode: "640",
            group: Some(crate::deploy::unit::TLS_GROUP),
        });
    }
    Ok(files)
}

/// Tells what `up` did (`started`, `reconfigured`) and where the balancer is.
fn announce(settings: &Settings, balancer: &Balancer, spec: &BalanceSpec, what: &str) {
    settings.note(format!(
        "balancer {} {what}: {} on {}, admin {}",
        balancer.id,
        spec.algorithm.name(),
        balancer.url(),
        balancer.admin
    ));
}

/// Pushes the fleet's current membership to the running balancer, if there is one: every
/// group's targets become the running instances of its cluster, but those in `leaving` (about to
/// be killed: they drain); everything else stays. Returns the balancer, if one was there.
pub async fn sync(settings: &Settings, leaving: &[String]) -> Result<Option<Balancer>, Error> {
    let Some(place) = place(settings).await? else {
        return Ok(None);
    };
    let old = place.config().await?;
    let balancer = place.balancer(&old)?;
    let mut fleet = crate::cloud::fleet(settings, None).await?;
    fleet.retain(|i| !leaving.contains(&i.id));
    let new = config::retarget(old, &fleet);
    // The certificates stay where the last `up` put them.
    push(&place, &balancer, &new, &[]).await?;
    let targets: usize = new.target_groups.iter().map(|g| g.targets.len()).sum();
    settings.note(format!(
        "balancer {}: {targets} target(s) after sync",
        balancer.id
    ));
    Ok(Some(balancer))
}

/// Waits until `balancer` has forgotten every target in `leaving` (it keeps a removed target
/// `draining` until its in-flight requests are done or its group's deregistration delay is
/// over), for at most `limit`; past it, the removal goes on and a warning is logged. A balancer
/// that does not answer has nothing to wait for.
pub async fn wait_drained(balancer: &Balancer, leaving: &[String], limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let Ok(status) = admin_status(balancer.admin).await else {
            return;
        };
        let still: Vec<&str> = status
            .groups
            .iter()
            .flat_map(|g| &g.targets)
            .filter(|t| leaving.contains(&t.id))
            .map(|t| t.id.as_str())
            .collect();
        if still.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!(targets = ?still, "still draining after {} s; removing them anyway", limit.as_secs());
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Switches every group of the running balancer to `algorithm` (everything else stays) and
/// waits until it serves the new config.
pub async fn set_algorithm(
    settings: &Settings,
    algorithm: proto::balancer_config::Algorithm,
) -> Result<Balancer, Error> {
    let place = place(settings)
        .await?
        .ok_or_else(|| no_balancer(settings))?;
    let mut config = place.config().await?;
    let balancer = place.balancer(&config)?;
    for group in &mut config.target_groups {
        group.algorithm = algorithm;
    }
    config.version = Some(format!("elb-{}", algorithm.name()));
    push(&place, &balancer, &config, &[]).await?;
    Ok(balancer)
}

/// The project's balancer, or the error that says how to start one.
pub async fn require(settings: &Settings) -> Result<Balancer, Error> {
    find(settings).await?.ok_or_else(|| no_balancer(settings))
}

/// The `/status` of `balancer` (found by [`require`]: on EC2 that reads its config over SSH,
/// so a `--watch` finds it once and reads the status every tick).
pub async fn status(settings: &Settings, balancer: &Balancer) -> Result<BalancerStatus, Error> {
    let flag = provider_flag(settings);
    admin_status(balancer.admin).await.map_err(|why| {
        Error::Usage(format!(
            "the balancer {} does not answer on {} ({why}): `elb {flag}ls` shows whether it \
             runs; `elb {flag}balance down` then `up` replaces it",
            balancer.id, balancer.admin
        ))
    })
}

/// The global flag of suggested commands for the settings' provider.
pub fn provider_flag(settings: &Settings) -> &'static str {
    match settings.provider {
        Provider::Local => "--local ",
        Provider::Ec2 { .. } => "",
    }
}

fn no_balancer(settings: &Settings) -> Error {
    Error::Usage(format!(
        "project {} has no balancer: `elb {}balance up` starts one",
        settings.project,
        provider_flag(settings)
    ))
}

/// Stops the balancer (SIGTERM: in-flight requests finish) and removes its record and config;
/// on EC2 terminates its instance and deletes its security group (see [`ec2::down`]).
pub async fn down(settings: &Settings) -> Result<bool, Error> {
    let wait = Poll {
        interval: POLL,
        timeout: Duration::from_secs(30),
    };
    if let Provider::Ec2 { region, aws } = &settings.provider {
        let cloud = Ec2::new(aws, region, settings);
        let wait = Poll {
            interval: Duration::from_millis(500),
            timeout: Duration::from_secs(300),
        };
        return ec2::down(&cloud, &settings.project, wait).await;
    }
    let cloud = local(settings)?;
    let Some(record) = cloud.balancer()? else {
        return Ok(false);
    };
    let instance: Instance = cloud
        .instances(None, false)
        .await?
        .into_iter()
        .find(|i| i.id == record.id)
        .ok_or_else(|| no_balancer(settings))?;
    let options = KillOptions {
        cluster: None,
        dry_run: false,
        keep_network: false,
        grace: Duration::from_secs(15),
        wait,
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

/// Waits until a fresh balancer answers `/status`, for at most [`START_TIMEOUT`]. `exited`
/// tells, once the process is known to be gone, what its log ends with; `hint` says where its
/// log is and how to remove it.
async fn wait_answering(
    balancer: &Balancer,
    exited: impl Fn() -> Option<String>,
    hint: impl Fn() -> String,
) -> Result<(), Error> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let why = match admin_status(balancer.admin).await {
            Ok(_) => return Ok(()),
            Err(why) => why,
        };
        if let Some(tail) = exited() {
            return Err(Error::Usage(format!(
                "the balancer exited at start; its log ends with:\n{tail}"
            )));
        }
        if Instant::now() >= deadline {
            return Err(Error::Usage(format!(
                "the balancer {} did not answer on {} within {} s ({why}); {}",
                balancer.id,
                balancer.admin,
                START_TIMEOUT.as_secs(),
                hint()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Replaces the running balancer's config with `config` (atomic write, SIGHUP) and waits until
/// it serves a generation newer than the one before, or reports the reason it refused it.
async fn push(
    place: &Place,
    balancer: &Balancer,
    config: &proto::balancer_config::Config,
    files: &[HostFile],
) -> Result<(), Error> {
    check(place, config, files)?;
    let generation = admin_status(balancer.admin)
        .await
        .ok()
        .map(|s| s.config_generation);
    place.reload(&config::render(config), files).await?;
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
    crate::http::get_json(admin, "/status", ADMIN_TIMEOUT).await
}
