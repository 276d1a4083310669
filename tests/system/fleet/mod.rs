//! Whole-system tests of `elb stats`, `elb bench` and `elb demo`: real agents on loopback, the
//! real `elb`.
//!
//! The fleets come from the local provider (`elb --local launch`, through
//! [`LocalProject`](crate::harness::LocalProject)): real `elb-agent` processes on
//! 127.77.x.y:8000. Nothing reaches AWS.

mod bench;
mod demo;
mod stats;
