//! An agent on a host of its own: a network namespace (see `netns.rs`) with a 127.x address
//! behind a bridge, which the test can cut off (link down: packets to it vanish, as when an
//! instance's network fails) and join again. Torn down on drop.

use super::netns::{self, Network};
use super::Agent;

/// An agent in its own network namespace.
pub struct NetHost {
    /// The agent, listening on the host's address.
    pub agent: Agent,
    ns: String,
    veth: String,
    _net: Network,
}

impl NetHost {
    /// A new host running `elb-agent --listen <its address>:0 args`.
    pub fn start(args: &[&str]) -> Self {
        let net = Network::new();
        let (ns, veth, address) = net.add_host(0);
        let agent =
            Agent::start_wrapped(&["ip", "netns", "exec", &ns], &format!("{address}:0"), args);
        Self {
            agent,
            ns,
            veth,
            _net: net,
        }
    }

    /// Cuts the host off: its link goes down.
    pub fn cut(&self) {
        netns::run("ip", &["link", "set", &self.veth, "down"]);
    }

    /// Joins the host again.
    pub fn join(&self) {
        netns::run("ip", &["link", "set", &self.veth, "up"]);
    }
}

impl Drop for NetHost {
    fn drop(&mut self) {
        netns::delete_namespace(&self.ns);
    }
}
