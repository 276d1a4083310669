//! Header rewriting: hop-by-hop headers removed both ways, `X-Forwarded-*` added.

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::Uri;

use super::Origin;

/// Hop-by-hop headers (RFC 9110 7.6.1, plus the legacy `Keep-Alive` and `Proxy-Connection`):
/// they describe one connection and must not be forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

/// Removes hop-by-hop headers, those named in `Connection` included. `Upgrade` goes too: the
/// balancer does not tunnel upgraded connections. Most heads have none: one pass over the
/// names finds out, before any lookup.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if !headers
        .keys()
        .any(|name| name == header::UPGRADE || HOP_BY_HOP.contains(name))
    {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(&HOP_BY_HOP) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// Prepares a client's request headers for a target: hop-by-hop removed, the client's IP
/// appended to `X-Forwarded-For`, `X-Forwarded-Proto` (what the client used, `http` or
/// `https`) and `X-Forwarded-Port` (the listener's) set as ALB does.
pub(crate) fn forward_request(headers: &mut HeaderMap, origin: &Origin) {
    strip_hop_by_hop(headers);
    let client = &origin.forwarded_for;
    if !headers.contains_key(X_FORWARDED_FOR) {
        headers.insert(X_FORWARDED_FOR, client.clone());
    } else if let Ok(client) = client.to_str() {
        append_forwarded_for(headers, client);
    }
    headers.insert(X_FORWARDED_PROTO, origin.forwarded_proto.clone());
    headers.insert(X_FORWARDED_PORT, origin.forwarded_port.clone());
}

/// Makes an HTTP/2 request's headers those of the HTTP/1.1 request a target gets: `Host` from
/// the `:authority` (RFC 9113 8.3.1), and the `Cookie` fields, which HTTP/2 may send one per
/// cookie, joined into one with `; ` (RFC 9113 8.2.3).
pub(crate) fn from_http2(headers: &mut HeaderMap, uri: &Uri) {
    if !headers.contains_key(header::HOST) {
        if let Some(authority) = uri.authority() {
            if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
                headers.insert(header::HOST, host);
            }
        }
    }
    let mut cookies = headers.get_all(header::COOKIE).iter();
    if let (Some(_), Some(_)) = (cookies.next(), cookies.next()) {
        let joined: Vec<&[u8]> = headers
            .get_all(header::COOKIE)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        if let Ok(value) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
            headers.insert(header::COOKIE, value);
        }
    }
}

/// Folds every `X-Forwarded-For` line into one and appends `client`.
fn append_forwarded_for(headers: &mut HeaderMap, client: &str) {
    let mut chain: Vec<String> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
        .collect();
    chain.push(client.to_owned());
    let chain = chain.join(", ");
    // Earlier lines were folded into `chain`.
    headers.remove(X_FORWARDED_FOR);
    if let Ok(value) = HeaderValue::from_str(&chain) {
        headers.insert(X_FORWARDED_FOR, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(headers: &mut HeaderMap, client: &'static str, port: u16) {
        let client = std::net::SocketAddr::new(client.parse().unwrap(), 40000);
        forward_request(headers, &Origin::new(client, port, "http"));
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_removed() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("x-kept", "yes"),
            ("host", "a"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["host", "x-kept"]);
    }

    #[test]
    fn the_client_is_appended_to_x_forwarded_for() {
        let mut h = headers(&[("x-forwarded-for", "10.0.0.1")]);
        forward(&mut h, "127.0.0.9", 8080);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-port"], "8080");
    }

    #[test]
    fn several_x_forwarded_for_lines_are_folded_into_one() {
        let mut h = HeaderMap::new();
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.2"));
        forward(&mut h, "127.0.0.9", 80);
        assert_eq!(h.get_all(X_FORWARDED_FOR).iter().count(), 1);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 127.0.0.9");
    }

    #[test]
    fn an_http2_request_gets_host_from_its_authority_and_one_cookie_field() {
        let mut h = headers(&[("cookie", "a=1")]);
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        from_http2(&mut h, &"https://shop.example:8443/cart".parse().unwrap());
        assert_eq!(h["host"], "shop.example:8443");
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h["cookie"], "a=1; b=2");
        let mut single = headers(&[("cookie", "a=1"), ("host", "kept")]);
        from_http2(&mut single, &"https://other/".parse().unwrap());
        assert_eq!(single["host"], "kept");
        assert_eq!(single["cookie"], "a=1");
    }

    #[test]
    fn without_a_chain_the_client_alone_is_sent() {
        let mut h = HeaderMap::new();
        forward(&mut h, "::1", 80);
        assert_eq!(h["x-forwarded-for"], "::1");
    }
}
