//! Whole-system tests of `elb` against a real moto_server.
//!
//! Every test builds a [`Fixture`](fixture::Fixture): its own fault shim, hence its own moto
//! account, so the tests run in parallel on one moto without seeing each other's resources.

pub mod fixture;

mod alb;
mod asg;
mod autoscale;
pub(crate) mod cloudwatch;
mod errors;
mod faults;
mod interrupt;
mod kill;
mod launch;
mod shim;
mod signing;
