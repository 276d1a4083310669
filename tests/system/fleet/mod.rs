//! Whole-system tests of `elb stats` and `elb bench`: real agents on loopback, the real `elb`.
//!
//! The tests that need a fleet use the local provider (`elb --local launch`), which starts real
//! `elb-agent` processes on 127.77.x.y:8000; nothing reaches AWS.

mod bench;
mod local;
mod stats;
