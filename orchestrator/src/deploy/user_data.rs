//! The cloud-init user-data script that installs elb-agent at first boot.
