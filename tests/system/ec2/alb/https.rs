//! `elb alb up` with `elb balance up`'s HTTPS flags: an HTTPS listener on the ALB whose
//! certificates are the files given (imported into ACM once, tagged), with the same policy,
//! rules and SNI certificates as elb's own balancer gets from the same flags; removed with the
//! ALB.

use std::path::Path;

use super::super::fixture::{Fixture, REGION};
use super::local_balancer_config;
use crate::harness::tls::Certificate;

const POLICY: &str = "ELBSecurityPolicy-TLS13-1-3-2021-06";

/// The HTTPS flags both commands take: two names, port 8443, the TLS 1.3-only policy.
fn https_flags(shop: &Certificate, api: &Certificate) -> Vec<String> {
    let path = |p: &Path| p.display().to_string();
    [
        "--https-cert".to_owned(),
        path(&shop.cert),
        "--https-key".into(),
        path(&shop.key),
        "--https-cert".into(),
        path(&api.cert),
        "--https-key".into(),
        path(&api.key),
        "--https-port".into(),
        "8443".into(),
        "--tls-policy".into(),
        POLICY.into(),
    ]
    .into()
}

/// The PEM body of a certificate file, whitespace-normalised.
fn pem(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("read the certificate")
        .split_whitespace()
        .collect()
}

#[test]
fn alb_up_and_balance_up_make_the_same_https_listener_from_the_same_flags() {
    let shop = Certificate::for_names(&["shop.example.test"]);
    let api = Certificate::for_names(&["*.api.example.test"]);
    let flags = https_flags(&shop, &api);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();

    // The ALB on moto.
    let fx = Fixture::new();
    fx.two_clusters();
    fx.alb_up(&flags).expect_code(0);
    let elb_api = fx.elb_api();
    let lb_arn = fx.alb_arn();
    let listeners = elb_api.https_listeners(REGION, &lb_arn);
    assert_eq!(listeners.len(), 1, "one HTTPS listener: {listeners:#?}");
    let https = &listeners[0];
    assert_eq!(
        (https.port.as_str(), https.policy.as_str()),
        ("8443", POLICY)
    );
    let acm = elb_api.acm_certificates(REGION);
    assert_eq!(acm.len(), 2, "both certificates imported: {acm:#?}");
    let pem_of = |arn: &str| {
        acm.iter()
            .find(|(a, _, _)| a == arn)
            .map(|(_, body, _)| body.split_whitespace().collect::<String>())
            .unwrap_or_else(|| panic!("{arn} is in ACM"))
    };
    assert_eq!(
        pem_of(&https.default_certificate),
        pem(&shop.cert),
        "the first is the default"
    );
    assert_eq!(https.sni_certificates.len(), 1, "{https:#?}");
    assert_eq!(
        pem_of(&https.sni_certificates[0]),
        pem(&api.cert),
        "the second is for SNI"
    );
    for (arn, _, tags) in &acm {
        assert_eq!(
            tags.get("Project").map(String::as_str),
            Some(super::PROJECT),
            "{arn}"
        );
        assert_eq!(
            tags.get("ManagedBy").map(String::as_str),
            Some("elb"),
            "{arn}"
        );
    }
    // The HTTPS listener routes as the HTTP one does.
    assert_eq!(
        elb_api.rules(REGION, &https.arn),
        elb_api.rules(REGION, &fx.listener_arn("80")),
        "the same rules on both listeners"
    );

    // A second run finds the certificates again: nothing imported, nothing changed.
    fx.assert_second_up_changes_nothing(&flags);
    assert_eq!(elb_api.acm_certificates(REGION).len(), 2);

    // elb's own balancer from the same flags: the same port, policy and certificates in order.
    let config = local_balancer_config(&flags);
    let listener = config
        .listeners
        .iter()
        .find(|l| l.protocol == proto::balancer_config::Protocol::Https)
        .expect("an HTTPS listener");
    assert_eq!(listener.address.port(), 8443, "{listener:?}");
    assert_eq!(listener.tls_policy.name(), POLICY);
    let certificates: Vec<String> = listener
        .certificates
        .iter()
        .map(|c| pem(Path::new(&c.cert)))
        .collect();
    assert_eq!(certificates, [pem(&shop.cert), pem(&api.cert)]);

    // With --redirect-http-to-https, port 80 redirects everything to the HTTPS listener and
    // keeps no rules; elb's balancer's HTTP listener redirects the same way.
    let mut redirecting = flags.clone();
    redirecting.push("--redirect-http-to-https");
    fx.alb_up(&redirecting).expect_code(0);
    let http = fx.listener_arn("80");
    assert!(
        elb_api.rule_conditions(REGION, &http).is_empty(),
        "no rules on port 80"
    );
    let listeners = elb_api
        .call(REGION, "DescribeListeners", &[("LoadBalancerArn", &lb_arn)])
        .expect("DescribeListeners");
    // Port 80's listener, up to the end of its default actions.
    let from = listeners
        .find("<Port>80</Port>")
        .expect("port 80's listener");
    let to = from
        + listeners[from..]
            .find("</DefaultActions>")
            .expect("its actions");
    let port80 = &listeners[from..to];
    for part in [
        "<Type>redirect</Type>",
        "<Protocol>HTTPS</Protocol>",
        "<Port>8443</Port>",
        "<StatusCode>HTTP_301</StatusCode>",
    ] {
        assert!(port80.contains(part), "{part} in {port80}");
    }
    fx.assert_second_up_changes_nothing(&redirecting);
    let config = local_balancer_config(&redirecting);
    let http_listener = &config.listeners[0];
    assert_eq!(
        http_listener.redirect,
        Some(proto::balancer_config::Redirect {
            status: 301,
            protocol: Some("HTTPS".into()),
            port: Some("8443".into()),
            ..proto::balancer_config::Redirect::default()
        })
    );
    fx.elb
        .run(&["alb", "up", "--redirect-http-to-https"])
        .expect_code(2)
        .expect_failure_mentioning(&["needs an HTTPS listener"]);

    // The kill switch plans the certificates with the ALB and deletes them once no listener
    // holds them (`alb down` deletes through the same path).
    let plan = fx.elb.run(&["--output", "table", "kill", "--dry-run"]);
    plan.expect_code(0);
    assert_eq!(
        plan.stdout.matches("delete certificate").count(),
        2,
        "the plan names both certificates:\n{plan}"
    );
    fx.kill(&[]).expect_code(0);
    assert!(
        elb_api.acm_certificates(REGION).is_empty(),
        "certificates deleted"
    );
    assert!(
        elb_api.load_balancers(REGION).is_empty(),
        "the ALB went first"
    );
}

/// Bad HTTPS input is refused before any call, naming the flag and the fix.
#[test]
fn bad_https_input_for_the_alb_is_refused_before_any_call() {
    let fx = Fixture::new();
    let shop = Certificate::for_names(&["shop.example.test"]);
    let other = Certificate::for_names(&["other.example.test"]);
    let (cert, key) = (
        shop.cert.display().to_string(),
        shop.key.display().to_string(),
    );
    let other_key = other.key.display().to_string();
    let alb_up = |args: &[&str]| {
        let mut all = vec!["alb", "up"];
        all.extend(args);
        fx.elb.run(&all)
    };
    alb_up(&["--https-cert", &cert, "--https-key", &other_key])
        .expect_code(2)
        .expect_failure_mentioning(&["pair each certificate with the key"]);
    alb_up(&["--https-cert", "/nonexistent.pem", "--https-key", &key])
        .expect_code(2)
        .expect_failure_mentioning(&["no such file"]);
    alb_up(&["--https-certificate-arn", "arn:aws:s3:::bucket"])
        .expect_code(2)
        .expect_failure_mentioning(&["not a certificate ARN"]);
    std::fs::set_permissions(
        &shop.key,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");
    alb_up(&["--https-cert", &cert, "--https-key", &key])
        .expect_code(2)
        .expect_failure_mentioning(&["chmod 600"]);
    fx.assert_no_aws_call();
}
