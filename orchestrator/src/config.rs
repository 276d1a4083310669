//! Settings built once at the edge (flags, environment, AWS configuration) and passed down.

use aws_config::{Region, SdkConfig};

use crate::cli::{validate_name, GlobalArgs};
use crate::cloud::ec2;
use crate::output::OutputFormat;
use crate::regions::{self, DEFAULT_REGION};
use crate::state::StateDir;
use crate::Error;

/// Everything a command needs to know about where and how to act.
#[derive(Debug)]
pub struct Settings {
    /// The `Project` tag value.
    pub project: String,
    /// The AWS region, validated.
    pub region: String,
    /// The project's local state directory.
    pub state: StateDir,
    /// How results are printed.
    pub output: OutputFormat,
    /// AWS configuration, with working credentials.
    pub sdk: SdkConfig,
}

impl Settings {
    /// Validates the global flags, loads the AWS configuration and checks that credentials can
    /// be found. An explicit `--region` is checked before anything is loaded.
    pub async fn load(global: &GlobalArgs) -> Result<Self, Error> {
        let state = local_state(global)?;
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
        tracing::debug!(project = %global.project, %region, state = %state.path().display(), "settings");
        Ok(Self {
            project: global.project.clone(),
            region,
            state,
            output: global.output,
            sdk,
        })
    }
}

/// The project's state directory from the global flags, without loading any AWS configuration:
/// for commands that need no cloud (`deploy --hosts`).
pub fn local_state(global: &GlobalArgs) -> Result<StateDir, Error> {
    validate_name("--project", &global.project)?;
    Ok(StateDir::for_project(&global.project)?)
}
