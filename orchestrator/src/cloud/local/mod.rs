//! The local provider: each instance is a real `elb-agent` process on this machine, listening on
//! its own loopback address (127.77.x.y:8000) so addresses look like a fleet's, with the CPU of
//! its instance type enforced by a cgroup quota. The project's instances are recorded in its
//! state directory, so `ls` and `kill` work from later runs.
//!
//! `types.rs` is the instance-type CPU table, `cgroup.rs` the quotas (v1 and v2), `process.rs`
//! starting, recognising and stopping agents, `state.rs` the instances file, `error.rs` what can
//! go wrong.

mod balancer;
mod cgroup;
mod error;
mod process;
mod state;
mod types;
pub(crate) use state::Record;
pub(crate) use types::cpu_of;

pub use error::LocalError;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use self::cgroup::Backend;
use self::process::Ended;
use self::state::Store;
use self::types::Cpu;
use super::{instance_name, Cloud, Created, Instance, MANAGED_BY};
use crate::agent_binary;
use crate::cloud::plan::KillPlan;
use crate::cloud::spec::{KillOptions, LaunchSpec};
use crate::config::Settings;
use crate::progress::Progress;
use crate::Error;

/// How often a launch polls the agents' `/healthz`.
const READY_POLL: Duration = Duration::from_millis(100);

/// The project's instances on this machine.
#[derive(Debug)]
pub(crate) struct LocalCloud {
    project: String,
    store: Store,
    /// Where the lines for people go.
    notes: std::sync::Arc<dyn crate::notes::Notes>,
}

impl LocalCloud {
    /// The local provider for the settings' project.
    pub fn new(settings: &Settings) -> Self {
        Self {
            project: settings.project.clone(),
            store: Store::new(&settings.state),
            notes: settings.notes.clone(),
        }
    }

    /// Starts one agent and records it, under the state lock and without an await in between:
    /// an interrupted launch cannot leave an agent that the state file does not list.
    fn start_one(
        &self,
        agent: &Path,
        spec: &LaunchSpec,
        cpu: Cpu,
        cgroups: Option<&Backend>,
    ) -> Result<Record, LocalError> {
        let mut locked = self.store.lock()?;
        let taken: Vec<Ipv4Addr> = locked.records.iter().map(|r| r.address).collect();
        let address = process::free_address(&taken, &[proto::AGENT_PORT])?;
        let id = format!("local-{:08x}", rand::random::<u32>());
        let memory = types::memory_of(&spec.instance_type)?;
        let cgroup = cgroups
            .map(|backend| {
                backend
                    .create(&self.project, &id, cpu, memory)
                    .map_err(|source| LocalError::Cgroup {
                        path: backend.group(&self.project, &id),
                        source,
                    })
            })
            .transpose()?;
        let tags = [
            ("Project", self.project.clone()),
            ("Cluster", spec.cluster.clone()),
            ("Name", instance_name(&self.project, &spec.cluster)),
            ("ManagedBy", MANAGED_BY.to_owned()),
        ];
        let mut record = Record {
            log: self.store.dir().join(format!("{id}.log")),
            id,
            tags: tags
                .map(|(k, v)| (k.to_owned(), v))
                .into_iter()
                .chain(spec.tags.iter().cloned())
                .collect(),
            instance_type: spec.instance_type.clone(),
            address,
            pid: 0,
            cgroup,
        };
        match process::spawn(agent, &record) {
            Ok(pid) => record.pid = pid,
            Err(e) => {
                discard(&record);
                return Err(e);
            }
        }
        locked.records.push(record.clone());
        if let Err(e) = locked.save() {
            // Unrecorded, it would be out of kill's reach: it must not outlive this launch.
            discard(&record);
            return Err(e);
        }
        tracing::info!(id = %record.id, pid = record.pid, %address, "agent started");
        Ok(record)
    }

    /// Restarts the agents of `instances` (e.g. [`fleet`](crate::cloud::fleet)'s) from the
    /// executable `agent`, each with the identity it had: id, tags, type, address, cgroup and
    /// log. Running ones are stopped first (SIGTERM, up to `grace`, SIGKILL), stopped ones just
    /// start. Returns once every one answers `/healthz`, or `timeout` has passed. This is
    /// `elb deploy --local`: a new binary on the same fleet.
    pub async fn restart_agents(
        &self,
        instances: &[Instance],
        agent: &Path,
        grace: Duration,
        timeout: Duration,
    ) -> Result<(), LocalError> {
        let mut locked = self.store.lock()?;
        let wanted = |r: &Record| instances.iter().any(|i| i.id == r.id);
        let targets: Vec<Record> = locked
            .records
            .iter()
            .filter(|r| wanted(r))
            .cloned()
            .collect();
        process::stop(&targets, grace).await;
        let mut restarted = Vec::with_capacity(targets.len());
        for mut record in targets {
            record.pid = process::spawn(agent, &record)?;
            if let Some(slot) = locked.records.iter_mut().find(|r| r.id == record.id) {
                slot.pid = record.pid;
            }
            // Saved after every start: an error on the next one leaves this one recorded.
            if let Err(e) = locked.save() {
                process::kill_now(&record);
                return Err(e);
            }
            tracing::info!(id = %record.id, pid = record.pid, "agent restarted");
            restarted.push(record);
        }
        drop(locked);
        self.wait_ready(&restarted, timeout).await
    }

    /// Waits until every agent of `records` answers `/healthz`.
    async fn wait_ready(&self, records: &[Record], timeout: Duration) -> Result<(), LocalError> {
        let deadline = Instant::now() + timeout;
        let mut waiting: Vec<&Record> = records.iter().collect();
        let mut progress = Progress::new("waiting", "running", records.len());
        // An agent found gone once is looked at again one poll later before it counts as
        // dead: an `--agent` wrapper that execs the agent shows no command line for an instant
        // while the exec replaces it.
        let mut gone_once: Vec<&str> = Vec::new();
        let outcome = async {
            loop {
                let mut still = Vec::new();
                for r in waiting {
                    if process::healthy(r.address).await {
                        continue;
                    }
                    if process::is_agent(r.pid, &r.id) {
                        gone_once.retain(|id| *id != r.id);
                    } else if gone_once.contains(&r.id.as_str()) {
                        return Err(LocalError::AgentDied {
                            id: r.id.clone(),
                            log: r.log.clone(),
                            tail: process::log_tail(&r.log),
                        });
                    } else {
                        gone_once.push(&r.id);
                    }
                    still.push(r);
                }
                waiting = still;
                progress.update(records.len() - waiting.len(), records.len());
                if waiting.is_empty() {
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    return Err(LocalError::NotReady {
                        waiting: waiting.iter().map(|r| r.id.clone()).collect(),
                        secs: timeout.as_secs(),
                        dir: self.store.dir().to_owned(),
                    });
                }
                tokio::time::sleep(READY_POLL).await;
            }
        }
        .await;
        progress.finish();
        outcome
    }
}

/// Undoes a start that could not be completed: kills the agent if it runs, removes its group.
fn discard(record: &Record) {
    process::kill_now(record);
    if let Some(group) = &record.cgroup {
        if let Err(e) = cgroup::remove(group) {
            tracing::warn!(group = %group.display(), "cannot remove the cgroup: {e}");
        }
    }
}

/// The instance row of a record, `running` when its agent is alive, else `stopped`.
fn to_instance(record: &Record) -> Instance {
    let running = process::is_agent(record.pid, &record.id);
    Instance {
        id: record.id.clone(),
        name: record.tag("Name").to_owned(),
        cluster: record.tag("Cluster").to_owned(),
        instance_type: record.instance_type.clone(),
        az: "local".to_owned(),
        public_ip: None,
        private_ip: Some(record.address.to_string()),
        state: if running { "running" } else { "stopped" }.to_owned(),
        role: record.tags.get("Role").cloned(),
        launched_at_unix_ms: record
            .tags
            .get(crate::cloud::LAUNCHED_AT_TAG)
            .and_then(|v| v.parse().ok()),
    }
}

impl Cloud for LocalCloud {
    const FLAG: &'static str = "--local ";

    fn location(&self) -> String {
        "on this machine".to_owned()
    }

    async fn check_type(&self, instance_type: &str) -> Result<(), Error> {
        types::cpu_of(instance_type)?;
        Ok(())
    }

    /// Refuses an unknown type before anything starts, finds the agent, then starts and records
    /// one agent at a time and waits for all of them to answer `/healthz`.
    async fn launch(
        &self,
        spec: &LaunchSpec,
        created: &mut Created,
    ) -> Result<Vec<Instance>, Error> {
        let cpu = types::cpu_of(&spec.instance_type)?;
        let agent = agent_binary::locate(spec.agent_binary.as_deref())?;
        let cgroups = match Backend::detect(Path::new(cgroup::SYS_ROOT)) {
            Ok(backend) => Some(backend),
            Err(why) => {
                self.notes.note(&format!(
                    "warning: cannot limit the agents' CPU ({why}): they run unlimited"
                ));
                None
            }
        };
        self.notes.note(&format!(
            "launching {} x {} ({} vCPU at {}%) as cluster {} on this machine, agent {}",
            spec.count,
            spec.instance_type,
            cpu.vcpus,
            cpu.baseline_percent,
            spec.cluster,
            agent.display()
        ));
        created.instances_requested = true;
        let mut records = Vec::new();
        for _ in 0..spec.count {
            let record = self.start_one(&agent, spec, cpu, cgroups.as_ref())?;
            created.instances.push(record.id.clone());
            records.push(record);
        }
        self.wait_ready(&records, spec.wait.timeout).await?;
        Ok(records.iter().map(to_instance).collect())
    }

    async fn instances(
        &self,
        cluster: Option<&str>,
        _include_terminated: bool,
    ) -> Result<Vec<Instance>, Error> {
        Ok(self
            .store
            .read()?
            .iter()
            .filter(|r| cluster.is_none_or(|c| r.tag("Cluster") == c))
            .map(to_instance)
            .collect())
    }

    async fn kill_plan(&self, options: &KillOptions) -> Result<KillPlan, Error> {
        let records: Vec<Record> = self
            .store
            .read()?
            .into_iter()
            .filter(|r| {
                options
                    .cluster
                    .as_deref()
                    .is_none_or(|c| r.tag("Cluster") == c)
            })
            .collect();
        let instances = records.iter().map(to_instance).collect();
        Ok(KillPlan {
            cgroups: records
                .iter()
                .filter_map(|r| r.cgroup.clone())
                .filter(|group| group.exists())
                .collect(),
            ..KillPlan::new("local", instances, options.dry_run)
        })
    }

    /// Stops the planned agents (SIGTERM, `--grace`, SIGKILL), removes their groups and logs,
    /// and forgets them. Instances launched after the plan was made are left alone; one whose
    /// group cannot be removed stays recorded, so a second kill can finish the job.
    async fn kill(&self, plan: &KillPlan, options: &KillOptions) -> Result<(), Error> {
        let mut locked = self.store.lock()?;
        let planned = |r: &Record| plan.instances.iter().any(|i| i.id == r.id);
        let targets: Vec<Record> = locked
            .records
            .iter()
            .filter(|r| planned(r))
            .cloned()
            .collect();
        let ended = process::stop(&targets, options.grace).await;
        let mut first_error = None;
        let mut gone = Vec::new();
        for (r, how) in targets.iter().zip(ended) {
            let how = match how {
                Ended::AlreadyStopped => "was not running",
                Ended::Terminated => "stopped",
                Ended::Killed => "killed (SIGKILL after the grace period)",
            };
            self.notes.note(&format!("{} {how}", r.id));
            if let Some(group) = &r.cgroup {
                if let Err(e) = cgroup::remove(group) {
                    first_error = first_error.or(Some(LocalError::io("removing", group, e)));
                    continue;
                }
                self.notes
                    .note(&format!("removed cgroup {}", group.display()));
            }
            let _ = std::fs::remove_file(&r.log);
            let _ = std::fs::remove_file(Self::config_path(r));
            gone.push(r.id.clone());
        }
        locked.records.retain(|r| !gone.contains(&r.id));
        locked.save()?;
        first_error.map_or(Ok(()), |e| Err(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::state::StateDir;

    /// An "agent" that keeps its command line (so it is recognised) and serves nothing: the
    /// test answers `/healthz` on its address itself.
    fn fake_agent(dir: &Path) -> std::path::PathBuf {
        let script = dir.join("fake-agent");
        std::fs::write(&script, "#!/bin/sh\nwhile :; do sleep 1; done\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    /// Answers every connection to `address:8000` with `200 OK`.
    async fn serve_healthz(address: Ipv4Addr) -> tokio::task::JoinHandle<()> {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind((address, proto::AGENT_PORT))
            .await
            .unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        })
    }

    #[tokio::test]
    async fn a_restart_keeps_the_identity_and_replaces_the_process() {
        let root = std::env::temp_dir().join(format!("elb-restart-test-{}", rand::random::<u64>()));
        let cloud = LocalCloud {
            project: "p".into(),
            store: Store::new(&StateDir::for_path(root.join("p"))),
            notes: std::sync::Arc::new(crate::notes::Log),
        };
        let agent = fake_agent(&{
            std::fs::create_dir_all(&root).unwrap();
            root.clone()
        });
        let address = process::free_address(&[], &[proto::AGENT_PORT]).unwrap();
        let server = serve_healthz(address).await;
        let mut record = Record {
            id: format!("local-{:08x}", rand::random::<u32>()),
            tags: [("Cluster".to_owned(), "c1".to_owned())].into(),
            instance_type: "t3.micro".into(),
            address,
            pid: 0,
            cgroup: None,
            log: root.join("agent.log"),
        };
        record.pid = process::spawn(&agent, &record).unwrap();
        {
            let mut locked = cloud.store.lock().unwrap();
            locked.records.push(record.clone());
            locked.save().unwrap();
        }
        let old_pid = record.pid;

        let instances = cloud.instances(None, false).await.unwrap();
        let second = Duration::from_secs(1);
        cloud
            .restart_agents(&instances, &agent, second, 5 * second)
            .await
            .unwrap();

        let after = cloud.store.read().unwrap();
        assert_eq!(after.len(), 1);
        assert_ne!(after[0].pid, old_pid);
        assert_eq!(
            Record {
                pid: old_pid,
                ..after[0].clone()
            },
            record,
            "same identity"
        );
        assert!(
            !process::is_agent(old_pid, &record.id),
            "the old process is gone"
        );
        assert!(process::is_agent(after[0].pid, &record.id));

        process::stop(&after, second).await;
        server.abort();
        std::fs::remove_dir_all(root).unwrap();
    }
}
