//! ALB's rule conditions beside the path and the host: `http-request-method`, `http-header`,
//! `query-string` and `source-ip`, compiled once per config and matched per request.
//!
//! ALB combines conditions with AND and the values within one condition with OR; header and
//! query matching ignores case and takes `*`/`?` wildcards, methods are exact, source addresses
//! are CIDRs matched against the connection's peer (never `X-Forwarded-For`, which a client
//! writes).

use std::net::IpAddr;

use hyper::header::{HeaderMap, HeaderName};

use crate::pattern::Pattern;
use proto::balancer_config::{HeaderCondition, QueryCondition, Rule};

/// ALB's limit on the comparison values of one rule, its path and host included.
pub(crate) const MAX_VALUES: usize = 5;
/// ALB's limit on a header name's and a method's length.
pub(crate) const MAX_NAME_LEN: usize = 40;

/// What of a request the rules look at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestView<'a> {
    /// The `Host` header or the absolute URI's authority.
    pub(crate) host: Option<&'a str>,
    /// The path, without the query.
    pub(crate) path: &'a str,
    /// The query string, without `?`.
    pub(crate) query: Option<&'a str>,
    /// The method.
    pub(crate) method: &'a str,
    /// The request's headers.
    pub(crate) headers: &'a HeaderMap,
    /// The connection's peer address.
    pub(crate) client: IpAddr,
}

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n` or `x::y/n` (a bare address is a /32 or /128); host bits set in the
    /// address are refused, as ALB refuses them.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an IPv4 or IPv6 address"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?} has a prefix length over {max}"))?,
            None => max,
        };
        let cidr = Self { network, prefix };
        if bits(network) & !mask(prefix, u32::from(max)) != 0 {
            return Err(format!("{text:?} has host bits set after /{prefix}"));
        }
        Ok(cidr)
    }

    /// Whether `address` is in the network (an IPv4-mapped IPv6 address counts as its IPv4).
    pub(crate) fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        let max = match (self.network, address) {
            (IpAddr::V4(_), IpAddr::V4(_)) => 32,
            (IpAddr::V6(_), IpAddr::V6(_)) => 128,
            _ => return false,
        };
        let mask = mask(self.prefix, max);
        bits(address) & mask == bits(self.network) & mask
    }
}

/// An address as a number, left-aligned in 128 bits' worth for IPv6, right-aligned for IPv4.
fn bits(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The mask of a `/prefix` in an address of `max` bits.
fn mask(prefix: u8, max: u32) -> u128 {
    let all = if max == 128 {
        u128::MAX
    } else {
        (1u128 << max) - 1
    };
    match u32::from(prefix) {
        0 => 0,
        p => all & !((1u128 << (max - p)) - 1),
    }
}

/// The conditions of one rule beside its path and host, compiled.
#[derive(Debug, Default)]
pub(crate) struct Conditions {
    methods: Vec<String>,
    /// Header name, and lowercased value patterns.
    headers: Vec<(HeaderName, Vec<Pattern>)>,
    /// Per condition, its `(key, value)` alternatives, lowercased.
    query: Vec<Vec<(Option<Pattern>, Pattern)>>,
    sources: Vec<Cidr>,
}

impl Conditions {
    /// Compiles a validated rule's conditions.
    pub(crate) fn new(rule: &Rule) -> Result<Self, String> {
        let lower = |p: &str| Pattern::new(&p.to_ascii_lowercase());
        let headers = rule
            .headers
            .iter()
            .map(|h: &HeaderCondition| {
                let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|e| e.to_string())?;
                let values = h
                    .values
                    .iter()
                    .map(|v| lower(v))
                    .collect::<Result<_, _>>()?;
                Ok((name, values))
            })
            .collect::<Result<_, String>>()?;
        let query = rule
            .query
            .iter()
            .map(|q: &QueryCondition| {
                q.pairs
                    .iter()
                    .map(|pair| {
                        let key = pair.key.as_deref().map(lower).transpose()?;
                        Ok((key, lower(&pair.value)?))
                    })
                    .collect::<Result<Vec<_>, String>>()
            })
            .collect::<Result<_, String>>()?;
        let sources = rule
            .source_ips
            .iter()
            .map(|c| Cidr::parse(c))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            methods: rule.methods.clone(),
            headers,
            query,
            sources,
        })
    }

    /// Whether `request` meets every condition.
    pub(crate) fn match_all(&self, request: &RequestView<'_>) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| m == request.method))
            && (self.sources.is_empty() || self.sources.iter().any(|c| c.contains(request.client)))
            && self.headers.iter().all(|(name, values)| {
                request.headers.get_all(name).iter().any(|value| {
                    let value = value.as_bytes().to_ascii_lowercase();
                    values.iter().any(|p| p.matches(&value))
                })
            })
            && (self.query.is_empty() || self.query_matches(request.query.unwrap_or("")))
    }

    fn query_matches(&self, query: &str) -> bool {
        let params: Vec<(Vec<u8>, Vec<u8>)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode_lower(k), decode_lower(v))
            })
            .collect();
        self.query.iter().all(|alternatives| {
            alternatives.iter().any(|(key, value)| {
                params
                    .iter()
                    .any(|(k, v)| key.as_ref().is_none_or(|key| key.matches(k)) && value.matches(v))
            })
        })
    }
}

/// A query component percent-decoded (`+` as a space), lowercased. A malformed escape stays as
/// it is.
fn decode_lower(text: &str) -> Vec<u8> {
    let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(high), Some(low)) => {
                    // Two hex digits: at most 255.
                    out.push(u8::try_from(high * 16 + low).unwrap_or(u8::MAX));
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out.make_ascii_lowercase();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::balancer_config::QueryPair;

    fn view<'a>(
        headers: &'a HeaderMap,
        query: Option<&'a str>,
        method: &'a str,
        client: &str,
    ) -> RequestView<'a> {
        RequestView {
            host: None,
            path: "/",
            query,
            method,
            headers,
            client: client.parse().unwrap(),
        }
    }

    #[test]
    fn cidrs_hold_their_addresses_and_refuse_host_bits() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(
            net.contains("::ffff:10.1.0.9".parse().unwrap()),
            "IPv4-mapped"
        );
        assert!(!net.contains("2001:db8::1".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("127.0.0.1")
            .unwrap()
            .contains("127.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("10.1.0.1/16")
            .unwrap_err()
            .contains("host bits"));
        assert!(Cidr::parse("10.0.0.0/33").unwrap_err().contains("over 32"));
        assert!(Cidr::parse("ten/8").is_err());
    }

    #[test]
    fn conditions_combine_with_and_their_values_with_or() {
        let rule = Rule {
            methods: vec!["GET".into(), "HEAD".into()],
            headers: vec![HeaderCondition {
                name: "X-Canary".into(),
                values: vec!["yes".into(), "b*".into()],
            }],
            query: vec![QueryCondition {
                pairs: vec![
                    QueryPair {
                        key: Some("v".into()),
                        value: "2*".into(),
                    },
                    QueryPair {
                        key: None,
                        value: "beta".into(),
                    },
                ],
            }],
            source_ips: vec!["127.0.0.0/8".into()],
            ..Rule::default()
        };
        let c = Conditions::new(&rule).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-canary", "BETA-1".parse().unwrap());
        assert!(c.match_all(&view(&headers, Some("a=1&V=2.1"), "GET", "127.0.0.9")));
        assert!(
            c.match_all(&view(&headers, Some("x=%42eta"), "HEAD", "127.0.0.9")),
            "decoded"
        );
        assert!(
            !c.match_all(&view(&headers, Some("v=2"), "get", "127.0.0.9")),
            "methods are exact"
        );
        assert!(
            !c.match_all(&view(&headers, Some("v=2"), "GET", "10.0.0.1")),
            "source"
        );
        assert!(
            !c.match_all(&view(&headers, Some("v=3"), "GET", "127.0.0.9")),
            "query"
        );
        assert!(
            !c.match_all(&view(&headers, None, "GET", "127.0.0.9")),
            "no query"
        );
        assert!(
            !c.match_all(&view(&HeaderMap::new(), Some("v=2"), "GET", "127.0.0.9")),
            "header"
        );
        assert!(Conditions::default().match_all(&view(&HeaderMap::new(), None, "PUT", "::1")));
    }

    #[test]
    fn query_components_decode_plus_and_escapes_and_keep_malformed_ones() {
        assert_eq!(decode_lower("A+b%2FC%zz%4"), b"a b/c%zz%4");
    }
}
