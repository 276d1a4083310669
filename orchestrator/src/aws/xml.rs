//! Reading the APIs' XML answers: a parsed document and lookups by element name.
//!
//! Both protocols elb speaks answer in XML without attributes that matter: EC2 lists are
//! `<xSet><item>...</item></xSet>` and the Query protocol's (ELBv2) are
//! `<Xs><member>...</member></Xs>`; [`Node::list`] reads either. Namespaces are ignored (EC2's
//! changes with the API version).

use super::error::AwsError;

/// One answer's body, parsed. Lookups borrow from it.
pub struct Document {
    text: String,
}

impl Document {
    /// Keeps `text` for parsing.
    pub fn new(text: String) -> Self {
        Self { text }
    }

    /// Parses the body and hands its root element to `read`.
    pub fn read<T>(&self, read: impl FnOnce(Node<'_, '_>) -> T) -> Result<T, AwsError> {
        let doc = roxmltree::Document::parse(&self.text)
            .map_err(|e| AwsError::Malformed(format!("not XML ({e}): {}", excerpt(&self.text))))?;
        Ok(read(Node(doc.root_element())))
    }
}

/// The first 200 characters of a body, for a message.
pub fn excerpt(text: &str) -> String {
    let mut cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        cut.push_str("...");
    }
    cut
}

/// An element of an answer.
#[derive(Clone, Copy)]
pub struct Node<'a, 'input>(roxmltree::Node<'a, 'input>);

impl<'a, 'input> Node<'a, 'input> {
    /// Its name, without namespace.
    pub fn name(&self) -> &str {
        self.0.tag_name().name()
    }

    /// The first child element called `name`.
    pub fn child(&self, name: &str) -> Option<Self> {
        self.0
            .children()
            .find(|c| c.is_element() && c.tag_name().name() == name)
            .map(Node)
    }

    /// The element at `path` below this one, one child name per step.
    pub fn at(&self, path: &[&str]) -> Option<Self> {
        path.iter().try_fold(*self, |node, name| node.child(name))
    }

    /// The text of the child element called `name` (`None` when it is missing; an empty element
    /// reads as `""`).
    pub fn text(&self, name: &str) -> Option<&'a str> {
        self.child(name).map(|c| c.0.text().unwrap_or(""))
    }

    /// The text of the child `name` as an owned string, empty when missing.
    pub fn string(&self, name: &str) -> String {
        self.text(name).unwrap_or_default().to_owned()
    }

    /// The child `name` parsed as a number.
    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        self.text(name)?.trim().parse().ok()
    }

    /// The entries of the list element `name` (`<item>`s or `<member>`s); none when the list is
    /// missing or empty.
    pub fn list(&self, name: &str) -> impl Iterator<Item = Node<'a, 'input>> {
        self.child(name)
            .into_iter()
            .flat_map(|list| list.0.children().filter(|c| c.is_element()).map(Node))
    }

    /// The value of the tag `key` in the tag list `name` (EC2's `tagSet`, ELBv2's `Tags`),
    /// whose entries hold `key`/`value` (EC2) or `Key`/`Value` (ELBv2).
    pub fn tag(&self, name: &str, key: &str) -> Option<&'a str> {
        self.list(name).find_map(|t| {
            let k = t.text("key").or_else(|| t.text("Key"))?;
            (k == key).then(|| t.text("value").or_else(|| t.text("Value")).unwrap_or(""))
        })
    }

    /// The first element called `name` anywhere below this one (for error answers, whose
    /// nesting differs between the protocols).
    pub fn find(&self, name: &str) -> Option<Self> {
        self.0
            .descendants()
            .find(|c| c.is_element() && c.tag_name().name() == name)
            .map(Node)
    }

    /// Its own text, empty when it has none.
    pub fn own_text(&self) -> &'a str {
        self.0.text().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC2: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <reservationSet><item><instancesSet>
    <item><instanceId>i-1</instanceId><tagSet>
      <item><key>Name</key><value>web</value></item><item><key>Empty</key><value/></item>
    </tagSet></item>
    <item><instanceId>i-2</instanceId></item>
  </instancesSet></item></reservationSet>
  <nextToken/>
</DescribeInstancesResponse>"#;

    #[test]
    fn lists_tags_and_texts_read_through_namespaces() {
        let ids = Document::new(EC2.into())
            .read(|root| {
                let instances: Vec<_> = root
                    .list("reservationSet")
                    .flat_map(|r| r.list("instancesSet"))
                    .collect();
                let first = instances[0];
                assert_eq!(first.tag("tagSet", "Name"), Some("web"));
                assert_eq!(first.tag("tagSet", "Empty"), Some(""));
                assert_eq!(first.tag("tagSet", "Missing"), None);
                assert_eq!(root.text("nextToken"), Some(""));
                assert_eq!(root.text("absent"), None);
                instances
                    .iter()
                    .map(|i| i.string("instanceId"))
                    .collect::<Vec<_>>()
            })
            .unwrap();
        assert_eq!(ids, ["i-1", "i-2"]);
    }

    #[test]
    fn query_protocol_members_and_paths_read_the_same_way() {
        let body = r#"<DescribeTagsResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">
  <DescribeTagsResult><TagDescriptions><member><ResourceArn>arn:1</ResourceArn>
    <Tags><member><Key>Project</Key><Value>p</Value></member></Tags></member></TagDescriptions>
  </DescribeTagsResult></DescribeTagsResponse>"#;
        let (arn, project) = Document::new(body.into())
            .read(|root| {
                let d = root
                    .at(&["DescribeTagsResult"])
                    .unwrap()
                    .list("TagDescriptions")
                    .next()
                    .unwrap();
                (
                    d.string("ResourceArn"),
                    d.tag("Tags", "Project").map(str::to_owned),
                )
            })
            .unwrap();
        assert_eq!((arn.as_str(), project.as_deref()), ("arn:1", Some("p")));
    }

    #[test]
    fn a_body_that_is_not_xml_is_malformed_with_an_excerpt() {
        let err = Document::new("<html>502 Bad Gateway".into())
            .read(|_| ())
            .unwrap_err();
        assert!(
            matches!(&err, AwsError::Malformed(m) if m.contains("502 Bad Gateway")),
            "{err}"
        );
    }
}
