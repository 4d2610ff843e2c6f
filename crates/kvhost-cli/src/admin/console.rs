//! The web console's assets, built into the binary (no CDN, no network): one page, its
//! script and its style sheet. They hold no data and need no token; everything they show
//! comes from the API, which does.

use hyper::header::{HeaderValue, ALLOW};
use hyper::{Method, Response, StatusCode};

use super::http::{error, with_body, AdminBody};

const INDEX_HTML: &str = include_str!("assets/index.html");
const CONSOLE_JS: &str = include_str!("assets/console.js");
const CONSOLE_CSS: &str = include_str!("assets/console.css");

/// The console asset at `path`, or 404 (405 for a method other than GET).
pub fn asset(method: &Method, path: &str) -> Response<AdminBody> {
    let found = match path {
        "/" | "/index.html" => Some(("text/html; charset=utf-8", INDEX_HTML)),
        "/console.js" => Some(("text/javascript; charset=utf-8", CONSOLE_JS)),
        "/console.css" => Some(("text/css; charset=utf-8", CONSOLE_CSS)),
        _ => None,
    };
    match found {
        Some(_) if method != Method::GET => {
            let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "the console takes GET");
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET"));
            response
        }
        Some((content_type, body)) => with_body(StatusCode::OK, content_type, body),
        None => error(
            StatusCode::NOT_FOUND,
            "not found: the console is at /, the API under /api/v1/ (see docs/admin.md)",
        ),
    }
}
