//! A fleet of real agents started by the local provider (`elb --local launch`), killed with
//! `elb --local kill --yes` when dropped.

use crate::harness::Elb;

/// An EC2 endpoint nobody listens on: the commands under test must not need one.
pub const NO_CLOUD: &str = "http://127.0.0.1:9";

/// Local instances of one `elb` user, by cluster.
pub struct LocalFleet {
    pub elb: Elb,
    /// `(cluster, instance id)` of every instance launched.
    pub instances: Vec<(String, String)>,
}

impl LocalFleet {
    /// Launches `count` t3.micro instances for each `(cluster, count)`.
    pub fn launch(clusters: &[(&str, usize)]) -> Self {
        let mut fleet = Self {
            elb: Elb::new(NO_CLOUD.into()),
            instances: Vec::new(),
        };
        for (cluster, count) in clusters {
            let count = count.to_string();
            let rows = fleet.elb.run(&[
                "--local",
                "launch",
                "--cluster",
                cluster,
                "--type",
                "t3.micro",
                "--count",
                &count,
            ]);
            for row in rows.json().as_array().expect("launch prints a JSON array") {
                let id = row["id"].as_str().expect("an instance id");
                fleet.instances.push((cluster.to_string(), id.to_owned()));
            }
        }
        fleet
    }

    /// The ids of `cluster`'s instances.
    pub fn ids(&self, cluster: &str) -> Vec<String> {
        self.instances
            .iter()
            .filter(|(c, _)| c == cluster)
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// SIGKILLs the `elb-agent` process started with `--instance-id <id>`, as a crash would.
    pub fn kill_agent(&self, id: &str) {
        let pid =
            agent_pid(id).unwrap_or_else(|| panic!("no elb-agent runs with --instance-id {id}"));
        // SAFETY: plain kill(2) on a pid just read from /proc.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0, "kill {pid}");
    }
}

impl Drop for LocalFleet {
    fn drop(&mut self) {
        let _ = self.elb.run(&["--local", "kill", "--yes"]);
    }
}

/// The pid of the `elb-agent` whose command line carries `--instance-id <id>`.
fn agent_pid(id: &str) -> Option<libc::pid_t> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: libc::pid_t = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            let is_agent = args.first()?.ends_with(b"elb-agent");
            let has_id = args
                .windows(2)
                .any(|w| w[0] == b"--instance-id" && w[1] == id.as_bytes())
                || args
                    .iter()
                    .any(|a| *a == format!("--instance-id={id}").as_bytes());
            (is_agent && has_id).then_some(pid)
        })
}
