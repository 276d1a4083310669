//! The systemd path, on a host with `/run/systemd/system` and a stand-in `systemctl` that logs
//! its arguments and, on `restart`, runs the unit's `ExecStart` as systemd would.

use super::{agent_root, assert_all_ok, World, CLUSTER};
use crate::harness::HostSpec;

#[test]
fn with_systemd_the_unit_is_installed_and_enabled_and_restarted() {
    let world = World::new(&[HostSpec {
        systemd: true,
        ..HostSpec::default()
    }]);
    let host = &world.hosts.hosts[0];
    let calls = host.dir.join("systemctl.calls");
    host.put_first_on_path(
        "systemctl",
        &format!(
            "#!/bin/sh\necho \"$*\" >> {calls}\nif [ \"$1\" = restart ]; then\n  \
             line=$(sed -n 's/^ExecStart=//p' /etc/systemd/system/elb-agent.service)\n  \
             (eval \"exec setsid $line\") > /dev/null 2>&1 < /dev/null &\nfi\n",
            calls = calls.display()
        ),
    );
    let output = world.deploy(&[]);
    assert_all_ok(&output, 1);

    let unit = host.sh("cat /etc/systemd/system/elb-agent.service");
    let install_dir = world.hosts.install_dir.display();
    let exec_start = format!(
        "ExecStart={install_dir}/elb-agent --listen 0.0.0.0:8000 --cluster \"{CLUSTER}\" \
         --instance-id \"\" --instance-type \"\" --az \"\""
    );
    assert!(
        unit.lines().any(|l| l == exec_start),
        "{exec_start}\n---\n{unit}"
    );
    for line in [
        "[Service]",
        "Restart=always",
        "DynamicUser=yes",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}\n---\n{unit}");
    }
    assert!(!unit.contains('@'), "every placeholder filled:\n{unit}");
    assert!(!host.sh("ls /etc/systemd/system").contains(".part"));
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "daemon-reload\nenable elb-agent.service\nrestart elb-agent.service\n"
    );
    // systemd owns the process: no pid file from the detached path.
    assert!(!host.install_file("elb-agent.pid").exists());
    assert_eq!(agent_root(&host.address)["cluster"], CLUSTER);
}
