//! A request's parameters, flattened as the two query protocols want them.
//!
//! EC2 numbers list entries straight after the name (`InstanceId.1`, `Filter.1.Value.1`); the
//! Query protocol (ELBv2) puts `member` in between (`Names.member.1`). [`Params`] knows which
//! and writes the names; callers only say which list and which entry.

/// How a service flattens lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lists {
    /// EC2: `Name.N`.
    Ec2,
    /// The Query protocol: `Name.member.N`.
    Member,
}

/// The parameters of one call, in the order they were set.
#[derive(Debug, Clone)]
pub struct Params {
    lists: Lists,
    pairs: Vec<(String, String)>,
}

impl Params {
    /// No parameters yet, lists flattened as `lists`.
    pub fn new(lists: Lists) -> Self {
        Self {
            lists,
            pairs: Vec::new(),
        }
    }

    /// Sets `name` to `value`.
    pub fn set(&mut self, name: impl Into<String>, value: impl ToString) -> &mut Self {
        self.pairs.push((name.into(), value.to_string()));
        self
    }

    /// Sets `name` when there is a value.
    pub fn maybe(&mut self, name: &str, value: Option<impl ToString>) -> &mut Self {
        if let Some(value) = value {
            self.set(name, value);
        }
        self
    }

    /// The name of entry `index` (from 0) of the list `name`.
    pub fn entry(&self, name: &str, index: usize) -> String {
        match self.lists {
            Lists::Ec2 => format!("{name}.{}", index + 1),
            Lists::Member => format!("{name}.member.{}", index + 1),
        }
    }

    /// The list `name` of plain values.
    pub fn list<S: ToString>(
        &mut self,
        name: &str,
        values: impl IntoIterator<Item = S>,
    ) -> &mut Self {
        for (i, value) in values.into_iter().enumerate() {
            let key = self.entry(name, i);
            self.set(key, value);
        }
        self
    }

    /// The list `name` of structures: `fill` sets the fields of each entry under the prefix it is
    /// given (`TagSpecification.1`).
    pub fn structs<T>(
        &mut self,
        name: &str,
        entries: impl IntoIterator<Item = T>,
        mut fill: impl FnMut(&mut Self, &str, T),
    ) -> &mut Self {
        for (i, entry) in entries.into_iter().enumerate() {
            let prefix = self.entry(name, i);
            fill(self, &prefix, entry);
        }
        self
    }

    /// A list of `Key`/`Value` pairs (tags) under `name`, with fields called `key` and `value`.
    pub fn pairs<'a>(
        &mut self,
        name: &str,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> &mut Self {
        self.structs(name, pairs, |p, prefix, (k, v)| {
            p.set(format!("{prefix}.Key"), k);
            p.set(format!("{prefix}.Value"), v);
        })
    }

    /// EC2's `Filter.N.Name`/`Filter.N.Value.M`, appended after the filters already set.
    pub fn filter(&mut self, name: &str, values: &[&str]) -> &mut Self {
        let index = self
            .pairs
            .iter()
            .filter(|(k, _)| k.starts_with("Filter.") && k.ends_with(".Name"))
            .count();
        let prefix = self.entry("Filter", index);
        self.set(format!("{prefix}.Name"), name);
        self.list(&format!("{prefix}.Value"), values.iter().copied())
    }

    /// The request body: `Action`, `Version`, then the parameters, form-encoded (see
    /// [`encode`]).
    pub fn body(&self, action: &str, version: &str) -> String {
        let mut body = String::new();
        let head = [("Action", action), ("Version", version)];
        let rest = self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        for (i, (k, v)) in head.into_iter().chain(rest).enumerate() {
            if i > 0 {
                body.push('&');
            }
            encode(k, &mut body);
            body.push('=');
            encode(v, &mut body);
        }
        body
    }
}

/// Form-encodes `text` onto `out`: RFC 3986's unreserved characters as they are, a space as
/// `+`, every other byte as `%XX`. AWS signs the bytes it receives, so any form encoding would
/// do; this one is exactly Python's `urlencode`, so that a verifier that re-encodes the parsed
/// form (moto does, with botocore) computes the same signature.
fn encode(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in text.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 15)]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec2_numbers_entries_after_the_name_and_query_after_member() {
        let mut ec2 = Params::new(Lists::Ec2);
        ec2.list("InstanceId", ["i-1", "i-2"])
            .filter("tag:Project", &["p"])
            .filter("instance-state-name", &["pending", "running"]);
        assert_eq!(
            ec2.body("DescribeInstances", "2016-11-15"),
            "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-1&InstanceId.2=i-2\
             &Filter.1.Name=tag%3AProject&Filter.1.Value.1=p&Filter.2.Name=instance-state-name\
             &Filter.2.Value.1=pending&Filter.2.Value.2=running"
        );
        let mut query = Params::new(Lists::Member);
        query
            .list("Names", ["a b"])
            .pairs("Tags", [("Project", "p")]);
        assert_eq!(
            query.body("DescribeLoadBalancers", "2015-12-01"),
            "Action=DescribeLoadBalancers&Version=2015-12-01&Names.member.1=a+b\
             &Tags.member.1.Key=Project&Tags.member.1.Value=p"
        );
    }

    #[test]
    fn only_unreserved_characters_stay_as_they_are() {
        let mut out = String::new();
        encode("al2023-ami-2023.*-x86_64 ~/é=&+", &mut out);
        assert_eq!(out, "al2023-ami-2023.%2A-x86_64+~%2F%C3%A9%3D%26%2B");
    }

    #[test]
    fn structures_get_their_entry_prefix() {
        let mut p = Params::new(Lists::Member);
        p.structs("Targets", ["i-1", "i-2"], |p, prefix, id| {
            p.set(format!("{prefix}.Id"), id)
                .set(format!("{prefix}.Port"), 8000);
        })
        .maybe("Marker", None::<&str>);
        assert_eq!(
            p.body("RegisterTargets", "v"),
            "Action=RegisterTargets&Version=v&Targets.member.1.Id=i-1&Targets.member.1.Port=8000\
             &Targets.member.2.Id=i-2&Targets.member.2.Port=8000"
        );
    }
}
