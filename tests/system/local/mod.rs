//! Whole-system tests of `elb --local`: real `elb-agent` processes on 127.77.x.y:8000, their
//! state file, and their CPU cgroups. Every test has a project of its own
//! ([`LocalProject`](crate::harness::LocalProject)), which kills what is left when it ends.

mod cgroup;
mod deploy;
mod kill;
mod launch;
