//! Whole-system tests of the `elb-agent` binary: each test starts its own agent on a loopback
//! port and talks HTTP to it.

mod bad_input;
mod endpoints;
mod imds;
mod shutdown;
mod static_binary;
mod stats;
