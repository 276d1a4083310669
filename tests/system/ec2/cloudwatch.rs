//! CloudWatch: `elb launch --idle-terminate` gives each instance an alarm that terminates it
//! once idle (read back through CloudWatch's own API on moto), `elb ls` shows which instances
//! carry one, and the kill switch deletes the project's alarms and dashboard and nobody
//! else's, even one named with the project's prefix.

use roxmltree::Document;

use super::fixture::{ids, rows, Fixture, PROJECT, REGION};

const CLOUDWATCH: (&str, &str) = ("monitoring", "2010-08-01");

/// An alarm as CloudWatch describes it: name, instance, and the fields an idle alarm sets.
#[derive(Debug, PartialEq)]
struct Alarm {
    name: String,
    instance: String,
    fields: Vec<(String, String)>,
    actions: Vec<String>,
}

/// The alarms whose names start with `prefix`.
fn alarms(fx: &Fixture, prefix: &str) -> Vec<Alarm> {
    let xml = fx
        .api
        .call_service(
            CLOUDWATCH,
            REGION,
            "DescribeAlarms",
            &[("AlarmNamePrefix", prefix)],
        )
        .expect("DescribeAlarms");
    let doc = Document::parse(&xml).expect("XML");
    let text = |node: roxmltree::Node<'_, '_>, name: &str| {
        node.children()
            .find(|c| c.has_tag_name(name))
            .and_then(|c| c.text())
            .unwrap_or_default()
            .to_owned()
    };
    let Some(list) = doc.descendants().find(|n| n.has_tag_name("MetricAlarms")) else {
        return Vec::new();
    };
    list.children()
        .filter(|n| n.has_tag_name("member"))
        .map(|a| {
            let members = |list: &str| -> Vec<roxmltree::Node<'_, '_>> {
                a.children()
                    .find(|c| c.has_tag_name(list))
                    .map(|l| l.children().filter(|c| c.has_tag_name("member")).collect())
                    .unwrap_or_default()
            };
            Alarm {
                name: text(a, "AlarmName"),
                instance: members("Dimensions")
                    .into_iter()
                    .find(|d| text(*d, "Name") == "InstanceId")
                    .map(|d| text(d, "Value"))
                    .unwrap_or_default(),
                fields: [
                    "Namespace",
                    "MetricName",
                    "Statistic",
                    "Period",
                    "EvaluationPeriods",
                    "Threshold",
                    "ComparisonOperator",
                ]
                .iter()
                .map(|f| ((*f).to_owned(), text(a, f)))
                .collect(),
                actions: members("AlarmActions")
                    .into_iter()
                    .map(|m| m.text().unwrap_or_default().to_owned())
                    .collect(),
            }
        })
        .collect()
}

/// The `Project` tag of the alarm called `name`.
fn project_of(fx: &Fixture, name: &str) -> Option<String> {
    let arn = format!(
        "arn:aws:cloudwatch:{REGION}:{}:alarm:{name}",
        fx.api.account()
    );
    let xml = fx
        .api
        .call_service(
            CLOUDWATCH,
            REGION,
            "ListTagsForResource",
            &[("ResourceARN", &arn)],
        )
        .expect("ListTagsForResource");
    let doc = Document::parse(&xml).expect("XML");
    doc.descendants()
        .filter(|n| n.has_tag_name("member"))
        .find(|m| {
            m.children()
                .any(|c| c.has_tag_name("Key") && c.text() == Some("Project"))
        })
        .and_then(|m| m.children().find(|c| c.has_tag_name("Value")))
        .and_then(|v| v.text())
        .map(str::to_owned)
}

#[test]
fn idle_instances_get_an_alarm_that_ends_them_and_the_kill_switch_takes_the_alarms() {
    let fx = Fixture::new();
    let prefix = format!("elb-{PROJECT}-idle-");
    // Another project's alarm, named as if it were ours.
    let decoy = format!("{prefix}i-decoy");
    fx.api
        .call_service(
            CLOUDWATCH,
            REGION,
            "PutMetricAlarm",
            &[
                ("AlarmName", decoy.as_str()),
                ("Namespace", "AWS/EC2"),
                ("MetricName", "CPUUtilization"),
                ("Statistic", "Average"),
                ("Period", "300"),
                ("EvaluationPeriods", "1"),
                ("Threshold", "1"),
                ("ComparisonOperator", "LessThanThreshold"),
                ("Tags.member.1.Key", "Project"),
                ("Tags.member.1.Value", &format!("{PROJECT}-idle")),
            ],
        )
        .expect("the decoy alarm");

    for (flags, needle) in [
        (vec!["--idle-terminate", "7m"], "multiple of 5 minutes"),
        (vec!["--idle-terminate", "25h"], "up to 24h"),
        (vec!["--idle-terminate", "1h", "--idle-cpu", "0"], "above 0"),
    ] {
        fx.launch("cluster1", "t3.micro", 1, &flags)
            .expect_code(2)
            .expect_failure_mentioning(&[needle]);
    }
    fx.assert_no_aws_call();

    let launched = fx.launch(
        "cluster1",
        "t3.micro",
        2,
        &["--idle-terminate", "60m", "--idle-cpu", "3"],
    );
    launched.expect_code(0);
    assert!(launched.stderr.contains("below 3% for 1h"), "{launched}");
    let ours = ids(&rows(&launched));
    let found = alarms(&fx, &prefix);
    assert_eq!(found.len(), 3, "two ours and the decoy: {found:#?}");
    for id in &ours {
        let alarm = found
            .iter()
            .find(|a| &a.instance == id)
            .unwrap_or_else(|| panic!("{id} has an alarm: {found:#?}"));
        assert_eq!(alarm.name, format!("{prefix}{id}"));
        let expected = [
            ("Namespace", "AWS/EC2"),
            ("MetricName", "CPUUtilization"),
            ("Statistic", "Maximum"),
            ("Period", "300"),
            ("EvaluationPeriods", "12"),
            ("Threshold", "3.0"),
            ("ComparisonOperator", "LessThanThreshold"),
        ];
        for (field, value) in expected {
            assert!(
                alarm.fields.contains(&(field.to_owned(), value.to_owned())),
                "{field} = {value}: {alarm:#?}"
            );
        }
        assert_eq!(
            alarm.actions,
            [format!("arn:aws:automate:{REGION}:ec2:terminate")]
        );
        assert_eq!(project_of(&fx, &alarm.name).as_deref(), Some(PROJECT));
    }

    // `ls` says which instances carry one, in JSON and for people.
    let listed = fx.elb.run(&["ls", "--output", "json"]).json();
    for row in listed.as_array().expect("rows") {
        assert_eq!(row["idle_terminate"]["after"], "1h", "{row}");
        assert_eq!(row["idle_terminate"]["cpu_percent"], 3.0, "{row}");
    }
    let table = fx.elb.run(&["ls", "--output", "table"]);
    assert!(table.stdout.contains("idle alarms (CloudWatch)"), "{table}");
    assert!(!table.stdout.contains("i-decoy"), "{table}");

    // The kill switch plans and deletes our alarms, and only ours.
    let plan = fx
        .elb
        .run(&["kill", "--dry-run", "--output", "json"])
        .json();
    let mut planned: Vec<String> = plan["alarms"]
        .as_array()
        .expect("alarms in the plan")
        .iter()
        .map(|a| a.as_str().unwrap_or_default().to_owned())
        .collect();
    planned.sort();
    let mut names: Vec<String> = ours.iter().map(|id| format!("{prefix}{id}")).collect();
    names.sort();
    assert_eq!(planned, names);
    fx.kill(&[]).expect_code(0);
    let left: Vec<String> = alarms(&fx, &prefix).into_iter().map(|a| a.name).collect();
    assert_eq!(left, [decoy], "the decoy alone stays");
}

/// The names of the `elb` namespace's metrics with `dimension = value` among their dimensions.
pub(crate) fn published(fx: &Fixture, dimension: &str, value: &str) -> Vec<String> {
    let xml = fx
        .api
        .call_service(
            CLOUDWATCH,
            REGION,
            "ListMetrics",
            &[
                ("Namespace", "elb"),
                ("Dimensions.member.1.Name", dimension),
                ("Dimensions.member.1.Value", value),
            ],
        )
        .expect("ListMetrics");
    let doc = Document::parse(&xml).expect("XML");
    let mut names: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("MetricName"))
        .filter_map(|n| n.text().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn stats_publish_puts_the_agents_figures_under_the_elb_namespace() {
    let (fx, hosts) = crate::balance::ec2::world(2);
    fx.launch("cluster1", "t3.micro", 2, &[]).expect_code(0);
    let install_dir = hosts.install_dir.to_string_lossy().into_owned();
    crate::balance::ec2::deploy_agents(&fx, &install_dir);
    let ids: Vec<String> = fx.ours().into_iter().map(|i| i.id).collect();

    let out = fx.elb.run(&["stats", "--publish", "--timeout-ms", "3000"]);
    out.expect_code(0);
    assert!(
        out.stderr.contains("published under namespace elb"),
        "{out}"
    );
    for id in &ids {
        assert_eq!(
            published(&fx, "InstanceId", id),
            ["CPUUtilization", "LatencyP99", "RequestsPerSecond"],
            "{id}'s figures"
        );
    }
    assert_eq!(
        published(&fx, "Cluster", "cluster1"),
        [
            "CPUUtilization",
            "HealthyAgents",
            "LatencyP99",
            "RequestsPerSecond"
        ],
        "the cluster's, beside its instances'"
    );
    assert_eq!(
        fx.shim.count("PutMetricData"),
        1,
        "one call for the whole poll"
    );
}

#[test]
fn the_dashboard_shows_the_fleet_and_the_alb_and_goes_with_the_kill_switch() {
    let fx = Fixture::new();
    let ids: Vec<String> = ids(&rows(&fx.launch("cluster1", "t3.micro", 2, &[])))
        .into_iter()
        .collect();
    fx.launch("cluster2", "t3.micro", 1, &[]).expect_code(0);
    let made = fx
        .elb
        .run(&["cloudwatch", "dashboard", "--output", "json"])
        .json();
    assert_eq!(made["name"], format!("elb-{PROJECT}"));
    assert_eq!(
        (made["instances"].as_u64(), made["clusters"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(made["widgets"], 4, "no ALB yet: {made}");
    let body = |fx: &Fixture| -> serde_json::Value {
        let xml = fx
            .api
            .call_service(
                CLOUDWATCH,
                REGION,
                "GetDashboard",
                &[("DashboardName", &format!("elb-{PROJECT}"))],
            )
            .expect("GetDashboard");
        let doc = Document::parse(&xml).expect("XML");
        let text = doc
            .descendants()
            .find(|n| n.has_tag_name("DashboardBody"))
            .and_then(|n| n.text())
            .expect("a body");
        serde_json::from_str(text).expect("the body is JSON")
    };
    let text = body(&fx).to_string();
    for id in &ids {
        assert!(text.contains(&format!(
            r#"["AWS/EC2","CPUUtilization","InstanceId","{id}"]"#
        )));
    }
    assert!(
        text.contains(
            r#"["elb","RequestsPerSecond","Project","elb-from-scratch","Cluster","cluster2"]"#
        ),
        "{text}"
    );

    // With an ALB, a second run replaces the dashboard and shows it.
    let mut alb = vec!["alb", "up", "--poll-interval-ms", "100", "--wait", "5"];
    alb.extend(["--rule", "/c2*=cluster2", "--default", "cluster1"]);
    fx.elb.run(&alb).expect_code(0);
    let again = fx
        .elb
        .run(&["cloudwatch", "dashboard", "--output", "json"])
        .json();
    assert_eq!(again["widgets"], 6, "{again}");
    let lb = again["alb"]
        .as_str()
        .expect("the ALB's dimension")
        .to_owned();
    assert!(lb.starts_with(&format!("app/{PROJECT}-alb/")), "{lb}");
    assert!(body(&fx).to_string().contains(&lb));

    let plan = fx
        .elb
        .run(&["kill", "--dry-run", "--output", "json"])
        .json();
    assert_eq!(
        plan["dashboards"],
        serde_json::json!([format!("elb-{PROJECT}")])
    );
    fx.kill(&[]).expect_code(0);
    let left = fx
        .api
        .call_service(CLOUDWATCH, REGION, "ListDashboards", &[])
        .expect("ListDashboards");
    assert!(!left.contains("<DashboardName>"), "{left}");
}

/// `2026-12-08T01:38:34Z` for seconds since the epoch.
fn iso(secs: u64) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn report_adds_cloudwatchs_cpu_to_a_bench_run_and_says_what_is_missing() {
    use crate::harness::Fault;

    let (fx, hosts) = crate::balance::ec2::world(2);
    fx.launch("cluster1", "t3.micro", 2, &[]).expect_code(0);
    let install_dir = hosts.install_dir.to_string_lossy().into_owned();
    crate::balance::ec2::deploy_agents(&fx, &install_dir);
    let dir = fx.elb.state_dir().join("bench-run");
    let dir_text = dir.to_string_lossy().into_owned();
    let bench = fx.elb.run(&[
        "bench",
        "--cluster",
        "cluster1",
        "--requests",
        "200",
        "--concurrency",
        "4",
        "--out",
        &dir_text,
    ]);
    bench.expect_code(0);
    assert!(
        bench
            .stderr
            .contains(&format!("elb report --cloudwatch {dir_text}")),
        "{bench}"
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let started = results["clusters"][0]["started_at_unix_ms"]
        .as_u64()
        .unwrap()
        / 1000;
    let mut ids: Vec<String> = fx.ours().into_iter().map(|i| i.id).collect();
    ids.sort();
    // CloudWatch has published the first instance's CPU, not yet the second's.
    fx.api
        .call_service(
            CLOUDWATCH,
            REGION,
            "PutMetricData",
            &[
                ("Namespace", "AWS/EC2"),
                ("MetricData.member.1.MetricName", "CPUUtilization"),
                ("MetricData.member.1.Value", "42.5"),
                ("MetricData.member.1.Unit", "Percent"),
                ("MetricData.member.1.Timestamp", &iso(started)),
                ("MetricData.member.1.Dimensions.member.1.Name", "InstanceId"),
                ("MetricData.member.1.Dimensions.member.1.Value", &ids[0]),
            ],
        )
        .expect("PutMetricData");

    let report = fx.elb.run(&[
        "report",
        "--cloudwatch",
        &dir_text,
        "--wait",
        "0",
        "--output",
        "json",
    ]);
    report.expect_code(0);
    let made = report.json();
    assert_eq!(
        fx.shim.count("GetMetricData"),
        1,
        "one call for every query"
    );
    let figures = made["instances"].as_array().expect("instances");
    assert_eq!(figures.len(), 2, "{made:#}");
    let of = |id: &str| figures.iter().find(|f| f["id"] == id).expect("listed");
    let published = of(&ids[0]);
    assert_eq!(published["cloudwatch_cpu_percent"], 42.5, "{published:#}");
    assert!(published["agent_cpu_percent"].is_number(), "{published:#}");
    assert!(
        published["note"].as_str().unwrap().contains("not compared"),
        "a 2-second run is not judged against a minute: {published:#}"
    );
    let missing = of(&ids[1]);
    assert!(
        missing["cloudwatch_cpu_percent"].is_null(),
        "never a 0: {missing:#}"
    );
    assert!(missing["note"]
        .as_str()
        .unwrap()
        .contains("no CloudWatch datapoint yet"));
    let notes = made["notes"].to_string();
    assert!(notes.contains("less than CloudWatch's shortest") && notes.contains("1 of 2"));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cloudwatch.json")).unwrap())
            .unwrap();
    assert_eq!(written, made, "cloudwatch.json beside results.json");
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(merged["cloudwatch"], made, "and inside it");
    assert_eq!(
        merged["clusters"], results["clusters"],
        "the run's own figures kept"
    );
    let table = fx.elb.run(&[
        "report",
        "--cloudwatch",
        &dir_text,
        "--wait",
        "0",
        "--output",
        "table",
    ]);
    assert!(
        table.stdout.contains("42.5") && table.stdout.contains(&ids[1]),
        "{table}"
    );

    // Throttled past the client's retries: said, and nothing written as a figure.
    fx.shim
        .inject(Fault::error("GetMetricData", 400, "Throttling"));
    let throttled = fx
        .elb
        .run(&["report", "--cloudwatch", &dir_text, "--wait", "0"]);
    throttled
        .expect_code(1)
        .expect_failure_mentioning(&["throttled", "Throttling"]);
}
