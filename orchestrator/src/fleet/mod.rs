//! The fleet's workflows, which the CLI, the demo and (to come) the autoscaler drive alike:
//! flags never reach them and they never print; what happens is reported as [`Event`]s to
//! whoever drives them.
//!
//! [`grow`] adds instances to a cluster: launch, deliver the agent, join the balancers in
//! front of the cluster (the project's ALB target group, elb's own balancer). [`shrink`]
//! removes instances: they leave those balancers (draining) before they are terminated.

mod events;

pub(crate) use events::{Event, Events, Quiet, ScalingTick};

use std::time::Duration;

use crate::alb::{self, Apis};
use crate::cloud::ec2::cloudwatch::IdleTerminate;
use crate::cloud::spec::{KillOptions, LaunchSpec};
use crate::cloud::{sort_instances, Cloud, Created, Instance};
use crate::config::Settings;
use crate::deploy::delivery::AgentDelivery;
use crate::Error;

/// Instances to add to a cluster: what to launch, and how the agent then reaches them (`None`
/// when the cloud runs it from the start, as the local provider does).
#[derive(Debug, Clone)]
pub(crate) struct Growth {
    pub spec: LaunchSpec,
    pub agent: Option<AgentDelivery>,
    /// The idle alarm each new instance gets (EC2), if any.
    pub idle: Option<IdleTerminate>,
}

impl Growth {
    /// `count` x `instance_type` into `cluster` on the local provider, running `agent` (default:
    /// the build beside `elb`, or `$ELB_AGENT`).
    pub(crate) fn local(
        cluster: &str,
        instance_type: &str,
        count: u32,
        agent: Option<std::path::PathBuf>,
    ) -> Self {
        Self {
            spec: LaunchSpec::local(cluster, instance_type, count, agent),
            agent: None,
            idle: None,
        }
    }
}

/// Grows `growth.spec.cluster`: launches the instances (recording each resource in `created`
/// as it is made, so that an interruption can say what to clean up), delivers the agent, joins
/// the new instances to the project's ALB target group for the cluster when there is one
/// (EC2), and pushes the new membership to elb's balancer when one runs. Returns the new
/// instances, sorted.
pub(crate) async fn grow<C: Cloud>(
    cloud: &C,
    settings: &Settings,
    growth: &Growth,
    created: &mut Created,
    events: &dyn Events,
) -> Result<Vec<Instance>, Error> {
    let cluster = &growth.spec.cluster;
    let mut instances = cloud.launch(&growth.spec, created).await?;
    sort_instances(&mut instances);
    events.event(Event::Launched {
        cluster: cluster.clone(),
        instances: instances.clone(),
    });
    // Before anything that may fail: an instance meant to end when idle must not outlive a
    // failed delivery.
    if let (Some(idle), Some(ec2)) = (growth.idle, crate::cloud::ec2_of(settings)) {
        ec2.put_idle_alarms(&instances, idle)
            .await
            .map_err(|(left, e)| Error::IdleAlarms {
                instances: left,
                source: e,
            })?;
        events.event(Event::IdleAlarms {
            instances: instances.len(),
            idle,
        });
    }
    if let Some(agent) = &growth.agent {
        agent.deliver(settings, &instances).await?;
    }
    join_alb(settings, cluster, &instances, events).await?;
    crate::balance::sync(settings, &[]).await?;
    Ok(instances)
}

/// Removes `instances` (of one `cluster`) from the fleet: elb's balancer stops sending them
/// new requests and lets their in-flight ones finish (draining: this waits until the balancer
/// has forgotten them, which it does once they are idle or their deregistration delay is over,
/// for at most `drain`), the project's ALB deregisters them from the cluster's target group
/// (which drains them for its own deregistration delay), and then they are terminated by id.
pub(crate) async fn shrink<C: Cloud>(
    cloud: &C,
    settings: &Settings,
    cluster: &str,
    instances: Vec<Instance>,
    options: &KillOptions,
    drain: Duration,
    events: &dyn Events,
) -> Result<(), Error> {
    let leaving: Vec<String> = instances.iter().map(|i| i.id.clone()).collect();
    if let Some(balancer) = crate::balance::sync(settings, &leaving).await? {
        crate::balance::wait_drained(&balancer, &leaving, drain).await;
    }
    if let Some(ec2) = crate::cloud::ec2_of(settings) {
        let apis = Apis {
            ec2: &ec2,
            project: &settings.project,
        };
        alb::leave(&apis, cluster, &instances).await?;
    }
    cloud.terminate(instances, options).await?;
    events.event(Event::Removed {
        cluster: cluster.to_owned(),
        instances: leaving,
    });
    Ok(())
}

/// When the project has an ALB with a target group for `cluster`, `instances` join it.
async fn join_alb(
    settings: &Settings,
    cluster: &str,
    instances: &[Instance],
    events: &dyn Events,
) -> Result<(), Error> {
    let Some(ec2) = crate::cloud::ec2_of(settings) else {
        return Ok(());
    };
    let apis = Apis {
        ec2: &ec2,
        project: &settings.project,
    };
    let joined = alb::join(&apis, cluster, instances).await?;
    if joined > 0 {
        events.event(Event::JoinedAlb {
            target_group: alb::target_group_name(&settings.project, cluster),
            instances: joined,
        });
    }
    Ok(())
}
