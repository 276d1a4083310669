//! The whole-system suite: one test binary, so the workspace links once.
//!
//! Every test starts real processes (the `elb-agent`, `elb-balancer` and `elb` binaries built by
//! `cargo build --workspace`, a `moto_server` from PyPI) and talks to them over real loopback
//! sockets. Nothing here reaches anything but 127.0.0.0/8.

mod harness;

mod agent;
mod autoscale;
mod balance;
mod balancer;
mod dashboard;
mod deploy;
mod ec2;
mod fleet;
mod local;
mod user_data;
