//! The scaffolding elb's two servers (`elb-agent`, `elb-balancer`) share: the stop signals, the
//! shutdown flag every connection watches, and the drain that waits for open connections for
//! at most a grace period.

pub mod drain;
pub mod shutdown;

pub use drain::{Drain, Ending, Open};
pub use shutdown::{flag, Shutdown, Signals, Trigger};
