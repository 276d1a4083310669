//! The answers a rule's action makes without a target: ALB's `redirect` and `fixed-response`.

use hyper::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use hyper::{Response, StatusCode};

use super::ResponseBody;
use crate::conditions::RequestView;
use crate::config::{FixedResponse, Redirect};
use crate::rules::strip_port;

/// The content type of a fixed response that names none.
pub(crate) const DEFAULT_CONTENT_TYPE: &str = "text/plain";

/// The redirect's answer to `request`, which came on a listener of `scheme` (`http`, `https`)
/// and `port`: the `Location` rebuilt from the redirect's parts, each defaulting to the
/// request's, with `#{protocol}`, `#{host}`, `#{port}`, `#{path}` (without its leading `/`) and
/// `#{query}` replaced by the request's own. The port is left out when it is the protocol's
/// default, the `?` when the query is empty.
pub(crate) fn redirect(
    redirect: &Redirect,
    request: &RequestView<'_>,
    scheme: &str,
    port: u16,
) -> Response<ResponseBody> {
    let host = request.host.map_or("", strip_port);
    let port = port.to_string();
    let path = request.path.strip_prefix('/').unwrap_or(request.path);
    let query = request.query.unwrap_or("");
    let full = redirect.filled();
    let fill = |part: &Option<String>| {
        part.as_deref()
            .unwrap_or_default()
            .replace("#{protocol}", scheme)
            .replace("#{host}", host)
            .replace("#{port}", &port)
            .replace("#{path}", path)
            .replace("#{query}", query)
    };
    let protocol = fill(&full.protocol).to_ascii_lowercase();
    let to_host = fill(&full.host);
    let to_port = fill(&full.port);
    let to_path = fill(&full.path);
    let to_query = fill(&full.query);
    let default_port = matches!(
        (protocol.as_str(), to_port.as_str()),
        ("http", "80") | ("https", "443")
    );
    let mut location = format!("{protocol}://{to_host}");
    if !default_port {
        location.push(':');
        location.push_str(&to_port);
    }
    location.push_str(&to_path);
    if !to_query.is_empty() {
        location.push('?');
        location.push_str(&to_query);
    }
    let mut response = Response::new(ResponseBody::full(Vec::new()));
    *response.status_mut() = if redirect.status == 301 {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::FOUND
    };
    match HeaderValue::from_str(&location) {
        Ok(value) => {
            response.headers_mut().insert(LOCATION, value);
        }
        // Only a request whose own parts cannot make a header gets here: not a redirect then.
        Err(_) => *response.status_mut() = StatusCode::BAD_REQUEST,
    }
    response
}

/// The fixed response's answer.
pub(crate) fn fixed(fixed: &FixedResponse) -> Response<ResponseBody> {
    let body = fixed.body.clone().unwrap_or_default().into_bytes();
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() =
        StatusCode::from_u16(fixed.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = fixed
        .content_type
        .as_deref()
        .unwrap_or(DEFAULT_CONTENT_TYPE);
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(
        redirect: &Redirect,
        host: &str,
        path: &str,
        query: Option<&str>,
        scheme: &str,
        port: u16,
    ) -> String {
        let headers = hyper::HeaderMap::new();
        let view = RequestView {
            host: Some(host),
            path,
            query,
            method: "GET",
            headers: &headers,
            client: std::net::Ipv4Addr::LOCALHOST.into(),
        };
        let response = super::redirect(redirect, &view, scheme, port);
        response.headers()[LOCATION].to_str().unwrap().to_owned()
    }

    #[test]
    fn http_to_https_keeps_host_path_and_query_and_drops_the_default_port() {
        let to_https = Redirect {
            status: 301,
            protocol: Some("HTTPS".into()),
            port: Some("443".into()),
            ..Redirect::default()
        };
        assert_eq!(
            location(
                &to_https,
                "shop.example:80",
                "/a/b",
                Some("x=1"),
                "http",
                80
            ),
            "https://shop.example/a/b?x=1"
        );
        assert_eq!(
            location(&to_https, "shop.example", "/", None, "http", 80),
            "https://shop.example/"
        );
    }

    #[test]
    fn parts_take_placeholders_and_a_non_default_port_is_kept() {
        let moved = Redirect {
            status: 302,
            host: Some("new.#{host}".into()),
            path: Some("/v2/#{path}".into()),
            query: Some("from=#{port}&#{query}".into()),
            ..Redirect::default()
        };
        assert_eq!(
            location(
                &moved,
                "old.example:8080",
                "/items",
                Some("id=3"),
                "http",
                8080
            ),
            "http://new.old.example:8080/v2/items?from=8080&id=3"
        );
    }

    #[test]
    fn a_fixed_response_has_its_status_type_and_body() {
        let answer = fixed(&FixedResponse {
            status: 503,
            content_type: None,
            body: Some("down for maintenance".into()),
        });
        assert_eq!(answer.status(), 503);
        assert_eq!(answer.headers()[CONTENT_TYPE], DEFAULT_CONTENT_TYPE);
    }
}
