//! Shared pieces of the whole-system tests: where the built binaries are, and the real servers
//! that the tests start.

mod agent;
mod bins;
mod ec2_api;
mod elb;
mod fake_imds;
mod http;
pub mod local;
mod moto;
pub mod raw_http;
mod shim;
mod signal;

pub use agent::{now_unix_ms, Agent};
pub use bins::bin_path;
pub use ec2_api::{Ec2Api, Instance, Rule, SecurityGroup};
pub use elb::{Elb, ElbOutput, TempDir};
pub use fake_imds::{FakeImds, Mode as ImdsMode};
pub use local::LocalProject;
pub use moto::moto;
pub use shim::{Fault, Shim};
