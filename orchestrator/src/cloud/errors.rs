//! AWS failures turned into messages that name the problem and the fix.
//!
//! EC2 does not model its errors as types: everything is a code string
//! (`UnauthorizedOperation`, `InsufficientInstanceCapacity`, ...), so the mapping is a match on it.

use crate::aws::AwsError;

/// Where the minimal IAM policies are documented.
const POLICY_DOC: &str = "README.md, section \"Minimal IAM policy\"";

/// A failed cloud operation, with what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// No credentials anywhere in the standard chain.
    #[error(
        "no AWS credentials found ({detail}). Configure them like for the AWS CLI: run \
         `aws configure` (or `aws sso login`), select a profile with --profile or AWS_PROFILE, or \
         export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )]
    NoCredentials {
        /// What the credential chain said.
        detail: String,
    },
    /// Credentials were found but AWS rejected them.
    #[error(
        "AWS rejected the credentials while calling {action} ({code}: {message}). They are \
         wrong or expired: refresh them (`aws sso login`, new access keys) or pick another \
         --profile"
    )]
    BadCredentials {
        /// The IAM action (`ec2:RunInstances`).
        action: &'static str,
        /// The error code.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// The identity lacks an IAM permission.
    #[error(
        "not authorized to call {action}{tagging} (UnauthorizedOperation). Grant {actions} to \
         your IAM identity; the minimal policy for every elb command is in {POLICY_DOC}",
        tagging = if creates_tags(.action) { " with tags" } else { "" },
        actions = if creates_tags(.action) {
            format!("{action} and ec2:CreateTags (needed to tag at creation)")
        } else {
            action.to_string()
        }
    )]
    Unauthorized {
        /// The IAM action (`ec2:RunInstances`).that was refused.
        action: &'static str,
    },
    /// The instance type cannot be had where it was asked for.
    #[error(
        "{action} failed: {code}: {message}. The instance type is not available in that \
         availability zone right now: try another subnet/AZ with --subnet <subnet-id>, another \
         --type, or retry later"
    )]
    Capacity {
        /// The IAM action (`ec2:RunInstances`).
        action: &'static str,
        /// `InsufficientInstanceCapacity` or `Unsupported`.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// An account quota is used up.
    #[error(
        "{action} failed: {code}: {message}. An account quota is exhausted: terminate unused \
         instances (`elb ls`, `elb kill`) or request an increase in the Service Quotas console \
         (EC2 > \"Running On-Demand Standard instances\", which counts vCPUs)"
    )]
    Quota {
        /// The IAM action (`ec2:RunInstances`).
        action: &'static str,
        /// e.g. `VcpuLimitExceeded`.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// Throttling outlasted every retry.
    #[error(
        "{action} was throttled by AWS ({code}) even after retries: another tool may be \
         hammering the same AWS API in this account; wait a minute and run the command again"
    )]
    Throttled {
        /// The IAM action (`ec2:RunInstances`).
        action: &'static str,
        /// `RequestLimitExceeded` or similar.
        code: String,
    },
    /// The region is not enabled for this account.
    #[error(
        "{action} failed: {code}: {message}. The region is not enabled for this account: \
         enable it in the AWS console (Account > AWS Regions) or pick another --region"
    )]
    RegionNotEnabled {
        /// The IAM action (`ec2:RunInstances`).
        action: &'static str,
        /// `OptInRequired`.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// Any other error AWS answered with.
    #[error("{action} failed: {code}: {message}{}", hint(.code))]
    Api {
        /// The IAM action (`ec2:RunInstances`).
        action: &'static str,
        /// The error code.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// EC2 does not know the instance type in this region.
    #[error(
        "EC2 does not offer instance type `{instance_type}` in this region: check the spelling \
         (e.g. t3.micro) or pick another --type or --region"
    )]
    UnknownInstanceType {
        /// The type asked for.
        instance_type: String,
    },
    /// No Amazon Linux 2023 image matched.
    #[error(
        "no Amazon Linux 2023 image named `{pattern}` (owner amazon) in this region: pass an \
         x86_64 image with --ami <ami-id>"
    )]
    NoImage {
        /// The name pattern searched for.
        pattern: String,
    },
    /// No VPC to launch into.
    #[error("{}", match subnet {
        Some(s) => format!("subnet `{s}` has no VPC: check --subnet"),
        None => "this region has no default VPC: pass --subnet <subnet-id> of the VPC to use, or \
                 create a default VPC with `aws ec2 create-default-vpc`".to_owned(),
    })]
    NoVpc {
        /// The subnet asked for, if any.
        subnet: Option<String>,
    },
    /// The key pair in EC2 holds another public key than the local one.
    #[error(
        "key pair `{name}` in EC2 does not hold the local public key, so elb could not log in to \
         instances launched with it. If the local key was lost or regenerated, delete the old key \
         pair (`aws ec2 delete-key-pair --key-name {name}`, or `elb kill` once its instances are \
         gone) and launch again; or use another --project"
    )]
    KeyMismatch {
        /// The key pair's name.
        name: String,
    },
    /// A security group with our name exists but is not tagged as ours.
    #[error(
        "security group `{name}` ({id}) exists in this VPC but is not tagged Project={project}, \
         so elb will not modify it: rename or delete it, or use another --project"
    )]
    ForeignGroup {
        /// The group's name.
        name: String,
        /// The group's id.
        id: String,
        /// Our project.
        project: String,
    },
    /// The group still had network interfaces at the deadline.
    #[error(
        "security group {id} is still in use (DependencyViolation) at the deadline: network \
         interfaces of terminated instances can take minutes to go away. Run `elb kill` again \
         later (or with a longer --timeout); instances are already terminated"
    )]
    GroupInUse {
        /// The group's id.
        id: String,
    },
    /// A group that EC2 said exists could not be found.
    #[error("security group `{name}` was reported as existing but cannot be found; run again")]
    GroupVanished {
        /// The group's name.
        name: String,
    },
    /// Instances did not reach the wanted state in time.
    #[error(
        "timed out after {secs}s waiting for instances to be {target}: {ready}/{total} are; \
         still waiting for {waiting}. They are tagged: `elb ls` shows them, `elb kill` removes \
         them; --timeout gives them longer",
        waiting = waiting.join(", ")
    )]
    WaitTimeout {
        /// The state waited for.
        target: &'static str,
        /// How many reached it.
        ready: usize,
        /// How many were waited for.
        total: usize,
        /// Ids not there yet.
        waiting: Vec<String>,
        /// The deadline, in seconds.
        secs: u64,
    },
    /// An instance ended while we waited for it to run.
    #[error(
        "instance {id} is {state} instead of running (see its state reason with `aws ec2 \
         describe-instances --instance-ids {id}`). Run `elb kill` to clean up the rest, then try \
         another --type or --subnet"
    )]
    InstanceLost {
        /// The instance.
        id: String,
        /// Its state.
        state: String,
    },
    /// A load balancer or target group with our name exists but is not tagged as ours.
    #[error(
        "load balancing resource `{name}` exists in this region but is not tagged \
         Project={project}, so elb will not touch it: delete or rename it, or use another \
         --project"
    )]
    ForeignLoadBalancer {
        /// Its name.
        name: String,
        /// Our project.
        project: String,
    },
    /// The load balancer ended in the `failed` state.
    #[error(
        "load balancer {name} failed to provision: {reason}. Run `elb alb down` and try again, \
         or check the subnets and security group in the EC2 console"
    )]
    LoadBalancerFailed {
        /// Its name.
        name: String,
        /// AWS's reason.
        reason: String,
    },
    /// Something did not reach the wanted state in time.
    #[error("timed out after {secs}s waiting for {what}; run the command again to go on waiting")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The deadline, in seconds.
        secs: u64,
    },
    /// An answer lacked what the call must return.
    #[error("{action} answered without what it must return ({what}); run the command again")]
    Unexpected {
        /// The IAM action.
        action: &'static str,
        /// What was missing.
        what: String,
    },
    /// The request never got an answer (DNS, connection, timeout).
    #[error(
        "could not reach the AWS API for {action}: {detail}. Check the network, the region, \
         and --endpoint-url / AWS_ENDPOINT_URL if set"
    )]
    Unreachable {
        /// The IAM action (`ec2:RunInstances`).
        action: &'static str,
        /// The transport error.
        detail: String,
    },
}

/// Advice for codes that point at one flag.
fn hint(code: &str) -> &'static str {
    if code.starts_with("InvalidAMIID") {
        ". Check --ami: AMI ids differ per region"
    } else if code == "InvalidInstanceType" {
        ". Check --type (e.g. t3.micro)"
    } else if code.starts_with("InvalidSubnetID") {
        ". Check --subnet: subnets differ per region and account"
    } else {
        ""
    }
}

/// Actions that tag resources at creation, which IAM also checks as `ec2:CreateTags`.
fn creates_tags(action: &str) -> bool {
    matches!(
        action,
        "ec2:RunInstances" | "ec2:CreateSecurityGroup" | "ec2:ImportKeyPair"
    )
}

impl CloudError {
    /// Classifies the failure of `action`, an IAM action name such as `"ec2:RunInstances"` or
    /// `"elasticloadbalancing:CreateLoadBalancer"`.
    pub fn from_aws(action: &'static str, err: AwsError) -> Self {
        match err {
            AwsError::Service { code, message, .. } => Self::from_code(action, &code, message),
            AwsError::Credentials(detail) => Self::NoCredentials { detail },
            AwsError::Transport(detail) => Self::Unreachable { action, detail },
            AwsError::Malformed(what) => Self::Unexpected { action, what },
        }
    }

    fn from_code(action: &'static str, code: &str, message: String) -> Self {
        let code_owned = code.to_owned();
        match code {
            "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" => {
                Self::Unauthorized { action }
            }
            "AuthFailure"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "RequestExpired"
            | "UnrecognizedClientException" => Self::BadCredentials {
                action,
                code: code_owned,
                message,
            },
            "InsufficientInstanceCapacity" | "Unsupported" | "InsufficientCapacity" => {
                Self::Capacity {
                    action,
                    code: code_owned,
                    message,
                }
            }
            "RequestLimitExceeded" | "Throttling" | "ThrottlingException" => Self::Throttled {
                action,
                code: code_owned,
            },
            "OptInRequired" => Self::RegionNotEnabled {
                action,
                code: code_owned,
                message,
            },
            c if c.ends_with("LimitExceeded") => Self::Quota {
                action,
                code: code_owned,
                message,
            },
            _ => Self::Api {
                action,
                code: code_owned,
                message,
            },
        }
    }

    /// The AWS error code, when AWS answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::BadCredentials { code, .. }
            | Self::Capacity { code, .. }
            | Self::Quota { code, .. }
            | Self::Throttled { code, .. }
            | Self::RegionNotEnabled { code, .. }
            | Self::Api { code, .. } => Some(code),
            Self::Unauthorized { .. } => Some("UnauthorizedOperation"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(action: &'static str, code: &str) -> CloudError {
        CloudError::from_code(action, code, "aws says no".into())
    }

    #[test]
    fn unauthorized_names_the_action_the_tagging_permission_and_the_policy() {
        let msg = map("ec2:RunInstances", "UnauthorizedOperation").to_string();
        assert!(msg.contains("ec2:RunInstances"), "{msg}");
        assert!(msg.contains("ec2:CreateTags"), "{msg}");
        assert!(msg.contains("README.md"), "{msg}");
        let msg = map("ec2:DescribeInstances", "UnauthorizedOperation").to_string();
        assert!(
            msg.contains("ec2:DescribeInstances") && !msg.contains("CreateTags"),
            "{msg}"
        );
    }

    #[test]
    fn capacity_and_unsupported_types_suggest_another_subnet_or_type() {
        for code in ["InsufficientInstanceCapacity", "Unsupported"] {
            let msg = map("ec2:RunInstances", code).to_string();
            assert!(msg.contains(code) && msg.contains("--subnet") && msg.contains("--type"));
        }
    }

    #[test]
    fn quota_errors_point_to_service_quotas_but_throttling_is_not_a_quota() {
        for code in ["InstanceLimitExceeded", "VcpuLimitExceeded"] {
            let err = map("ec2:RunInstances", code);
            assert!(matches!(err, CloudError::Quota { .. }), "{code}");
            assert!(err.to_string().contains("Service Quotas"));
        }
        assert!(matches!(
            map("ec2:RunInstances", "RequestLimitExceeded"),
            CloudError::Throttled { .. }
        ));
    }

    #[test]
    fn rejected_credentials_say_how_to_refresh_them() {
        let msg = map("ec2:DescribeInstances", "AuthFailure").to_string();
        assert!(
            msg.contains("--profile") && msg.contains("AuthFailure"),
            "{msg}"
        );
    }

    #[test]
    fn codes_about_one_flag_name_that_flag() {
        assert!(map("ec2:RunInstances", "InvalidAMIID.NotFound")
            .to_string()
            .contains("--ami"));
        assert!(map("ec2:DescribeSubnets", "InvalidSubnetID.NotFound")
            .to_string()
            .contains("--subnet"));
    }

    #[test]
    fn other_codes_keep_code_and_message() {
        let err = map("ec2:DeleteSecurityGroup", "DependencyViolation");
        assert_eq!(err.code(), Some("DependencyViolation"));
        assert!(err.to_string().contains("aws says no"));
    }
}
