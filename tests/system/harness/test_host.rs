//! Test hosts: each a network namespace (see `netns.rs`) with its own 127.x address, its own
//! hostname and files (`unshare --mount --uts`: a private tmpfs on /run, /var/log and
//! /etc/logrotate.d, its own install dir) and a
//! real Debian `sshd` on port 22 with its own host key, logging in root with the test's key.
//!
//! The hosts share this machine's root file system, so each host's install dir
//! (`<host dir>/install`) is bind-mounted over one common path, [`TestHosts::install_dir`]: one
//! `elb deploy --install-dir` serves every host, and each host sees only its own files.
//!
//! Each host also has its own `/etc/passwd` (bind-mounted): root's home is an empty directory, as
//! on a fresh host (this machine's root `.bashrc` runs pyenv, which bash, started by sshd, would
//! source on every command: 150 ms each), plus an unprivileged user when asked.
//!
//! sshd sets the session PATH from its config (`SetEnv PATH=<host dir>/bin:...`), so a file put
//! in `<host dir>/bin` ([`TestHost::put_first_on_path`]) shadows the real command for everything
//! `elb` runs on that host: how the tests fake `systemctl` and `uname`.
//!
//! Everything is torn down on drop, also when a test panics: every process in each namespace
//! is killed, namespaces, veths and the bridge are deleted, the temp dir is removed.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::netns::{self, Network};

/// How a host is set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostSpec {
    /// Pretend systemd runs: `/run/systemd/system` exists and `/etc/systemd/system` is a private
    /// tmpfs (the unit lands there, not on this machine).
    pub systemd: bool,
    /// Add the unprivileged user [`USER`] (uid [`USER_UID`]) through a private `/etc/passwd`,
    /// with its home in the host dir; the host's install dir belongs to it.
    pub user: bool,
}

/// The unprivileged login of hosts made with [`HostSpec::user`].
pub const USER: &str = "elbuser";
/// Its uid and gid.
pub const USER_UID: u32 = 4242;

/// One test host.
pub struct TestHost {
    /// Its address, `127.x.y.z`.
    pub address: String,
    /// Its hostname.
    pub hostname: String,
    /// Its private directory on the root file system.
    pub dir: PathBuf,
    ns: String,
    veth: String,
    spec: HostSpec,
    sshd: Option<Child>,
}

/// A test's hosts and their network, torn down on drop.
pub struct TestHosts {
    /// The hosts, in creation order.
    pub hosts: Vec<TestHost>,
    /// The install dir every host sees as its own.
    pub install_dir: PathBuf,
    /// The public key sshd accepts for root, `authorized_keys` format.
    authorized_keys: PathBuf,
    dir: PathBuf,
    net: Option<Network>,
}

impl TestHosts {
    /// `specs.len()` hosts accepting root logins with the key whose public half is `public_key`.
    pub fn new(specs: &[HostSpec], public_key: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "elb-hosts-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        let install_dir = dir.join("install");
        fs::create_dir_all(&install_dir).expect("create the common install dir");
        let authorized_keys = dir.join("authorized_keys");
        fs::write(&authorized_keys, public_key).expect("write authorized_keys");
        let mut hosts = Self {
            hosts: Vec::new(),
            install_dir,
            authorized_keys,
            dir,
            net: Some(Network::new()),
        };
        for (i, spec) in specs.iter().enumerate() {
            hosts.add(i as u32, *spec);
        }
        for host in &hosts.hosts {
            host.wait_for_sshd();
        }
        hosts
    }

    fn add(&mut self, i: u32, spec: HostSpec) {
        let net = self.net.as_ref().expect("network is up");
        let (ns, veth, address) = net.add_host(i);
        let dir = self.dir.join(format!("host-{i}"));
        for sub in ["install", "bin"] {
            fs::create_dir_all(dir.join(sub)).expect("create a host dir");
        }
        let mut host = TestHost {
            hostname: format!("elb-test-host-{i}"),
            address,
            dir,
            ns,
            veth,
            spec,
            sshd: None,
        };
        host.start_sshd(&self.install_dir, &self.authorized_keys);
        self.hosts.push(host);
    }

    /// The hosts' addresses, comma-separated, as `--hosts` takes them.
    pub fn addresses(&self) -> String {
        self.hosts
            .iter()
            .map(|h| h.address.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Restarts host `i`'s sshd with a freshly generated host key (a "rebuilt" host).
    pub fn new_host_key(&mut self, i: usize) {
        let (install_dir, keys) = (self.install_dir.clone(), self.authorized_keys.clone());
        let host = &mut self.hosts[i];
        host.stop_sshd();
        host.start_sshd(&install_dir, &keys);
        host.wait_for_sshd();
    }
}

impl Drop for TestHosts {
    fn drop(&mut self) {
        for host in &mut self.hosts {
            netns::delete_namespace(&host.ns);
            if let Some(mut sshd) = host.sshd.take() {
                let _ = sshd.wait();
            }
        }
        drop(self.net.take());
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl TestHost {
    fn start_sshd(&mut self, install_dir: &Path, authorized_keys: &Path) {
        let key = self.dir.join("ssh_host_ed25519_key");
        let _ = fs::remove_file(&key);
        let _ = fs::remove_file(key.with_extension("pub"));
        netns::ssh_keygen(&key);
        let config = self.dir.join("sshd_config");
        let path = format!(
            "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            self.dir.join("bin").display()
        );
        fs::write(
            &config,
            format!(
                "ListenAddress {address}\nPort 22\nHostKey {key}\nAuthorizedKeysFile {keys}\n\
                 StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nUsePAM no\nSubsystem sftp internal-sftp\n\
                 PidFile none\nMaxStartups 100\nSetEnv PATH={path}\n",
                address = self.address,
                key = key.display(),
                keys = authorized_keys.display(),
            ),
        )
        .expect("write sshd_config");
        let systemd = if self.spec.systemd {
            "mkdir -p /run/systemd/system; mount -t tmpfs tmpfs /etc/systemd/system"
        } else {
            ":"
        };
        let passwd = self.private_passwd();
        let setup = format!(
            "set -e
             mount -t tmpfs tmpfs /run
             mount -t tmpfs tmpfs /var/log
             if [ -d /etc/logrotate.d ]; then mount -t tmpfs tmpfs /etc/logrotate.d; fi
             mkdir -p /run/sshd
             {systemd}
             mount --bind {passwd} /etc/passwd
             mount --bind {own} {common}
             hostname {hostname}
             exec /usr/sbin/sshd -D -e -f {config}",
            passwd = passwd.display(),
            own = self.dir.join("install").display(),
            common = install_dir.display(),
            hostname = self.hostname,
            config = config.display(),
        );
        let log = fs::File::create(self.dir.join("sshd.log")).expect("create sshd.log");
        // `ip netns exec` and `unshare` exec their command, so the child's pid is sshd's.
        let child = Command::new("ip")
            .args([
                "netns", "exec", &self.ns, "unshare", "--mount", "--uts", "sh", "-c",
            ])
            .arg(setup)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        self.sshd = Some(child);
    }

    /// The host's own `/etc/passwd`: this machine's, with root's home moved to an empty
    /// `<host dir>/root` (as on a fresh host: this machine's root has a `.bashrc` that bash, run
    /// by sshd, would source on every command) and, with [`HostSpec::user`], the user [`USER`].
    fn private_passwd(&self) -> PathBuf {
        let root_home = self.dir.join("root");
        fs::create_dir_all(&root_home).expect("create root's home");
        let mut passwd: String = fs::read_to_string("/etc/passwd")
            .expect("read /etc/passwd")
            .lines()
            .map(|line| match line.strip_prefix("root:") {
                Some(_) => format!("root:x:0:0:root:{}:/bin/bash\n", root_home.display()),
                None => format!("{line}\n"),
            })
            .collect();
        if self.spec.user {
            let home = self.dir.join("home");
            fs::create_dir_all(&home).expect("create the user's home");
            passwd.push_str(&format!(
                "{USER}:x:{USER_UID}:{USER_UID}::{}:/bin/sh\n",
                home.display()
            ));
            for dir in [home, self.dir.join("install")] {
                std::os::unix::fs::chown(&dir, Some(USER_UID), Some(USER_UID)).expect("chown");
            }
        }
        let file = self.dir.join("passwd");
        fs::write(&file, passwd).expect("write the host's passwd");
        file
    }

    fn stop_sshd(&mut self) {
        if let Some(mut sshd) = self.sshd.take() {
            let _ = sshd.kill();
            let _ = sshd.wait();
        }
    }

    fn wait_for_sshd(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let addr = format!("{}:22", self.address).parse().expect("an address");
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd of {} did not listen within 15 s; its log:\n{}",
                self.address,
                fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Cuts the host off: its link goes down, packets to it vanish.
    pub fn cut(&self) {
        netns::run("ip", &["link", "set", &self.veth, "down"]);
    }

    /// Installs `script` as `<host dir>/bin/<name>`, first on the PATH of SSH sessions.
    pub fn put_first_on_path(&self, name: &str, script: &str) {
        let path = self.dir.join("bin").join(name);
        fs::write(&path, script).expect("write a stand-in command");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// Runs `sh -c command` inside the host (its network, mounts and hostname); returns stdout.
    pub fn sh(&self, command: &str) -> String {
        let sshd = self.sshd.as_ref().expect("sshd runs").id().to_string();
        netns::run(
            "nsenter",
            &["-t", &sshd, "-m", "-u", "-n", "--", "sh", "-c", command],
        )
    }

    /// Starts `sh -c command` in the background inside the host; it dies with the host.
    pub fn spawn(&self, command: &str) {
        self.sh(&format!("setsid {command} > /dev/null 2>&1 < /dev/null &"));
    }

    /// A file of the host's own install dir.
    pub fn install_file(&self, name: &str) -> PathBuf {
        self.dir.join("install").join(name)
    }
}
