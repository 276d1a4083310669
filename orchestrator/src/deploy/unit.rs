//! The systemd unit of elb-agent, rendered for one instance.
