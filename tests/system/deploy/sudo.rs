//! A non-root login: the upload is staged in the user's home and every privileged step runs
//! through `sudo -n`. The host has no real sudo: a stand-in logs its arguments and runs the
//! command as the same user, who owns the install dir.

use super::{agent_pid, agent_root, assert_all_ok, World, CLUSTER};
use crate::harness::{HostSpec, USER};

#[test]
fn a_non_root_user_installs_through_sudo_n() {
    let world = World::new(&[HostSpec {
        user: true,
        ..HostSpec::default()
    }]);
    let host = &world.hosts.hosts[0];
    let calls = host.dir.join("home/sudo.calls");
    host.put_first_on_path(
        "sudo",
        &format!(
            "#!/bin/sh\n[ \"$1\" = -n ] || {{ echo 'sudo: a password is required' >&2; exit 1; }}\n\
             shift\nprintf '%s\\n' \"$1 $2\" >> {calls}\nexec \"$@\"\n",
            calls = calls.display()
        ),
    );
    let output = world.deploy(&["--ssh-user", USER]);
    assert_all_ok(&output, 1);
    assert_eq!(std::fs::read_to_string(&calls).unwrap(), "sh -c\n");
    assert_eq!(agent_root(&host.address)["cluster"], CLUSTER);
    let pid = agent_pid(&world.hosts, 0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t4242\t")),
        "the agent runs as the login user (the stand-in sudo does not change user):\n{status}"
    );
    // The staged upload was moved away from the home directory.
    assert!(!host.dir.join("home/.elb-agent.upload").exists());
}
