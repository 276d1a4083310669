//! Validation of a parsed config: every error names the file, the field and the fix.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::Matcher;
use super::{Config, FixedResponse, Forward, Redirect, Rule, Stickiness, StickinessKind};
use crate::conditions::{Cidr, MAX_NAME_LEN, MAX_VALUES};
use crate::pattern::{Pattern, MAX_PATTERN_LEN};

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {field}: {problem}; {fix}")]
    Invalid {
        file: String,
        /// The field's path, e.g. `target_groups[0].targets[1].address`.
        field: String,
        problem: String,
        fix: String,
    },
}

/// The content types ALB's fixed responses take.
const FIXED_CONTENT_TYPES: [&str; 5] = [
    "text/plain",
    "text/css",
    "text/html",
    "application/javascript",
    "application/json",
];
/// ALB's limits: a fixed response's body, a redirect part's length, a weighted forward's groups
/// and each weight.
const MAX_FIXED_BODY: usize = 1024;
const MAX_REDIRECT_PART: usize = 128;
const MAX_WEIGHTED_GROUPS: usize = 5;
const MAX_WEIGHT: u32 = 999;

type Invalid = (String, String, &'static str);

/// Checks rule `r`'s action as ALB would: exactly one of `forward`, `redirect` and
/// `fixed_response`; a weighted forward of 1-5 distinct groups weighing 0-999, not all 0; a
/// redirect with status 301 or 302, a known protocol, a port, a path from `/`, parts of at most
/// 128 characters, that does not lead back to the same URL; a fixed response with a 2XX, 4XX or
/// 5XX status, one of ALB's content types and at most 1024 bytes of body.
fn action(r: usize, rule: &Rule) -> Result<(), Invalid> {
    let field = |name: &str| format!("rules[{r}].{name}");
    let given = usize::from(rule.forward.is_some())
        + usize::from(rule.redirect.is_some())
        + usize::from(rule.fixed_response.is_some());
    if given != 1 {
        return Err((
            field("forward"),
            format!("the rule has {given} actions"),
            "give the rule exactly one of forward, redirect and fixed_response",
        ));
    }
    if let Some(Forward::Weighted(groups)) = &rule.forward {
        if groups.is_empty() || groups.len() > MAX_WEIGHTED_GROUPS {
            return Err((
                field("forward"),
                format!("a weighted forward of {} groups", groups.len()),
                "weigh 1 to 5 target groups, as ALB does",
            ));
        }
        for (g, group) in groups.iter().enumerate() {
            if group.weight > MAX_WEIGHT {
                return Err((
                    field(&format!("forward[{g}].weight")),
                    format!("{} is over 999", group.weight),
                    "give each group a weight from 0 to 999",
                ));
            }
            if groups[..g].iter().any(|other| other.group == group.group) {
                return Err((
                    field(&format!("forward[{g}].group")),
                    format!("{:?} is weighed twice", group.group),
                    "name each group once in a weighted forward",
                ));
            }
        }
        if groups.iter().all(|g| g.weight == 0) {
            return Err((
                field("forward"),
                "every weight is 0, so no group would get a request".into(),
                "give at least one group a weight above 0",
            ));
        }
    }
    if let Some(redirect) = &rule.redirect {
        redirect_ok(redirect)
            .map_err(|(name, problem, fix)| (field(&format!("redirect.{name}")), problem, fix))?;
    }
    if let Some(fixed) = &rule.fixed_response {
        fixed_ok(fixed).map_err(|(name, problem, fix)| {
            (field(&format!("fixed_response.{name}")), problem, fix)
        })?;
    }
    if rule.group_stickiness_ms != 0 {
        if !matches!(rule.forward, Some(Forward::Weighted(_))) {
            return Err((
                field("group_stickiness_ms"),
                "group stickiness keeps a client with one of weighted groups, and this rule \
                 has none"
                    .into(),
                "remove group_stickiness_ms, or forward to weighted groups",
            ));
        }
        if !STICKINESS_MS.contains(&rule.group_stickiness_ms) {
            return Err((
                field("group_stickiness_ms"),
                format!("{} ms is out of ALB's range", rule.group_stickiness_ms),
                "give a duration from 1000 ms (1 s) to 604800000 ms (7 days)",
            ));
        }
    }
    Ok(())
}

/// Checks a fixed response as ALB would: a 2XX, 4XX or 5XX status, one of ALB's content types
/// and at most 1024 bytes of body. The field named is relative to the response.
fn fixed_ok(fixed: &FixedResponse) -> Result<(), Invalid> {
    if !matches!(fixed.status, 200..=299 | 400..=599) {
        return Err((
            "status".into(),
            format!("{} is not a 2XX, 4XX or 5XX status", fixed.status),
            "answer with a status such as 200, 404 or 503",
        ));
    }
    if let Some(kind) = &fixed.content_type {
        if !FIXED_CONTENT_TYPES.contains(&kind.as_str()) {
            return Err((
                "content_type".into(),
                format!("{kind:?} is not one of ALB's"),
                "use text/plain, text/css, text/html, application/javascript or application/json",
            ));
        }
    }
    if fixed
        .body
        .as_ref()
        .is_some_and(|b| b.len() > MAX_FIXED_BODY)
    {
        return Err((
            "body".into(),
            "is over 1024 bytes".into(),
            "keep the body to 1024 bytes, as ALB does",
        ));
    }
    Ok(())
}

/// Checks that the access log at `path` can be written without writing it: an existing file
/// that is not a directory and that this process may write, or a new one in a directory it may
/// write. (The writer creates and opens it; `--check` leaves nothing behind.)
fn access_log_ok(path: &std::path::Path) -> Result<(), (String, &'static str)> {
    let writable = |p: &std::path::Path| {
        use std::os::unix::ffi::OsStrExt;
        let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: `c` is a NUL-terminated path; access only reads it.
        unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err((
            format!("{} is a directory", path.display()),
            "name a file in it, e.g. access.log",
        )),
        Ok(_) if !writable(path) => Err((
            format!("{} cannot be written by this process", path.display()),
            "give the balancer's user write access to it, or choose another file",
        )),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            if !parent.is_dir() {
                Err((
                    format!("its directory {} does not exist", parent.display()),
                    "create the directory, or choose a file in one that exists",
                ))
            } else if !writable(parent) {
                Err((
                    format!(
                        "{} does not exist and its directory cannot be written",
                        path.display()
                    ),
                    "give the balancer's user write access to the directory, or create the file",
                ))
            } else {
                Ok(())
            }
        }
        Err(e) => Err((
            format!("{}: {e}", path.display()),
            "choose a file the balancer can write",
        )),
    }
}

/// Checks a group's stickiness as [`validate`] does, for `elb`, which takes it as a flag: the
/// problem and its fix.
pub fn check_stickiness(stickiness: &Stickiness) -> Result<(), String> {
    stickiness_ok(stickiness).map_err(|(_, problem, fix)| format!("{problem}: {fix}"))
}

/// ALB's range of a stickiness cookie's duration: 1 s to 7 days.
const STICKINESS_MS: std::ops::RangeInclusive<u64> = 1_000..=604_800_000;
/// Cookie name prefixes ALB keeps for itself, and elb's balancer's own.
const RESERVED_COOKIES: [&str; 5] = ["AWSALB", "AWSALBAPP", "AWSALBTG", "ELB-", "ELBAPP-"];

/// Checks a group's stickiness: a duration in ALB's range; for `app_cookie` the application's
/// cookie name, a token not in ALB's or the balancer's reserved prefixes; none for `lb_cookie`.
fn stickiness_ok(stickiness: &Stickiness) -> Result<(), Invalid> {
    if !STICKINESS_MS.contains(&stickiness.duration_ms) {
        return Err((
            "duration_ms".into(),
            format!("{} ms is out of ALB's range", stickiness.duration_ms),
            "give 1000 (1 s) to 604800000 (7 days)",
        ));
    }
    match (stickiness.kind, &stickiness.cookie_name) {
        (StickinessKind::LbCookie, None) => Ok(()),
        (StickinessKind::LbCookie, Some(_)) => Err((
            "cookie_name".into(),
            "lb_cookie stickiness uses the balancer's own cookie".into(),
            "remove cookie_name, or use type = \"app_cookie\"",
        )),
        (StickinessKind::AppCookie, None) => Err((
            "cookie_name".into(),
            "app_cookie stickiness needs the application's cookie".into(),
            "name the cookie your application sets, e.g. cookie_name = \"session\"",
        )),
        (StickinessKind::AppCookie, Some(name)) => {
            let token = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                return Err((
                    "cookie_name".into(),
                    format!("{name:?} is not a cookie name"),
                    "use letters, digits and - _ . (at most 64 characters)",
                ));
            }
            if RESERVED_COOKIES.iter().any(|p| name.starts_with(p)) {
                return Err((
                    "cookie_name".into(),
                    format!("{name:?} starts with a prefix ALB or the balancer keeps"),
                    "pick a name not starting with AWSALB, AWSALBAPP, AWSALBTG, ELB- or ELBAPP-",
                ));
            }
            Ok(())
        }
    }
}

/// Checks a redirect's parts; the error names the part.
fn redirect_ok(redirect: &Redirect) -> Result<(), Invalid> {
    if !matches!(redirect.status, 301 | 302) {
        return Err((
            "status".into(),
            format!("{} is not a redirect status ALB makes", redirect.status),
            "use 301 (permanent) or 302 (found)",
        ));
    }
    for (name, part) in [
        ("protocol", &redirect.protocol),
        ("host", &redirect.host),
        ("port", &redirect.port),
        ("path", &redirect.path),
        ("query", &redirect.query),
    ] {
        if part
            .as_ref()
            .is_some_and(|p| (p.is_empty() && name != "query") || p.len() > MAX_REDIRECT_PART)
        {
            return Err((
                name.into(),
                "is empty or over 128 characters".into(),
                "give 1 to 128 characters, or leave it out to keep the request's",
            ));
        }
    }
    if let Some(protocol) = &redirect.protocol {
        if !["HTTP", "HTTPS", "#{protocol}"].contains(&protocol.as_str()) {
            return Err((
                "protocol".into(),
                format!("{protocol:?} is not a protocol ALB redirects to"),
                "use HTTP, HTTPS or #{protocol}",
            ));
        }
    }
    if let Some(port) = &redirect.port {
        if port != "#{port}" && !port.parse::<u16>().is_ok_and(|p| p > 0) {
            return Err((
                "port".into(),
                format!("{port:?} is not a port"),
                "use 1-65535 or #{port}",
            ));
        }
    }
    if redirect.path.as_ref().is_some_and(|p| !p.starts_with('/')) {
        return Err((
            "path".into(),
            "does not start with /".into(),
            "write an absolute path, e.g. /#{path} or /new/#{path}",
        ));
    }
    if redirect.is_loop() {
        return Err((
            "protocol".into(),
            "the redirect leads back to the URL it came from (a loop)".into(),
            "change at least one part: e.g. protocol = \"HTTPS\", or another host or path",
        ));
    }
    Ok(())
}

/// Checks one rule's conditions and action as [`validate`] does (not whether its groups exist),
/// for `elb`, which takes rules as flags: the problem and its fix.
pub fn check_rule(rule: &Rule) -> Result<(), String> {
    conditions(0, rule)
        .and_then(|()| action(0, rule))
        .map_err(|(_, problem, fix)| format!("{problem}: {fix}"))
}

/// Checks rule `r`'s conditions beside path and host against ALB's rules: methods of `A-Z`, `-`
/// and `_`; header names that are HTTP tokens (not `Host`, which `host` matches) with at least
/// one value; query conditions with at least one pair; CIDRs; patterns of at most 128
/// characters; and at most [`MAX_VALUES`] comparison values in all.
fn conditions(r: usize, rule: &Rule) -> Result<(), (String, String, &'static str)> {
    let field = |name: &str| format!("rules[{r}].{name}");
    for (m, method) in rule.methods.iter().enumerate() {
        let ok = !method.is_empty()
            && method.len() <= MAX_NAME_LEN
            && method
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_');
        if !ok {
            return Err((
                field(&format!("methods[{m}]")),
                format!("{method:?} is not a method name"),
                "write methods in capitals, e.g. GET or POST (ALB compares them exactly)",
            ));
        }
    }
    for (h, header) in rule.headers.iter().enumerate() {
        let name_ok = !header.name.is_empty()
            && header.name.len() <= MAX_NAME_LEN
            && hyper::header::HeaderName::from_bytes(header.name.as_bytes()).is_ok()
            && !header.name.eq_ignore_ascii_case("host");
        if !name_ok {
            return Err((
                field(&format!("headers[{h}].name")),
                format!("{:?} cannot name a header condition", header.name),
                "name an HTTP header of at most 40 characters (for Host, use the rule's host)",
            ));
        }
        if header.values.is_empty() {
            return Err((
                field(&format!("headers[{h}].values")),
                "is empty".into(),
                "give at least one value pattern, e.g. values = [\"yes\"]",
            ));
        }
        for (v, value) in header.values.iter().enumerate() {
            Pattern::new(value).map_err(|problem| {
                (
                    field(&format!("headers[{h}].values[{v}]")),
                    problem,
                    "write a value of at most 128 characters, `*` and `?` as wildcards",
                )
            })?;
        }
    }
    for (q, query) in rule.query.iter().enumerate() {
        if query.pairs.is_empty() {
            return Err((
                field(&format!("query[{q}].pairs")),
                "is empty".into(),
                "give at least one { key = \"...\", value = \"...\" } pair",
            ));
        }
        for (p, pair) in query.pairs.iter().enumerate() {
            for (what, text) in [
                ("key", pair.key.as_deref()),
                ("value", Some(pair.value.as_str())),
            ] {
                if let Some(Err(problem)) = text.map(Pattern::new) {
                    return Err((
                        field(&format!("query[{q}].pairs[{p}].{what}")),
                        problem,
                        "write at most 128 characters, `*` and `?` as wildcards",
                    ));
                }
            }
        }
    }
    for (c, cidr) in rule.source_ips.iter().enumerate() {
        Cidr::parse(cidr).map_err(|problem| {
            (
                field(&format!("source_ips[{c}]")),
                problem,
                "write a CIDR such as 10.0.0.0/8 or 2001:db8::/32",
            )
        })?;
    }
    let values = 1
        + usize::from(rule.host.is_some())
        + rule.methods.len()
        + rule.headers.iter().map(|h| h.values.len()).sum::<usize>()
        + rule.query.iter().map(|q| q.pairs.len()).sum::<usize>()
        + rule.source_ips.len();
    if values > MAX_VALUES {
        return Err((
            field("priority"),
            format!("the rule compares {values} values (path, host and conditions)"),
            "keep at most 5 comparison values per rule, as ALB does; split it into two rules",
        ));
    }
    Ok(())
}

/// Checks what serde cannot; returns every target's parsed address, group by group.
pub(super) fn validate(file: &str, config: &Config) -> Result<Vec<Vec<SocketAddr>>, ConfigError> {
    let invalid = |field: String, problem: String, fix: &str| ConfigError::Invalid {
        file: file.to_string(),
        field,
        problem,
        fix: fix.to_string(),
    };
    if config.listeners.is_empty() {
        return Err(invalid(
            "listeners".into(),
            "no listener".into(),
            "add a [[listeners]] table with an address, e.g. address = \"0.0.0.0:80\"",
        ));
    }
    let mut bound = HashSet::new();
    for (i, listener) in config.listeners.iter().enumerate() {
        if listener.address.port() != 0 && !bound.insert(listener.address) {
            return Err(invalid(
                format!("listeners[{i}].address"),
                format!("{} is listed twice", listener.address),
                "remove the duplicate listener",
            ));
        }
        if let Some(redirect) = &listener.redirect {
            redirect_ok(redirect).map_err(|(name, problem, fix)| {
                invalid(format!("listeners[{i}].redirect.{name}"), problem, fix)
            })?;
        }
        if listener.protocol == super::Protocol::Http && !listener.certificates.is_empty() {
            return Err(invalid(
                format!("listeners[{i}].certificates"),
                "an http listener has no use for certificates".into(),
                "set protocol = \"https\" to terminate TLS, or remove the certificates",
            ));
        }
    }
    let limits = &config.limits;
    for (field, value) in [
        ("max_connections", limits.max_connections as u64),
        ("read_timeout_ms", limits.read_timeout_ms),
        ("grace_ms", limits.grace_ms),
        (
            "websocket_idle_timeout_ms",
            limits.websocket_idle_timeout_ms,
        ),
    ] {
        if value == 0 {
            return Err(invalid(
                format!("limits.{field}"),
                "is 0".into(),
                "set a positive number or remove the field for the default",
            ));
        }
    }
    if !(1024..=1024 * 1024).contains(&limits.max_header_bytes) {
        return Err(invalid(
            "limits.max_header_bytes".into(),
            format!("{} is out of range", limits.max_header_bytes),
            "set a size between 1024 and 1048576 bytes",
        ));
    }

    // HTTP/2's own limits (RFC 9113 6.5.2, 6.9.1): h2 and hyper assert on values past them.
    let http2 = &config.http2;
    const MAX_WINDOW: u32 = (1 << 31) - 1;
    for (field, value, low, high) in [
        (
            "max_concurrent_streams",
            u64::from(http2.max_concurrent_streams),
            1,
            u64::from(u32::MAX),
        ),
        (
            "stream_window_bytes",
            u64::from(http2.stream_window_bytes),
            65_535,
            u64::from(MAX_WINDOW),
        ),
        (
            "connection_window_bytes",
            u64::from(http2.connection_window_bytes),
            65_535,
            u64::from(MAX_WINDOW),
        ),
        (
            "max_send_buffer_bytes",
            http2.max_send_buffer_bytes as u64,
            1,
            u64::from(u32::MAX),
        ),
        (
            "max_pending_reset_streams",
            http2.max_pending_reset_streams as u64,
            1,
            u64::MAX,
        ),
        (
            "max_error_resets",
            http2.max_error_resets as u64,
            1,
            u64::MAX,
        ),
    ] {
        if !(low..=high).contains(&value) {
            return Err(invalid(
                format!("http2.{field}"),
                format!("{value} is out of range"),
                &format!("set a value between {low} and {high}, or remove it for the default"),
            ));
        }
    }

    let mut names = HashSet::new();
    for (g, group) in config.target_groups.iter().enumerate() {
        if group.name.is_empty() || !names.insert(group.name.as_str()) {
            return Err(invalid(
                format!("target_groups[{g}].name"),
                format!("{:?} is empty or used by another group", group.name),
                "give every target group its own non-empty name",
            ));
        }
    }
    let known_group = |field: String, name: &str| {
        if names.contains(name) {
            Ok(())
        } else {
            Err(invalid(
                field,
                format!("no target group is named {name:?}"),
                "name one of the [[target_groups]] or add that group",
            ))
        }
    };

    let mut priorities = HashSet::new();
    for (r, rule) in config.rules.iter().enumerate() {
        if !(1..=50_000).contains(&rule.priority) || !priorities.insert(rule.priority) {
            return Err(invalid(
                format!("rules[{r}].priority"),
                format!(
                    "{} is out of 1-50000 or used by another rule",
                    rule.priority
                ),
                "give every rule its own priority between 1 and 50000",
            ));
        }
        if let Err(problem) = Pattern::new(&rule.path_pattern) {
            return Err(invalid(
                format!("rules[{r}].path_pattern"),
                problem,
                "write a path such as /cluster1*, at most 128 characters",
            ));
        }
        if let Some(host) = &rule.host {
            if host.is_empty() || host.len() > MAX_PATTERN_LEN {
                return Err(invalid(
                    format!("rules[{r}].host"),
                    "is empty or longer than 128 characters".into(),
                    "write a host such as api.example.com or *.example.com, or remove the field",
                ));
            }
        }
        conditions(r, rule).map_err(|(field, problem, fix)| invalid(field, problem, fix))?;
        action(r, rule).map_err(|(field, problem, fix)| invalid(field, problem, fix))?;
        if let Some(forward) = &rule.forward {
            for (g, name) in forward.groups().into_iter().enumerate() {
                let field = match forward {
                    Forward::Group(_) => format!("rules[{r}].forward"),
                    Forward::Weighted(_) => format!("rules[{r}].forward[{g}].group"),
                };
                known_group(field, name)?;
            }
        }
    }
    let default = &config.default_action;
    if let Some(name) = &default.forward {
        known_group("default_action.forward".into(), name)?;
    }
    if let Some(fixed) = &default.fixed_response {
        if default.forward.is_some() {
            return Err(invalid(
                "default_action".into(),
                "has both forward and fixed_response".into(),
                "give the default action one of them",
            ));
        }
        fixed_ok(fixed).map_err(|(name, problem, fix)| {
            invalid(
                format!("default_action.fixed_response.{name}"),
                problem,
                fix,
            )
        })?;
    }
    if let Some(log) = &config.access_log {
        let path = super::access_log_path(std::path::Path::new(file), log);
        access_log_ok(&path)
            .map_err(|(problem, fix)| invalid("access_log.path".into(), problem, fix))?;
    }

    let mut seen = HashSet::new();
    let mut addresses = Vec::with_capacity(config.target_groups.len());
    for (g, group) in config.target_groups.iter().enumerate() {
        if let Some(stickiness) = &group.stickiness {
            stickiness_ok(stickiness).map_err(|(name, problem, fix)| {
                invalid(
                    format!("target_groups[{g}].stickiness.{name}"),
                    problem,
                    fix,
                )
            })?;
        }
        let at = |field: &str| format!("target_groups[{g}].{field}");
        for (field, value) in [
            ("connect_timeout_ms", group.connect_timeout_ms),
            ("response_timeout_ms", group.response_timeout_ms),
            ("idle_timeout_ms", group.idle_timeout_ms),
            ("health_check.interval_ms", group.health_check.interval_ms),
            ("health_check.timeout_ms", group.health_check.timeout_ms),
            ("queue_timeout_ms", group.queue_timeout_ms),
            (
                "max_requests_per_target",
                u64::from(group.max_requests_per_target),
            ),
        ] {
            if value == 0 {
                return Err(invalid(
                    at(field),
                    "is 0".into(),
                    "set a positive number or remove the field for the default",
                ));
            }
        }
        let check = &group.health_check;
        if check.timeout_ms >= check.interval_ms {
            return Err(invalid(
                at("health_check.timeout_ms"),
                format!(
                    "{} ms is not shorter than the interval ({} ms)",
                    check.timeout_ms, check.interval_ms
                ),
                "make the timeout shorter than health_check.interval_ms",
            ));
        }
        for (field, path) in [("path", &check.path), ("stats_path", &check.stats_path)] {
            if !path.starts_with('/') || path.parse::<hyper::Uri>().is_err() {
                return Err(invalid(
                    at(&format!("health_check.{field}")),
                    format!("{path:?} is not an absolute path"),
                    "write a path that starts with /, e.g. /healthz",
                ));
            }
        }
        for (field, value) in [
            ("healthy_threshold", check.healthy_threshold),
            ("unhealthy_threshold", check.unhealthy_threshold),
        ] {
            if !(1..=10).contains(&value) {
                return Err(invalid(
                    at(&format!("health_check.{field}")),
                    format!("{value} is out of range"),
                    "set a count between 1 and 10",
                ));
            }
        }
        if let Err(problem) = Matcher::parse(&check.matcher) {
            return Err(invalid(
                at("health_check.matcher"),
                problem,
                "write codes such as 200, 200,202 or 200-299",
            ));
        }
        let outlier = &group.outlier_detection;
        if outlier.max_ejected_percent > 100 {
            return Err(invalid(
                at("outlier_detection.max_ejected_percent"),
                format!("{} is over 100", outlier.max_ejected_percent),
                "set a percent between 0 and 100",
            ));
        }
        if outlier.max_ejection_ms < outlier.base_ejection_ms {
            return Err(invalid(
                at("outlier_detection.max_ejection_ms"),
                format!(
                    "{} ms is shorter than base_ejection_ms ({} ms)",
                    outlier.max_ejection_ms, outlier.base_ejection_ms
                ),
                "make the longest ejection at least as long as the first",
            ));
        }
        if outlier.consecutive_failures > 0 && outlier.base_ejection_ms == 0 {
            return Err(invalid(
                at("outlier_detection.base_ejection_ms"),
                "is 0 while ejection is on".into(),
                "set a positive time, or consecutive_failures = 0 to turn ejection off",
            ));
        }
        let retry = &group.retry;
        if !(1..=10).contains(&retry.attempts) {
            return Err(invalid(
                at("retry.attempts"),
                format!("{} is out of range", retry.attempts),
                "set between 1 (no retry) and 10 tries",
            ));
        }
        if retry.budget_percent > 100 {
            return Err(invalid(
                at("retry.budget_percent"),
                format!("{} is over 100", retry.budget_percent),
                "set a percent between 0 and 100",
            ));
        }
        let mut parsed = Vec::with_capacity(group.targets.len());
        for (t, target) in group.targets.iter().enumerate() {
            let field = at(&format!("targets[{t}].address"));
            let Ok(address) = target.address.parse::<SocketAddr>() else {
                let fix = if target.address.contains(':') {
                    "write an IP address and a port, e.g. 10.0.0.5:8000 (host names are not \
                     resolved)"
                } else {
                    "add the port, e.g. 10.0.0.5:8000 (host names are not resolved)"
                };
                return Err(invalid(
                    field,
                    format!("{:?} is not IP:port", target.address),
                    fix,
                ));
            };
            if !seen.insert(address) {
                return Err(invalid(
                    field,
                    format!("{address} is listed twice"),
                    "list each address once, in one group: its state is kept by address",
                ));
            }
            if !(1..=1000).contains(&target.weight) {
                return Err(invalid(
                    at(&format!("targets[{t}].weight")),
                    format!("{} is out of range", target.weight),
                    "set a weight between 1 and 1000",
                ));
            }
            parsed.push(address);
        }
        addresses.push(parsed);
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse;
    use crate::config::tests::SEED;

    /// The error for the seed config with `from` replaced by `to`.
    fn error(from: &str, to: &str) -> String {
        assert!(SEED.contains(from), "{from}");
        let text = SEED.replacen(from, to, 1);
        parse(Path::new("lb.toml"), &text).unwrap_err().to_string()
    }

    fn assert_names(message: &str, field: &str, fix: &str) {
        assert!(message.starts_with("lb.toml: "), "{message}");
        assert!(message.contains(field), "{message} should name {field}");
        assert!(message.contains(fix), "{message} should say {fix}");
    }

    /// The seed config's second rule with `conditions` added.
    fn with_conditions(conditions: &str) -> Result<(), String> {
        let rule = "forward = \"cluster2\"";
        let text = SEED.replacen(rule, &format!("{rule}\n{conditions}"), 1);
        parse(Path::new("lb.toml"), &text)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// The seed config with the second rule's action replaced by `action`.
    fn with_action(action: &str) -> Result<(), String> {
        let text = SEED.replacen("forward = \"cluster2\"", action, 1);
        parse(Path::new("lb.toml"), &text)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn stickiness_parses_and_its_mistakes_are_named_with_the_fix() {
        let with = |table: &str| {
            let text = SEED.replacen(
                "name = \"cluster1\"",
                &format!("name = \"cluster1\"\n[target_groups.stickiness]\n{table}"),
                1,
            );
            parse(Path::new("lb.toml"), &text)
                .map(drop)
                .map_err(|e| e.to_string())
        };
        with("type = \"lb_cookie\"\nduration_ms = 3600000").unwrap();
        with("type = \"app_cookie\"\nduration_ms = 60000\ncookie_name = \"session\"").unwrap();
        let field = "target_groups[0].stickiness";
        for (table, at, fix) in [
            (
                "type = \"lb_cookie\"\nduration_ms = 10",
                "duration_ms",
                "604800000",
            ),
            (
                "type = \"app_cookie\"\nduration_ms = 60000",
                "cookie_name",
                "your application sets",
            ),
            (
                "type = \"app_cookie\"\nduration_ms = 60000\ncookie_name = \"AWSALBAPP-1\"",
                "cookie_name",
                "not starting with AWSALB",
            ),
            (
                "type = \"lb_cookie\"\nduration_ms = 60000\ncookie_name = \"s\"",
                "cookie_name",
                "remove cookie_name",
            ),
        ] {
            assert_names(&with(table).unwrap_err(), &format!("{field}.{at}"), fix);
        }
    }

    #[test]
    fn actions_parse_and_their_mistakes_are_named_with_the_fix() {
        for good in [
            "forward = [{ group = \"cluster1\", weight = 95 }, { group = \"cluster2\", weight = 5 }]",
            "redirect = { status = 301, protocol = \"HTTPS\", port = \"443\" }",
            "fixed_response = { status = 503, content_type = \"text/html\", body = \"<p>soon</p>\" }",
        ] {
            with_action(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        let cases = [
            (
                "forward = [{ group = \"cluster1\", weight = 0 }, { group = \"cluster2\", weight = 0 }]",
                "rules[1].forward",
                "weight above 0",
            ),
            (
                "forward = [{ group = \"cluster1\", weight = 1000 }]",
                "rules[1].forward[0].weight",
                "from 0 to 999",
            ),
            (
                "forward = [{ group = \"cluster9\", weight = 1 }]",
                "rules[1].forward[0].group",
                "name one of the [[target_groups]]",
            ),
            ("redirect = { status = 301 }", "rules[1].redirect.protocol", "change at least one part"),
            ("redirect = { status = 307, protocol = \"HTTPS\" }", "rules[1].redirect.status", "301"),
            ("redirect = { status = 301, path = \"x\" }", "rules[1].redirect.path", "absolute path"),
            ("fixed_response = { status = 302 }", "rules[1].fixed_response.status", "503"),
            (
                "fixed_response = { status = 200, content_type = \"image/png\" }",
                "rules[1].fixed_response.content_type",
                "text/plain",
            ),
            (
                "forward = \"cluster2\"\nfixed_response = { status = 200 }",
                "rules[1].forward",
                "exactly one of",
            ),
            ("priority = 20", "rules[1].forward", "exactly one of"),
        ];
        for (action, field, fix) in cases {
            let text = if action.starts_with("priority") {
                SEED.replacen("forward = \"cluster2\"", "", 1)
            } else {
                SEED.replacen("forward = \"cluster2\"", action, 1)
            };
            let e = parse(Path::new("lb.toml"), &text).unwrap_err().to_string();
            assert_names(&e, field, fix);
        }
        let long = format!(
            "fixed_response = {{ status = 200, body = \"{}\" }}",
            "x".repeat(1025)
        );
        assert_names(
            &with_action(&long).unwrap_err(),
            "rules[1].fixed_response.body",
            "1024 bytes",
        );
    }

    #[test]
    fn conditions_parse_and_their_mistakes_are_named_with_the_fix() {
        with_conditions(
            "methods = [\"GET\"]\nsource_ips = [\"10.0.0.0/8\"]\n\
             [[rules.headers]]\nname = \"X-Canary\"\nvalues = [\"yes\"]",
        )
        .unwrap();
        let cases = [
            ("methods = [\"get\"]", "rules[1].methods[0]", "in capitals"),
            (
                "source_ips = [\"10.0.0.1/8\"]",
                "rules[1].source_ips[0]",
                "a CIDR such as",
            ),
            (
                "[[rules.headers]]\nname = \"Host\"\nvalues = [\"a\"]",
                "rules[1].headers[0].name",
                "use the rule's host",
            ),
            (
                "[[rules.headers]]\nname = \"X-A\"\nvalues = []",
                "rules[1].headers[0].values",
                "at least one value",
            ),
            (
                "[[rules.query]]\npairs = []",
                "rules[1].query[0].pairs",
                "at least one",
            ),
            (
                "methods = [\"GET\", \"PUT\", \"POST\", \"HEAD\", \"PATCH\"]",
                "rules[1].priority",
                "at most 5 comparison values",
            ),
        ];
        for (conditions, field, fix) in cases {
            let e = with_conditions(conditions).unwrap_err();
            assert_names(&e, field, fix);
        }
    }

    #[test]
    fn a_host_name_target_is_refused_because_nothing_is_resolved() {
        let e = error("127.0.0.1:8001", "backend.local:8001");
        assert_names(
            &e,
            "target_groups[0].targets[0].address",
            "host names are not resolved",
        );
    }

    #[test]
    fn a_target_without_a_port_is_told_to_add_one() {
        let e = error("\"127.0.0.1:8001\"", "\"10.0.0.1\"");
        assert_names(&e, "target_groups[0].targets[0].address", "add the port");
    }

    #[test]
    fn an_address_in_two_places_is_refused() {
        let e = error("127.0.0.1:8003", "127.0.0.1:8001");
        assert_names(
            &e,
            "target_groups[1].targets[0].address",
            "list each address once",
        );
    }

    #[test]
    fn a_rule_to_an_unknown_group_is_refused() {
        let e = error("forward = \"cluster2\"", "forward = \"cluster3\"");
        assert_names(&e, "rules[1].forward", "name one of the [[target_groups]]");
    }

    #[test]
    fn a_default_action_to_an_unknown_group_is_refused() {
        let e = error(
            "[default_action]\n        forward = \"cluster1\"",
            "[default_action]\n        forward = \"nope\"",
        );
        assert_names(
            &e,
            "default_action.forward",
            "name one of the [[target_groups]]",
        );
    }

    #[test]
    fn a_fixed_response_default_action_is_checked_as_a_rules_and_excludes_forward() {
        let default = "[default_action]\n        forward = \"cluster1\"";
        let fixed = "[default_action]\nfixed_response = { status = 503, body = \"soon\" }";
        parse(Path::new("lb.toml"), &SEED.replacen(default, fixed, 1)).unwrap();
        let both = format!("{default}\nfixed_response = {{ status = 503 }}");
        assert_names(
            &error(default, &both),
            "default_action",
            "give the default action one of them",
        );
        let bad = "[default_action]\nfixed_response = { status = 301 }";
        assert_names(
            &error(default, bad),
            "default_action.fixed_response.status",
            "such as 200, 404 or 503",
        );
    }

    #[test]
    fn group_stickiness_needs_a_weighted_forward_and_albs_range() {
        let weighted =
            "forward = [{ group = \"cluster1\", weight = 95 }, { group = \"cluster2\", weight = 5 }]";
        with_action(&format!("{weighted}\ngroup_stickiness_ms = 3600000")).unwrap();
        for (action, fix) in [
            (
                format!("{weighted}\ngroup_stickiness_ms = 999"),
                "604800000 ms (7 days)",
            ),
            (
                "forward = \"cluster2\"\ngroup_stickiness_ms = 60000".to_string(),
                "forward to weighted groups",
            ),
        ] {
            assert_names(
                &with_action(&action).unwrap_err(),
                "rules[1].group_stickiness_ms",
                fix,
            );
        }
    }

    #[test]
    fn two_rules_with_one_priority_are_refused() {
        let e = error("priority = 20", "priority = 10");
        assert_names(&e, "rules[1].priority", "its own priority");
    }

    #[test]
    fn a_pattern_longer_than_alb_allows_is_refused() {
        let long = format!("path_pattern = \"/{}\"", "a".repeat(128));
        let e = error("path_pattern = \"/cluster1*\"", &long);
        assert_names(&e, "rules[0].path_pattern", "at most 128 characters");
    }

    #[test]
    fn a_health_check_timeout_not_under_the_interval_is_refused() {
        let e = error(
            "name = \"cluster1\"",
            "name = \"cluster1\"\n[target_groups.health_check]\ninterval_ms = 500\ntimeout_ms = 500",
        );
        assert_names(
            &e,
            "target_groups[0].health_check.timeout_ms",
            "shorter than",
        );
    }

    #[test]
    fn a_bad_matcher_is_refused() {
        let e = error(
            "name = \"cluster1\"",
            "name = \"cluster1\"\n[target_groups.health_check]\nmatcher = \"2xx\"",
        );
        assert_names(&e, "target_groups[0].health_check.matcher", "200-299");
    }

    #[test]
    fn zero_attempts_are_refused() {
        let e = error(
            "name = \"cluster1\"",
            "name = \"cluster1\"\n[target_groups.retry]\nattempts = 0",
        );
        assert_names(&e, "target_groups[0].retry.attempts", "1 (no retry)");
    }

    #[test]
    fn a_duplicate_group_name_is_refused() {
        let e = error("name = \"cluster2\"", "name = \"cluster1\"");
        assert_names(&e, "target_groups[1].name", "its own non-empty name");
    }

    #[test]
    fn http2_bounds_past_the_protocol_s_limits_are_refused() {
        let e = error("", "[http2]\nconnection_window_bytes = 4294967295\n");
        assert!(e.contains("http2.connection_window_bytes"), "{e}");
        let e = error("", "[http2]\nmax_concurrent_streams = 0\n");
        assert!(e.contains("http2.max_concurrent_streams"), "{e}");
    }

    #[test]
    fn a_config_without_listeners_is_refused() {
        let e = error("[[listeners]]\n        address = \"127.0.0.1:0\"", "");
        assert!(e.contains("listeners"), "{e}");
    }
}
