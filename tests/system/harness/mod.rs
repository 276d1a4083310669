//! Shared pieces of the whole-system tests: where the built binaries are, and the real servers
//! that the tests start.

mod agent;
pub mod balancer;
mod bins;
pub mod browser;
mod cpu_limit;
mod ec2_api;
mod elb;
mod elb_api;
mod fake_imds;
mod host_cpu;
mod http;
pub mod load;
pub mod local;
mod moto;
mod net_host;
mod netns;
pub mod raw_http;
mod shim;
mod signal;
pub mod stub_target;
mod test_host;
pub mod tls;

pub use agent::{now_unix_ms, Agent};
pub use balancer::Balancer;
pub use bins::{bin_path, static_agent, static_balancer};
pub use cpu_limit::CpuLimit;
pub use ec2_api::{Ec2Api, Instance, Rule, SecurityGroup};
pub use elb::{Elb, ElbOutput, Running, TempDir};
pub use elb_api::ElbApi;
pub use fake_imds::{FakeImds, Mode as ImdsMode};
pub use host_cpu::HostCpu;
pub use http::runtime;
pub use load::KeepAlive;
pub use local::LocalProject;
pub use moto::{moto, moto_checking_signatures};
pub use net_host::NetHost;
pub use netns::{run as run_checked, ssh_keygen};
pub use shim::{Fault, Shim};
pub use test_host::{HostSpec, TestHosts, USER};

/// The test venv's Python (beside `moto_server`, where the test command installs the Python
/// packages the tests drive: `websockets`, `h2`); `python3` when there is no venv.
pub fn venv_python() -> std::path::PathBuf {
    std::env::var_os("ELB_MOTO_SERVER")
        .map(std::path::PathBuf::from)
        .and_then(|moto| moto.parent().map(|bin| bin.join("python")))
        .filter(|python| python.exists())
        .unwrap_or_else(|| "python3".into())
}
