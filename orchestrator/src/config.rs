//! Settings built once at the edge (flags, environment, AWS configuration) and passed down.

use aws_config::{Region, SdkConfig};

use crate::cli::{validate_name, GlobalArgs};
use crate::cloud::ec2;
use crate::output::OutputFormat;
use crate::regions::{self, DEFAULT_REGION};
use crate::state::StateDir;
use crate::Error;

/// Which cloud the instances live in: `--local` or `ELB_PROVIDER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderKind {
    /// Amazon EC2 (the default).
    Ec2,
    /// `elb-agent` processes on this machine, no AWS account needed.
    Local,
}

/// The chosen provider with what it needs: EC2 carries its region and AWS configuration, the
/// local provider needs neither (no AWS configuration is loaded, no credentials are checked).
#[derive(Debug)]
pub enum Provider {
    /// Amazon EC2.
    Ec2 {
        /// The AWS region, validated.
        region: String,
        /// AWS configuration, with working credentials (boxed: it is large).
        sdk: Box<SdkConfig>,
    },
    /// Processes on this machine.
    Local,
}

/// Everything a command needs to know about where and how to act.
#[derive(Debug)]
pub struct Settings {
    /// The `Project` tag value.
    pub project: String,
    /// The project's local state directory.
    pub state: StateDir,
    /// How results are printed.
    pub output: OutputFormat,
    /// The cloud and its configuration.
    pub provider: Provider,
}

impl Settings {
    /// Validates the global flags and, for EC2, loads the AWS configuration and checks that
    /// credentials can be found. An explicit `--region` is checked before anything is loaded.
    pub async fn load(global: &GlobalArgs) -> Result<Self, Error> {
        Self::load_for(global, global.provider_kind()).await
    }

    /// As [`Settings::load`], with the provider given rather than taken from the flags (`elb
    /// demo` always runs locally).
    pub async fn load_for(global: &GlobalArgs, kind: ProviderKind) -> Result<Self, Error> {
        let state = local_state(global)?;
        let provider = match kind {
            ProviderKind::Ec2 => load_ec2(global).await?,
            ProviderKind::Local => Provider::Local,
        };
        tracing::debug!(project = %global.project, ?provider, state = %state.path().display(), "settings");
        Ok(Self {
            project: global.project.clone(),
            state,
            output: global.output,
            provider,
        })
    }
}

async fn load_ec2(global: &GlobalArgs) -> Result<Provider, Error> {
    if let Some(region) = &global.region {
        regions::validate(region)?;
    }
    let sdk = ec2::load_sdk_config(
        global.profile.as_deref(),
        global.region.as_deref(),
        global.endpoint_url.as_deref(),
    )
    .await;
    let region = sdk
        .region()
        .map_or(DEFAULT_REGION, |r| r.as_ref())
        .to_owned();
    regions::validate(&region)?;
    let sdk = sdk
        .into_builder()
        .region(Region::new(region.clone()))
        .build();
    ec2::check_credentials(&sdk).await?;
    Ok(Provider::Ec2 {
        region,
        sdk: Box::new(sdk),
    })
}

/// The project's state directory from the global flags, without loading any AWS configuration:
/// for commands that need no cloud (`deploy --hosts`).
pub fn local_state(global: &GlobalArgs) -> Result<StateDir, Error> {
    validate_name("--project", &global.project)?;
    Ok(StateDir::for_project(&global.project)?)
}
