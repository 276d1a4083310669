//! `elb launch --deploy user-data`: the script `launch` hands EC2 (read back from moto), checked
//! by shellcheck and run for real inside test hosts against a loopback HTTP server holding the
//! static agent, as cloud-init would run it at first boot.

mod install;
mod launch;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::ec2::fixture::{rows, Fixture, REGION};
use crate::harness::ElbOutput;

/// The cluster the tests launch.
pub const CLUSTER: &str = "green";

/// `elb launch --deploy user-data --no-ssh` of `count` t3.micro, plus `extra` flags; moto's
/// instances have made-up addresses, so every test passes `--no-wait-healthy` or fails early.
pub fn launch(fx: &Fixture, count: usize, extra: &[&str]) -> ElbOutput {
    let args = [&["--deploy", "user-data", "--no-ssh"][..], extra].concat();
    fx.launch_without_ssh_cidr(CLUSTER, "t3.micro", count, &args)
}

/// The user data of every instance a successful launch printed, decoded.
pub fn launched_user_data(fx: &Fixture, output: &ElbOutput) -> Vec<String> {
    rows(output)
        .iter()
        .map(|row| user_data(fx, &row.id))
        .collect()
}

/// An instance's user data as moto holds it (`DescribeInstanceAttribute userData`), decoded.
pub fn user_data(fx: &Fixture, instance_id: &str) -> String {
    let xml = fx
        .api
        .call(
            REGION,
            "DescribeInstanceAttribute",
            &[("InstanceId", instance_id), ("Attribute", "userData")],
        )
        .unwrap_or_else(|e| panic!("DescribeInstanceAttribute {instance_id}: {e:?}"));
    let doc = roxmltree::Document::parse(&xml).expect("an XML answer");
    let encoded = doc
        .descendants()
        .find(|n| n.has_tag_name("userData"))
        .and_then(|n| n.children().find(|c| c.has_tag_name("value")))
        .and_then(|v| v.text())
        .unwrap_or_else(|| panic!("{instance_id} has no user data:\n{xml}"));
    let mut child = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run base64");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(encoded.trim().as_bytes())
        .expect("feed base64");
    let out = child.wait_with_output().expect("base64 output");
    assert!(out.status.success(), "user data is not base64: {encoded}");
    String::from_utf8(out.stdout).expect("the user data is text")
}

/// Writes `script` to `path` and runs `shellcheck -s sh` on it: panics with its findings unless
/// there are none.
pub fn write_shellcheck_clean(script: &str, path: &Path) {
    std::fs::write(path, script).expect("write the script");
    let out = Command::new("shellcheck")
        .args(["-s", "sh"])
        .arg(path)
        .output()
        .expect("shellcheck is installed (scripts/test.sh installs it)");
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "shellcheck findings:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A loopback HTTP/1.1 server with one file at `/elb-agent`, counting its downloads; stops on
/// drop.
pub struct FileServer {
    pub addr: SocketAddr,
    pub downloads: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FileServer {
    /// Serves `body` on `ip` (a port of its own).
    pub fn start(ip: &str, body: Vec<u8>) -> Self {
        let listener = TcpListener::bind((ip, 0)).expect("bind the file server");
        let addr = listener.local_addr().expect("its address");
        let downloads = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (downloads.clone(), stop.clone());
        let body = Arc::new(body);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let (body, count) = (body.clone(), count.clone());
                    std::thread::spawn(move || serve(stream, &body, &count));
                }
            }
        });
        Self {
            addr,
            downloads,
            stop,
        }
    }

    /// The file's URL.
    pub fn url(&self) -> String {
        format!("http://{}/elb-agent", self.addr)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Answers one request: the file for `GET /elb-agent`, else 404.
fn serve(mut stream: TcpStream, body: &[u8], count: &AtomicUsize) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
        head.push(byte[0]);
    }
    let found = head.starts_with(b"GET /elb-agent ");
    let (status, body) = if found {
        count.fetch_add(1, Ordering::SeqCst);
        ("200 OK", body)
    } else {
        ("404 Not Found", &b"not found\n"[..])
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(body);
}
