//! The command line's names for domain enums: clap's [`ValueEnum`] implemented here, in `cli/`,
//! so that the types themselves (in `config` and `output`) know nothing of clap.

use clap::builder::PossibleValue;
use clap::builder::TypedValueParser;
use clap::ValueEnum;

use crate::bench::via::Via;
use crate::config::ProviderKind;
use crate::output::OutputFormat;
use proto::balancer_config::{Algorithm, TlsPolicy};

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
/// `--tls-policy`: ALB's policy names, with what each offers.
pub(crate) fn tls_policy_parser() -> impl clap::builder::TypedValueParser<Value = TlsPolicy> {
    let values = TlsPolicy::ALL.map(|p| {
        let help = match p {
            TlsPolicy::Tls13And12 => "TLS 1.3 and 1.2 (ALB's default)",
            TlsPolicy::Tls13Only => "TLS 1.3 only",
        };
        PossibleValue::new(p.name()).help(help)
    });
    clap::builder::PossibleValuesParser::new(values).map(|name| {
        TlsPolicy::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .unwrap_or_default()
    })
}

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

pub(crate) use crate::config::parse_duration;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn durations_take_a_unit_or_mean_seconds() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("10 days")
            .unwrap_err()
            .contains("use ms, s, m or h"));
        assert!(parse_duration("soon")
            .unwrap_err()
            .contains("not a duration"));
    }

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
