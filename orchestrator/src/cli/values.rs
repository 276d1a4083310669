//! The command line's names for domain enums: clap's [`ValueEnum`] implemented here, in `cli/`,
//! so that the types themselves (in `config` and `output`) know nothing of clap.

use clap::builder::PossibleValue;
use clap::ValueEnum;

use crate::bench::via::Via;
use crate::config::ProviderKind;
use crate::output::OutputFormat;

impl ValueEnum for OutputFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Table, Self::Json, Self::Csv]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Self::Table => PossibleValue::new("table").help("Human-readable tables"),
            Self::Json => PossibleValue::new("json").help("JSON on stdout, nothing else"),
            Self::Csv => {
                PossibleValue::new("csv").help("Comma-separated values with a header line")
            }
        })
    }
}

impl ValueEnum for ProviderKind {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Ec2, Self::Local]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Self::Ec2 => PossibleValue::new("ec2").help("Amazon EC2 (the default)"),
            Self::Local => PossibleValue::new("local")
                .help("elb-agent processes on this machine, no AWS account needed"),
        })
    }
}

impl ValueEnum for Via {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Direct, Self::Alb]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Self::Direct => PossibleValue::new("direct")
                .help("Straight at the instances, spread by the load generator"),
            Self::Alb => PossibleValue::new("alb").help("Through the project's managed ALB"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_name_that_parses_back() {
        for format in OutputFormat::value_variants() {
            let name = format.to_possible_value().unwrap();
            assert_eq!(OutputFormat::from_str(name.get_name(), false), Ok(*format));
        }
        for via in Via::value_variants() {
            assert_eq!(via.to_possible_value().unwrap().get_name(), via.name());
        }
        for kind in ProviderKind::value_variants() {
            let name = kind.to_possible_value().unwrap();
            assert_eq!(ProviderKind::from_str(name.get_name(), false), Ok(*kind));
        }
    }
}
