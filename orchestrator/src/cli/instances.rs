//! The instance lists that `ls`, `launch` and the demo print: one table, tables by cluster,
//! JSON or CSV, with the fields of the output contract.

use crate::cloud::Instance;
use crate::output::{csv_line, table};

const HEADERS: [&str; 8] = [
    "id",
    "name",
    "cluster",
    "instance_type",
    "az",
    "public_ip",
    "private_ip",
    "state",
];

fn fields(i: &Instance) -> [&str; 8] {
    fn dash(ip: &Option<String>) -> &str {
        ip.as_deref().unwrap_or("-")
    }
    [
        &i.id,
        &i.name,
        &i.cluster,
        &i.instance_type,
        &i.az,
        dash(&i.public_ip),
        dash(&i.private_ip),
        &i.state,
    ]
}

/// A table of `instances`, in the given order.
pub(crate) fn instance_table(instances: &[Instance]) -> String {
    let mut table = table(HEADERS);
    for i in instances {
        table.add_row(fields(i));
    }
    table.to_string()
}

/// `instances` (sorted by cluster) as one titled table per cluster.
pub(crate) fn instance_tables_by_cluster(instances: &[Instance]) -> String {
    let mut out = String::new();
    for group in instances.chunk_by(|a, b| a.cluster == b.cluster) {
        let cluster = if group[0].cluster.is_empty() {
            "(no cluster tag)"
        } else {
            &group[0].cluster
        };
        let plural = if group.len() == 1 { "" } else { "s" };
        out.push_str(&format!(
            "cluster {cluster}: {} instance{plural}\n",
            group.len()
        ));
        out.push_str(&instance_table(group));
        out.push_str("\n\n");
    }
    out.truncate(out.trim_end().len());
    out
}

/// `instances` as a JSON array of objects.
pub(crate) fn instance_json(instances: &[Instance]) -> String {
    serde_json::to_string_pretty(instances).unwrap_or_else(|_| "[]".to_owned())
}

/// `instances` as CSV with a header line; missing IPs are empty fields.
pub(crate) fn instance_csv(instances: &[Instance]) -> String {
    let mut out = csv_line(HEADERS);
    for i in instances {
        out.push('\n');
        out.push_str(&csv_line(fields(i).map(|f| if f == "-" { "" } else { f })));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, cluster: &str, public_ip: Option<&str>) -> Instance {
        Instance {
            public_ip: public_ip.map(Into::into),
            private_ip: Some("10.0.0.5".into()),
            ..Instance::running(id, cluster)
        }
    }

    #[test]
    fn json_has_the_contract_fields_and_null_for_a_missing_public_ip() {
        let json: serde_json::Value =
            serde_json::from_str(&instance_json(&[instance("i-1", "c1", None)])).unwrap();
        let row = &json[0];
        for field in HEADERS {
            assert!(row.get(field).is_some(), "missing {field}");
        }
        assert!(row["public_ip"].is_null());
        assert_eq!(row["private_ip"], "10.0.0.5");
    }

    #[test]
    fn tables_are_grouped_by_cluster() {
        let rows = [
            instance("i-1", "c1", Some("1.2.3.4")),
            instance("i-2", "c1", None),
            instance("i-3", "c2", None),
        ];
        let text = instance_tables_by_cluster(&rows);
        assert!(text.starts_with("cluster c1: 2 instances\n"), "{text}");
        assert!(text.contains("cluster c2: 1 instance\n"), "{text}");
        assert!(text.contains("1.2.3.4"));
    }

    #[test]
    fn csv_has_a_header_and_empty_fields_for_missing_ips() {
        let csv = instance_csv(&[instance("i-1", "c1", None)]);
        let mut lines = csv.lines();
        assert_eq!(
            lines.next(),
            Some("id,name,cluster,instance_type,az,public_ip,private_ip,state")
        );
        assert_eq!(
            lines.next(),
            Some("i-1,p-c1,c1,t3.micro,ca-central-1a,,10.0.0.5,running")
        );
    }
}
