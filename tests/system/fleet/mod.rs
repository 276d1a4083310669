//! Whole-system tests of `elb stats` and `elb bench`: real agents on loopback, the real `elb`.
//!
//! The fleets come from the local provider (`elb --local launch`, through
//! [`LocalProject`](crate::harness::LocalProject)): real `elb-agent` processes on
//! 127.77.x.y:8000. Nothing reaches AWS.

mod bench;
mod stats;
