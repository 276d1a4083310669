//! Network plumbing for test hosts (root, iproute2): one bridge per test network in the root
//! namespace, one network namespace per host joined to it by a veth pair, addresses in a
//! 127.x.y.0/24 subnet of the network's own.
//!
//! Two settings make 127.x addresses routable across veth (see docs/design.md): `route_localnet=1` on
//! every device that carries them, and a route for the subnet in table `local`, which beats the
//! catch-all `local 127.0.0.0/8 dev lo`.
//!
//! Names embed the test process's pid (`elb<pid>.<n>` bridges, `elv<pid>.<n>.<i>` veths,
//! `elbt-<pid>-<n>-<i>` namespaces), so [`clean_stale`] can remove what a killed test run left.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

/// Runs `program args`, panicking with its stderr if it fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Makes a new ed25519 key pair without a passphrase at `path` (and `path.pub`).
pub fn ssh_keygen(path: &std::path::Path) {
    run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            &path.to_string_lossy(),
        ],
    );
}

/// Like [`run`], ignoring failure (teardown of what may already be gone).
fn run_quiet(program: &str, args: &[&str]) {
    let _ = Command::new(program).args(args).output();
}

fn write_sysctl(path: &str, value: &str) {
    std::fs::write(path, value).unwrap_or_else(|e| panic!("write {path}: {e}"));
}

/// One test's network: a bridge and its subnet.
pub struct Network {
    /// Bridge name.
    pub bridge: String,
    /// The subnet's first three octets, e.g. `127.150.3`.
    pub prefix: String,
    /// The name stem of this network's namespaces and veths.
    id: (u32, u32),
}

impl Network {
    /// A new bridge with a subnet no other network of this or another live test run uses.
    pub fn new() -> Self {
        static CLEAN: Once = Once::new();
        CLEAN.call_once(clean_stale);
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < 250, "too many test networks in one run");
        let pid = std::process::id();
        let prefix = format!("127.{}.{n}", 128 + pid % 100);
        let bridge = format!("elb{pid:x}.{n:x}");
        run("ip", &["link", "add", &bridge, "type", "bridge"]);
        let net = Self {
            bridge,
            prefix,
            id: (pid, n),
        };
        write_sysctl(
            &format!("/proc/sys/net/ipv4/conf/{}/route_localnet", net.bridge),
            "1",
        );
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}.1/24", net.prefix),
                "dev",
                &net.bridge,
            ],
        );
        run("ip", &["link", "set", &net.bridge, "up"]);
        run(
            "ip",
            &[
                "route",
                "replace",
                &net.subnet(),
                "dev",
                &net.bridge,
                "table",
                "local",
            ],
        );
        net
    }

    fn subnet(&self) -> String {
        format!("{}.0/24", self.prefix)
    }

    /// Creates host `i`'s namespace, joined to the bridge, with address `<prefix>.<i + 10>`.
    /// Returns the namespace name, the root-side veth name and the address.
    pub fn add_host(&self, i: u32) -> (String, String, String) {
        let (pid, n) = self.id;
        let ns = format!("elbt-{pid}-{n}-{i}");
        let veth = format!("elv{pid:x}.{n:x}.{i:x}");
        let address = format!("{}.{}", self.prefix, i + 10);
        run("ip", &["netns", "add", &ns]);
        run(
            "ip",
            &[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        );
        write_sysctl(
            &format!("/proc/sys/net/ipv4/conf/{veth}/route_localnet"),
            "1",
        );
        run("ip", &["link", "set", &veth, "master", &self.bridge, "up"]);
        let inside = format!(
            "set -e
             ip link set lo up
             ip link set eth0 up
             echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet
             ip addr add {address}/24 dev eth0
             ip route replace {subnet} dev eth0 table local",
            subnet = self.subnet()
        );
        run("ip", &["netns", "exec", &ns, "sh", "-c", &inside]);
        (ns, veth, address)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting the bridge also removes its routes, local table included.
        run_quiet("ip", &["link", "del", &self.bridge]);
    }
}

/// Kills every process in namespace `ns`, then deletes it (and with it its end of the veth pair).
pub fn delete_namespace(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let pids: Vec<i32> = pids
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() || Instant::now() > deadline {
            break;
        }
        for pid in pids {
            // SAFETY: kill(2) has no memory-safety preconditions; these pids run in our namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    run_quiet("ip", &["netns", "del", ns]);
}

/// Removes namespaces, bridges and test host directories left by test runs whose process is
/// gone (killed before their teardown ran).
fn clean_stale() {
    let gone = |pid: u32| !std::path::Path::new(&format!("/proc/{pid}")).exists();
    for line in run("ip", &["netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let pid = name.strip_prefix("elbt-").and_then(|r| r.split('-').next());
        if pid.and_then(|p| p.parse().ok()).is_some_and(gone) {
            delete_namespace(name);
        }
    }
    let temp = std::env::temp_dir();
    for entry in std::fs::read_dir(&temp).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // `elb-hosts-<pid>-<n>`, see test_host.rs.
        let pid = name
            .strip_prefix("elb-hosts-")
            .and_then(|r| r.split('-').next());
        if pid.and_then(|p| p.parse().ok()).is_some_and(gone) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    for line in run("ip", &["-o", "link", "show"]).lines() {
        // `7: elb1a2b.3: <...` or `8: elv1a2b.3.0@if2: <...`
        let name = line.split(':').nth(1).unwrap_or("").trim();
        let name = name.split('@').next().unwrap_or("");
        let stem = name
            .strip_prefix("elb")
            .or_else(|| name.strip_prefix("elv"));
        let pid = stem
            .and_then(|s| s.split_once('.'))
            .and_then(|(pid, _)| u32::from_str_radix(pid, 16).ok());
        if pid.is_some_and(gone) {
            run_quiet("ip", &["link", "del", name]);
        }
    }
}
