//! Putting `elb-agent` on hosts and under a service manager: over SSH (`ssh`), or through EC2 user
//! data run by cloud-init at first boot (`user_data`). `unit` renders the systemd unit both use.

pub(crate) mod ssh;
pub(crate) mod unit;
pub(crate) mod user_data;
