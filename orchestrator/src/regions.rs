//! AWS region names, checked locally so a typo fails before any request is signed for a region
//! that does not exist (the SDK would otherwise try to resolve `ec2.<typo>.amazonaws.com`).

/// The region used when neither `--region` nor the AWS configuration names one.
pub const DEFAULT_REGION: &str = "ca-central-1";

/// Every public AWS region (commercial, GovCloud and China partitions) known to this build.
pub const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// A region name that is not in [`KNOWN_REGIONS`].
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown AWS region `{name}`{hint}. Pick one with `--region <name>` (e.g. --region {DEFAULT_REGION}), \
     or set `region` in ~/.aws/config or AWS_REGION; `aws ec2 describe-regions` lists the regions \
     enabled for your account. Known regions: {list}",
    hint = suggestion(.name).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(),
    list = KNOWN_REGIONS.join(", ")
)]
pub struct UnknownRegion {
    /// The rejected name, as given.
    pub name: String,
}

/// Accepts `name` if it is a known AWS region.
pub fn validate(name: &str) -> Result<(), UnknownRegion> {
    if KNOWN_REGIONS.contains(&name) {
        Ok(())
    } else {
        Err(UnknownRegion {
            name: name.to_owned(),
        })
    }
}

/// The known region that a typo most likely meant: same name once case and separators are
/// normalised (`US_EAST_1`, `useast1`), if any.
fn suggestion(name: &str) -> Option<&'static str> {
    let squash = |s: &str| {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect::<String>()
    };
    let wanted = squash(name);
    KNOWN_REGIONS.iter().copied().find(|r| squash(r) == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_regions_are_accepted() {
        assert!(validate("ca-central-1").is_ok());
        assert!(validate("us-east-1").is_ok());
        assert!(validate("us-gov-west-1").is_ok());
    }

    #[test]
    fn typos_and_availability_zones_are_rejected() {
        for bad in ["ca-central", "us-east-1a", "mars-north-1", "", "US-EAST-1"] {
            assert!(validate(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn the_error_says_how_to_pick_a_region_and_suggests_a_fix() {
        let msg = validate("US_EAST_1").unwrap_err().to_string();
        assert!(msg.contains("--region"), "{msg}");
        assert!(msg.contains("did you mean `us-east-1`"), "{msg}");
    }

    #[test]
    fn the_list_is_sorted_and_has_no_duplicates() {
        assert!(KNOWN_REGIONS.windows(2).all(|w| w[0] < w[1]));
    }
}
