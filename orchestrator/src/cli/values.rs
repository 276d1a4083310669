//! The command line's names for domain enums: clap's [`ValueEnum`] implemented here, in `cli/`,
//! so that the types themselves (in `config` and `output`) know nothing of clap.

use clap::builder::PossibleValue;
use clap::builder::TypedValueParser;
use clap::ValueEnum;

use crate::bench::via::Via;
use crate::config::ProviderKind;
use crate::output::OutputFormat;
use proto::balancer_config::Algorithm;

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
        &[Self::Direct, Self::Alb, Self::Balancer]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Self::Direct => PossibleValue::new("direct")
                .help("Straight at the instances, spread by the load generator"),
            Self::Alb => PossibleValue::new("alb").help("Through the project's managed ALB"),
            Self::Balancer => PossibleValue::new("balancer")
                .help("Through the project's own balancer (elb balance up)"),
        })
    }
}

/// clap's parser for a balancer algorithm name (the type lives in `proto`, so it cannot carry
/// clap's trait): the config's names, each with its one-line meaning in the help.
pub(crate) fn algorithm_parser() -> impl clap::builder::TypedValueParser<Value = Algorithm> {
    let values = Algorithm::ALL.map(|a| {
        let help = match a {
            Algorithm::RoundRobin => "Each target in turn",
            Algorithm::LeastOutstandingRequests => "The target with the fewest requests in flight",
            Algorithm::P2cPeakEwma => {
                "Two random targets, the cheaper by latency x (in flight + 1)"
            }
            Algorithm::WeightedRandom => "Random, in proportion to the targets' weights",
            Algorithm::LowestLatency => "The healthy target with the lowest live latency estimate",
            Algorithm::AgentLoad => "By spare capacity as the agents report it from inside",
        };
        PossibleValue::new(a.name()).help(help)
    });
    clap::builder::PossibleValuesParser::new(values)
        .map(|name| Algorithm::parse(&name).unwrap_or_default())
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
        for algorithm in Algorithm::ALL {
            assert_eq!(Algorithm::parse(algorithm.name()), Some(algorithm));
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
