//! ALB's target group stickiness on the balancer's own cookies.
//!
//! - `lb_cookie` (duration-based): every answer of the group carries `ELB-<group>`, naming the
//!   target that answered, for `duration_ms`; a request that carries it goes to that target.
//! - `app_cookie` (application-based): when a target's answer sets the application's cookie
//!   `cookie_name`, the balancer adds `ELBAPP-<group>` naming that target (ALB's `AWSALBAPP`);
//!   a request that carries it goes to that target.
//!
//! - A weighted forward's group stickiness: its answers carry `ELBTG` (ALB's `AWSALBTG`), naming
//!   the group drawn, for the rule's `group_stickiness_ms`; a request that carries it goes to
//!   that group while the forward still weighs it above zero.
//!
//! A cookie's value is the id it names (target or group) and an HMAC-SHA256 of the cookie's
//! name and the id under a key drawn when the balancer starts (kept across reloads), so a
//! forged cookie, one from another balancer or another cookie's value is ignored, as is one
//! naming a target that is not in the group. A sticky target
//! that is not healthy loses its clients to the algorithm's choice once: the answer carries a
//! new cookie naming the new target.

use std::sync::OnceLock;
use std::time::Duration;

use hyper::header::{HeaderMap, HeaderValue, COOKIE, SET_COOKIE};
use ring::hmac;

use crate::config::{Stickiness, StickinessKind};
use crate::group::Group;
use crate::rules::Weighted;

/// This process's cookie key.
fn key() -> &'static hmac::Key {
    static KEY: OnceLock<hmac::Key> = OnceLock::new();
    KEY.get_or_init(|| {
        hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .unwrap_or_else(|_| unreachable!("the system's random source works"))
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [high, low] => u8::from_str_radix(std::str::from_utf8(&[*high, *low]).ok()?, 16).ok(),
            _ => None,
        })
        .collect()
}

/// What the MAC covers: the cookie's name (which names the group for a target's cookie) and
/// the id it carries, so that no value is good under another name.
fn signed(cookie: &str, id: &str) -> Vec<u8> {
    let mut input = Vec::with_capacity(cookie.len() + id.len() + 1);
    input.extend_from_slice(cookie.as_bytes());
    input.push(0);
    input.extend_from_slice(id.as_bytes());
    input
}

/// The balancer's cookie for `group` under `stickiness`.
pub(crate) fn cookie_name(group: &str, stickiness: &Stickiness) -> String {
    match stickiness.kind {
        StickinessKind::LbCookie => format!("ELB-{group}"),
        StickinessKind::AppCookie => format!("ELBAPP-{group}"),
    }
}

/// The cookie of a weighted forward's group stickiness (ALB's `AWSALBTG`), naming a group.
const GROUP_COOKIE: &str = "ELBTG";

/// The id a request's cookie `cookie` carries, when its MAC is this balancer's.
fn read(headers: &HeaderMap, cookie: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == cookie)
        .find_map(|(_, value)| {
            let (id, tag) = value.split_once('.')?;
            let id = String::from_utf8(unhex(id)?).ok()?;
            let tag = unhex(tag)?;
            hmac::verify(key(), &signed(cookie, &id), &tag).ok()?;
            Some(id)
        })
}

/// Adds cookie `cookie` carrying `id` for `duration_ms` to an answer.
fn write(headers: &mut HeaderMap, cookie: &str, id: &str, duration_ms: u64) {
    let tag = hmac::sign(key(), &signed(cookie, id));
    let max_age = Duration::from_millis(duration_ms).as_secs().max(1);
    let cookie = format!(
        "{cookie}={}.{}; Max-Age={max_age}; Path=/; HttpOnly",
        hex(id.as_bytes()),
        hex(tag.as_ref())
    );
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        headers.append(SET_COOKIE, cookie);
    }
}

/// The target id a request's cookie for `group` names, when its MAC is this balancer's.
pub(crate) fn requested(
    headers: &HeaderMap,
    group: &str,
    stickiness: &Stickiness,
) -> Option<String> {
    read(headers, &cookie_name(group, stickiness))
}

/// The member of `group` a request's stickiness cookie names, if the group is sticky and the
/// cookie is this balancer's for a member of the group.
pub(crate) fn member(group: &Group, headers: &HeaderMap) -> Option<usize> {
    let stickiness = group.config.stickiness.as_ref()?;
    let id = requested(headers, &group.config.name, stickiness)?;
    group.members.iter().position(|m| m.id == id)
}

/// Adds the balancer's cookie naming target `id` to an answer of `group`, when `stickiness`
/// says so: always for `lb_cookie`, when the answer sets the application's cookie for
/// `app_cookie`.
pub(crate) fn stick(headers: &mut HeaderMap, group: &str, stickiness: &Stickiness, id: &str) {
    if stickiness.kind == StickinessKind::AppCookie {
        let app = stickiness.cookie_name.as_deref().unwrap_or_default();
        let sets_app_cookie = headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|h| h.to_str().ok())
            .any(|h| h.split_once('=').is_some_and(|(n, _)| n.trim() == app));
        if !sets_app_cookie {
            return;
        }
    }
    write(
        headers,
        &cookie_name(group, stickiness),
        id,
        stickiness.duration_ms,
    );
}

/// The group of `weighted` a request's group cookie keeps it with: one of `groups` (the
/// config's, by index) that the forward still gives requests to.
pub(crate) fn kept_group(
    headers: &HeaderMap,
    groups: &[Group],
    weighted: &Weighted,
) -> Option<usize> {
    let name = read(headers, GROUP_COOKIE)?;
    groups
        .iter()
        .position(|g| g.config.name == name)
        .filter(|&g| weighted.offers(g))
}

/// Adds the group cookie keeping the client with `group` for `duration_ms` to an answer.
pub(crate) fn stick_group(headers: &mut HeaderMap, group: &str, duration_ms: u64) {
    write(headers, GROUP_COOKIE, group, duration_ms);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lb() -> Stickiness {
        Stickiness {
            kind: StickinessKind::LbCookie,
            duration_ms: 3_600_000,
            cookie_name: None,
        }
    }

    /// The `Cookie` header a client sends back after `answer`.
    fn returned(answer: &HeaderMap) -> HeaderMap {
        let pairs: Vec<String> = answer
            .get_all(SET_COOKIE)
            .iter()
            .map(|h| h.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect();
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(&pairs.join("; ")).unwrap());
        headers
    }

    #[test]
    fn a_cookie_names_its_target_for_its_group_only_and_forgeries_are_ignored() {
        let mut answer = HeaderMap::new();
        stick(&mut answer, "web", &lb(), "i-1");
        let set = answer[SET_COOKIE].to_str().unwrap();
        assert!(
            set.starts_with("ELB-web=") && set.contains("Max-Age=3600"),
            "{set}"
        );
        let back = returned(&answer);
        assert_eq!(requested(&back, "web", &lb()).as_deref(), Some("i-1"));
        assert_eq!(requested(&back, "api", &lb()), None, "another group's name");
        let value = set.split(';').next().unwrap().split_once('=').unwrap().1;
        let (_, tag) = value.split_once('.').unwrap();
        let mut forged = HeaderMap::new();
        let other = format!("ELB-web={}.{tag}", hex(b"i-2"));
        forged.insert(COOKIE, HeaderValue::from_str(&other).unwrap());
        assert_eq!(
            requested(&forged, "web", &lb()),
            None,
            "a MAC for another id"
        );
        forged.insert(COOKIE, HeaderValue::from_static("a=b; ELB-web=zz.00"));
        assert_eq!(requested(&forged, "web", &lb()), None);
    }

    #[test]
    fn a_group_cookie_is_good_only_as_itself() {
        let mut answer = HeaderMap::new();
        stick_group(&mut answer, "green", 60_000);
        let set = answer[SET_COOKIE].to_str().unwrap().to_owned();
        assert!(
            set.starts_with("ELBTG=") && set.contains("Max-Age=60"),
            "{set}"
        );
        assert_eq!(
            read(&returned(&answer), GROUP_COOKIE).as_deref(),
            Some("green")
        );
        // The same value under a target cookie's name is not good there, nor the reverse.
        let value = set.split(';').next().unwrap().split_once('=').unwrap().1;
        let mut swapped = HeaderMap::new();
        swapped.insert(
            COOKIE,
            HeaderValue::from_str(&format!("ELB-green={value}")).unwrap(),
        );
        assert_eq!(requested(&swapped, "green", &lb()), None);
        let mut target = HeaderMap::new();
        stick(&mut target, "web", &lb(), "green");
        let value = target[SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        let value = value.split_once('=').unwrap().1;
        let mut swapped = HeaderMap::new();
        swapped.insert(
            COOKIE,
            HeaderValue::from_str(&format!("ELBTG={value}")).unwrap(),
        );
        assert_eq!(read(&swapped, GROUP_COOKIE), None);
    }

    #[test]
    fn app_cookie_stickiness_follows_the_applications_cookie() {
        let app = Stickiness {
            kind: StickinessKind::AppCookie,
            duration_ms: 60_000,
            cookie_name: Some("session".into()),
        };
        let mut plain = HeaderMap::new();
        stick(&mut plain, "web", &app, "i-1");
        assert!(
            plain.get(SET_COOKIE).is_none(),
            "no application cookie, no sticky cookie"
        );
        let mut login = HeaderMap::new();
        login.insert(SET_COOKIE, HeaderValue::from_static("session=abc; Path=/"));
        stick(&mut login, "web", &app, "i-1");
        assert_eq!(login.get_all(SET_COOKIE).iter().count(), 2);
        assert_eq!(
            requested(&returned(&login), "web", &app).as_deref(),
            Some("i-1")
        );
    }
}
