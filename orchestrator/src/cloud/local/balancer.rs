//! elb's balancer as a local instance: an `elb-balancer` process on its own loopback address,
//! recorded in the project's state like an agent (tagged `Role=balancer`), so `ls` and `kill`
//! see it. Its config file sits beside its log as `<id>.toml`; a reload rewrites that file
//! atomically and sends SIGHUP.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::state::Record;
use super::{process, LocalCloud, LocalError};
use crate::cloud::{instance_name, BALANCER_ROLE, MANAGED_BY};
use crate::state::write_atomic;

/// Instance type shown for the local balancer (it has no CPU quota).
pub(crate) const BALANCER_TYPE: &str = "local";

impl LocalCloud {
    /// The project's balancer record, if one is recorded (running or not).
    pub(crate) fn balancer(&self) -> Result<Option<Record>, LocalError> {
        Ok(self
            .store
            .read()?
            .into_iter()
            .find(|r| r.tag("Role") == BALANCER_ROLE))
    }

    /// Whether the process of `record` runs.
    pub(crate) fn runs(record: &Record) -> bool {
        process::is_agent(record.pid, &record.id)
    }

    /// The last lines of `record`'s log.
    pub(crate) fn log_tail(record: &Record) -> String {
        process::log_tail(&record.log)
    }

    /// Where a balancer record's config file is.
    pub(crate) fn config_path(record: &Record) -> PathBuf {
        record.log.with_extension("toml")
    }

    /// Starts `binary` on a free loopback address where every one of `ports` is free, with the
    /// config `render` gives for that address, and records it under the state lock (an
    /// interrupted start leaves nothing unrecorded). Returns its record.
    pub(crate) fn start_balancer(
        &self,
        binary: &Path,
        ports: &[u16],
        render: impl FnOnce(Ipv4Addr) -> String,
    ) -> Result<Record, LocalError> {
        let mut locked = self.store.lock()?;
        let taken: Vec<Ipv4Addr> = locked.records.iter().map(|r| r.address).collect();
        let address = process::free_address(&taken, ports)?;
        let id = format!("local-{:08x}", rand::random::<u32>());
        let tags = [
            ("Project", self.project.clone()),
            ("Name", instance_name(&self.project, BALANCER_ROLE)),
            ("Role", BALANCER_ROLE.to_owned()),
            ("ManagedBy", MANAGED_BY.to_owned()),
        ];
        let mut record = Record {
            log: self.store.dir().join(format!("{id}.log")),
            id,
            tags: tags.map(|(k, v)| (k.to_owned(), v)).into(),
            instance_type: BALANCER_TYPE.to_owned(),
            address,
            pid: 0,
            cgroup: None,
        };
        let config = Self::config_path(&record);
        write_atomic(&config, render(address).as_bytes(), 0o600)?;
        record.pid = process::spawn_balancer(binary, &config, &record)?;
        locked.records.push(record.clone());
        if let Err(e) = locked.save() {
            process::kill_now(&record);
            let _ = std::fs::remove_file(&config);
            return Err(e);
        }
        tracing::info!(id = %record.id, pid = record.pid, %address, "balancer started");
        Ok(record)
    }

    /// Replaces the balancer's config with `text` (atomically: the balancer never reads half a
    /// file) and sends SIGHUP. The balancer refuses a bad file and keeps the old one.
    pub(crate) fn reload_balancer(&self, record: &Record, text: &str) -> Result<(), LocalError> {
        write_atomic(&Self::config_path(record), text.as_bytes(), 0o600)?;
        if !process::is_agent(record.pid, &record.id) {
            return Err(LocalError::BalancerDown {
                id: record.id.clone(),
                log: record.log.clone(),
            });
        }
        process::hang_up(record);
        Ok(())
    }
}
