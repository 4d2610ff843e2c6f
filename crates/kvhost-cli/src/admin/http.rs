//! The admin listener's HTTP plumbing: the response body type, JSON and error responses, the
//! security headers every response carries, and query strings.

use std::collections::BTreeMap;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;

/// Every admin response's body: whole, or streamed (an export).
pub type AdminBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// The Content-Security-Policy of every response: the console's own script and style only,
/// requests to its own origin only, no inline code, no frames, no forms, no plugins.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; \
    frame-ancestors 'none'; base-uri 'none'";

/// A response with `body`, of `content_type`, with the security headers.
pub fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<AdminBody> {
    let body = Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync();
    secured(status, content_type, body)
}

/// A response with a streamed `body`, with the security headers.
pub fn secured(
    status: StatusCode,
    content_type: &'static str,
    body: AdminBody,
) -> Response<AdminBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

/// A JSON response.
pub fn json(status: StatusCode, value: &impl Serialize) -> Response<AdminBody> {
    match serde_json::to_vec(value) {
        Ok(body) => with_body(status, "application/json", body),
        Err(err) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot encode the answer: {err}"),
        ),
    }
}

/// The `code` of a 404 for a bucket that is not configured.
pub const NO_SUCH_BUCKET: &str = "no-such-bucket";
/// The `code` of a 404 for a key that does not exist.
pub const NO_SUCH_KEY: &str = "no-such-key";

/// An error: `{"error": message}`.
pub fn error(status: StatusCode, message: &str) -> Response<AdminBody> {
    failure(status, None, message)
}

/// An error a client may act on: `{"error": message, "code": code}`.
pub fn coded_error(status: StatusCode, code: &'static str, message: &str) -> Response<AdminBody> {
    failure(status, Some(code), message)
}

fn failure(status: StatusCode, code: Option<&'static str>, message: &str) -> Response<AdminBody> {
    #[derive(Serialize)]
    struct Failure<'a> {
        error: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<&'static str>,
    }
    match serde_json::to_vec(&Failure {
        error: message,
        code,
    }) {
        Ok(body) => with_body(status, "application/json", body),
        Err(_) => with_body(status, "text/plain; charset=utf-8", message.to_string()),
    }
}

/// A query string's parameters, percent-decoded (`+` is a space, as in HTML forms). Refuses
/// a parameter not in `allowed`, one given twice, and one that is not UTF-8 once decoded.
pub fn query(raw: Option<&str>, allowed: &[&str]) -> Result<BTreeMap<String, String>, String> {
    let mut params = BTreeMap::new();
    for pair in raw
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode_component(&name.replace('+', " "))?;
        if !allowed.contains(&name.as_str()) {
            return Err(format!(
                "unknown query parameter {name:?}; this endpoint takes {}",
                if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                }
            ));
        }
        let value = decode_component(&value.replace('+', " "))?;
        if params.insert(name.clone(), value).is_some() {
            return Err(format!("query parameter {name:?} is given twice"));
        }
    }
    Ok(params)
}

/// A percent-encoded path segment (or query part, `+` already made a space) as text.
pub fn decode_component(raw: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| format!("{raw:?} is not UTF-8 once percent-decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded_strictly() {
        let params = query(Some("key=a%2Fb+c%2B&prefix="), &["key", "prefix"]).unwrap();
        assert_eq!(params["key"], "a/b c+");
        assert_eq!(params["prefix"], "");
        assert!(query(Some("key=a&key=b"), &["key"])
            .unwrap_err()
            .contains("twice"));
        assert!(query(Some("other=1"), &["key"])
            .unwrap_err()
            .contains("unknown"));
        assert!(query(Some("key=%ff"), &["key"])
            .unwrap_err()
            .contains("UTF-8"));
        assert!(query(None, &[]).unwrap().is_empty());
    }

    #[test]
    fn every_response_carries_the_security_headers() {
        let response = error(StatusCode::NOT_FOUND, "<b>x</b>");
        let headers = response.headers();
        assert_eq!(headers["content-type"], "application/json");
        assert!(headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(headers.get("access-control-allow-origin").is_none());
        assert!(headers.get("set-cookie").is_none());
    }
}
