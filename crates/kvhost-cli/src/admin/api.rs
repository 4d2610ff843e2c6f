//! The admin API's endpoints (documented in docs/admin.md): buckets, keys by prefix, values,
//! export and import, metrics. Every one needs the bearer token, and goes through the same
//! registry, limits included, as the components a server runs.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use kvhost::{BucketHandle, Config, Error, Grants, Registry};
use serde::Serialize;
use tokio::sync::mpsc;

use super::console;
use super::http::{
    coded_error, decode_component, error, json, query, secured, with_body, AdminBody,
    NO_SUCH_BUCKET, NO_SUCH_KEY,
};
use super::token::Token;
use crate::import::Importer;
use crate::jsonl;
use crate::metrics::Metrics;

/// Export chunks of about this many bytes go to the client at a time.
const EXPORT_CHUNK_BYTES: usize = 64 * 1024;

/// A configured bucket as `GET /api/v1/buckets` describes it.
#[derive(Debug, Clone, Serialize)]
pub struct BucketInfo {
    /// The bucket's name.
    pub name: String,
    /// Its engine: embedded, memory, redis or redis-cluster.
    pub backend: &'static str,
    /// For embedded buckets: immediate or relaxed.
    pub durability: Option<&'static str>,
}

impl BucketInfo {
    /// Every bucket of `config`, by name.
    pub fn all(config: &Config) -> Vec<BucketInfo> {
        config
            .buckets
            .iter()
            .map(|(name, bucket)| BucketInfo {
                name: name.clone(),
                backend: bucket.backend.name(),
                durability: (bucket.backend == kvhost::BackendKind::Embedded).then_some(
                    match bucket.durability {
                        kvhost::Durability::Immediate => "immediate",
                        kvhost::Durability::Relaxed => "relaxed",
                    },
                ),
            })
            .collect()
    }
}

/// What the admin API serves.
pub struct Api {
    /// The buckets (the running server's own registry).
    pub registry: Arc<Registry>,
    /// What the buckets are.
    pub buckets: Vec<BucketInfo>,
    /// The server's metrics.
    pub metrics: Arc<Metrics>,
    /// The bearer token every API request must carry.
    pub token: Token,
}

impl Api {
    /// Answers one request: a console asset, or an API call.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<AdminBody>, Infallible> {
        let path = request.uri().path().to_string();
        let Some(route) = path.strip_prefix("/api/v1/") else {
            return Ok(console::asset(request.method(), &path));
        };
        let presented = request
            .headers()
            .get(AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        if !self.token.admits(presented) {
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "this needs the admin token: send `Authorization: Bearer TOKEN` (the token is in \
                 DATA_DIR/admin.json, or the file given with --admin-token-file)",
            );
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Ok(response);
        }
        let segments: Vec<&str> = route.split('/').collect();
        let response = match segments.as_slice() {
            ["buckets"] => only_get(&request, || {
                json(
                    StatusCode::OK,
                    &Buckets {
                        buckets: &self.buckets,
                    },
                )
            }),
            ["metrics"] => only_get(&request, || {
                with_body(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    self.metrics.render(),
                )
            }),
            ["stats"] => only_get(&request, || {
                json(StatusCode::OK, &self.metrics.bucket_totals())
            }),
            ["buckets", bucket, action] => match self.bucket(bucket) {
                Ok(bucket) => self.bucket_call(bucket, action, request).await,
                Err(response) => *response,
            },
            _ => error(
                StatusCode::NOT_FOUND,
                &format!("no endpoint /api/v1/{route}; see docs/admin.md"),
            ),
        };
        Ok(response)
    }

    /// The bucket named by a path segment, or the error response.
    fn bucket(&self, segment: &str) -> Result<BucketHandle, Box<Response<AdminBody>>> {
        let name = decode_component(segment)
            .map_err(|message| Box::new(error(StatusCode::BAD_REQUEST, &message)))?;
        self.registry
            .open(&name, &Grants::All)
            .map_err(|err| match err {
                Error::NoSuchStore => coded_error(
                    StatusCode::NOT_FOUND,
                    NO_SUCH_BUCKET,
                    &format!(
                        "no bucket named {name:?}; configured buckets: {}",
                        self.registry.names().collect::<Vec<_>>().join(", ")
                    ),
                ),
                other => kv_error(&name, &other),
            })
            .map_err(Box::new)
    }

    async fn bucket_call(
        &self,
        bucket: BucketHandle,
        action: &str,
        request: Request<Incoming>,
    ) -> Response<AdminBody> {
        let method = request.method().clone();
        let raw_query = request.uri().query().map(str::to_string);
        let raw_query = raw_query.as_deref();
        match (action, &method) {
            ("keys", &Method::GET) => match query(raw_query, &["prefix", "cursor"]) {
                Ok(params) => {
                    list_keys(
                        &bucket,
                        param(&params, "prefix"),
                        params.get("cursor").map(String::as_str),
                    )
                    .await
                }
                Err(message) => error(StatusCode::BAD_REQUEST, &message),
            },
            ("value", &Method::GET | &Method::PUT | &Method::DELETE) => {
                let key = match query(raw_query, &["key"]) {
                    Ok(params) => match params.get("key") {
                        Some(key) => key.clone(),
                        None => {
                            return error(
                                StatusCode::BAD_REQUEST,
                                "say which key: ?key=PERCENT-ENCODED-KEY",
                            )
                        }
                    },
                    Err(message) => return error(StatusCode::BAD_REQUEST, &message),
                };
                if let Err(err) = bucket.limits().check_key(&key) {
                    return error(StatusCode::BAD_REQUEST, &err.to_string());
                }
                match method {
                    Method::GET => get_value(&bucket, &key).await,
                    Method::PUT => put_value(&bucket, key, request.into_body()).await,
                    _ => match bucket.delete(key).await {
                        Ok(()) => {
                            with_body(StatusCode::NO_CONTENT, "text/plain; charset=utf-8", "")
                        }
                        Err(err) => kv_error(bucket.name(), &err),
                    },
                }
            }
            ("export", &Method::GET) => match query(raw_query, &["prefix"]) {
                Ok(params) => export(bucket, param(&params, "prefix").to_string()),
                Err(message) => error(StatusCode::BAD_REQUEST, &message),
            },
            ("import", &Method::POST) => match query(raw_query, &[]) {
                Ok(_) => import(&bucket, request.into_body()).await,
                Err(message) => error(StatusCode::BAD_REQUEST, &message),
            },
            ("keys" | "export", _) => not_allowed("GET"),
            ("value", _) => not_allowed("GET, PUT, DELETE"),
            ("import", _) => not_allowed("POST"),
            _ => error(
                StatusCode::NOT_FOUND,
                &format!("no endpoint {action:?} on a bucket; see docs/admin.md"),
            ),
        }
    }
}

#[derive(Serialize)]
struct Buckets<'a> {
    buckets: &'a [BucketInfo],
}

/// A query parameter, or "" when absent.
fn param<'p>(params: &'p std::collections::BTreeMap<String, String>, name: &str) -> &'p str {
    params.get(name).map_or("", String::as_str)
}

/// Runs `answer` for a GET, else 405.
fn only_get(
    request: &Request<Incoming>,
    answer: impl FnOnce() -> Response<AdminBody>,
) -> Response<AdminBody> {
    if request.method() == Method::GET {
        answer()
    } else {
        not_allowed("GET")
    }
}

fn not_allowed(allow: &'static str) -> Response<AdminBody> {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("this endpoint takes {allow}"),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

/// A key-value error as a response: the interface's errors by their meaning, a bad cursor as
/// the client's mistake, anything else (a backend that failed) as the server's.
fn kv_error(bucket: &str, err: &Error) -> Response<AdminBody> {
    let status = match err {
        Error::NoSuchStore => StatusCode::NOT_FOUND,
        Error::AccessDenied => StatusCode::FORBIDDEN,
        Error::Other(message) if message.starts_with("invalid cursor") => StatusCode::BAD_REQUEST,
        Error::Other(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, &format!("bucket {bucket:?}: {err}"))
}

#[derive(Serialize)]
struct Page {
    keys: Vec<String>,
    cursor: Option<String>,
}

async fn list_keys(
    bucket: &BucketHandle,
    prefix: &str,
    cursor: Option<&str>,
) -> Response<AdminBody> {
    match bucket.list_keys_with_prefix(prefix, cursor).await {
        Ok(page) => json(
            StatusCode::OK,
            &Page {
                keys: page.keys,
                cursor: page.cursor,
            },
        ),
        Err(err) => kv_error(bucket.name(), &err),
    }
}

async fn get_value(bucket: &BucketHandle, key: &str) -> Response<AdminBody> {
    match bucket.get(key).await {
        Ok(Some(value)) => with_body(StatusCode::OK, "application/octet-stream", value),
        Ok(None) => coded_error(
            StatusCode::NOT_FOUND,
            NO_SUCH_KEY,
            &format!("key {key:?} does not exist in bucket {:?}", bucket.name()),
        ),
        Err(err) => kv_error(bucket.name(), &err),
    }
}

async fn put_value(bucket: &BucketHandle, key: String, body: Incoming) -> Response<AdminBody> {
    let limit = bucket.limits().max_value_bytes;
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the value is larger than the limit of {limit} bytes (limits.max_value_bytes)"
            ),
        )
    };
    let value = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the upload broke off: {err}"),
            )
        }
    };
    match bucket.set(key, value).await {
        Ok(()) => with_body(StatusCode::NO_CONTENT, "text/plain; charset=utf-8", ""),
        Err(err) => kv_error(bucket.name(), &err),
    }
}

/// Streams every entry whose key starts with `prefix` as JSON lines. A failure part-way
/// ends the body with an error, so the client sees a broken transfer, never a short export
/// that looks whole.
fn export(bucket: BucketHandle, prefix: String) -> Response<AdminBody> {
    let (chunks, received) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut cursor: Option<String> = None;
        let mut chunk = Vec::with_capacity(EXPORT_CHUNK_BYTES);
        loop {
            let read = jsonl::export_page(&bucket, &prefix, cursor.as_deref(), &mut chunk).await;
            let next = match read {
                Ok(next) => next,
                Err(err) => {
                    let message = format!("bucket {:?}: {err}", bucket.name());
                    tracing::warn!("admin export stopped: {message}");
                    let _ = chunks.send(Err(std::io::Error::other(message))).await;
                    return;
                }
            };
            let done = next.is_none();
            if (done || chunk.len() >= EXPORT_CHUNK_BYTES) && !chunk.is_empty() {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(EXPORT_CHUNK_BYTES));
                if chunks.send(Ok(full.into())).await.is_err() {
                    return; // The client went away.
                }
            }
            match next {
                Some(next) => cursor = Some(next),
                None => return,
            }
        }
    });
    let frames = futures_util::stream::unfold(received, |mut received| async move {
        received
            .recv()
            .await
            .map(|chunk| (chunk.map(Frame::data), received))
    });
    secured(
        StatusCode::OK,
        "application/x-ndjson",
        StreamBody::new(frames).boxed_unsync(),
    )
}

#[derive(Serialize)]
struct Imported<'a> {
    imported: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// Sets every entry of a JSON-lines upload, streamed, in batches. A bad line stops the
/// import there: the entries before it are written, and the answer says how many.
async fn import(bucket: &BucketHandle, mut body: Incoming) -> Response<AdminBody> {
    let limits = bucket.limits();
    // The longest line an entry within the limits can take: a key JSON-escaped (at most six
    // bytes per byte), a value in base64, and the braces and names.
    let max_line = limits.max_key_bytes.saturating_mul(6)
        + limits.max_value_bytes.div_ceil(3).saturating_mul(4)
        + 64;
    let mut importer = Importer::new(bucket);
    let mut pending: Vec<u8> = Vec::new();
    let mut number = 0usize;
    let mut stopped: Option<(StatusCode, String)> = None;
    'upload: loop {
        let data = match body.frame().await {
            None => {
                if !pending.is_empty() {
                    number += 1;
                    if let Err(message) =
                        import_line(&mut importer, &std::mem::take(&mut pending)).await
                    {
                        stopped =
                            Some((StatusCode::BAD_REQUEST, format!("line {number}: {message}")));
                    }
                }
                break;
            }
            Some(Err(err)) => {
                stopped = Some((
                    StatusCode::BAD_REQUEST,
                    format!("the upload broke off after line {number}: {err}"),
                ));
                break;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue, // Trailers carry no entries.
            },
        };
        pending.extend_from_slice(&data);
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
            number += 1;
            let line = &pending[start..start + end];
            start += end + 1;
            if let Err(message) = import_line(&mut importer, line).await {
                stopped = Some((StatusCode::BAD_REQUEST, format!("line {number}: {message}")));
                break 'upload;
            }
        }
        pending.drain(..start);
        if pending.len() > max_line {
            stopped = Some((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "line {} is longer than any entry within the limits can be ({max_line} bytes)",
                    number + 1
                ),
            ));
            break;
        }
    }
    let imported = importer.imported;
    match (importer.finish().await, stopped) {
        (Ok(imported), None) => json(
            StatusCode::OK,
            &Imported {
                imported,
                error: None,
            },
        ),
        (Ok(imported), Some((status, message))) => {
            let message = format!("{message}; import stopped there: the first {imported} entries are in bucket {:?}, none after them", bucket.name());
            json(
                status,
                &Imported {
                    imported,
                    error: Some(&message),
                },
            )
        }
        (Err(err), _) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &Imported {
                imported,
                error: Some(&format!("{err:#}")),
            },
        ),
    }
}

/// Imports one line (blank lines are skipped).
async fn import_line(importer: &mut Importer<'_>, line: &[u8]) -> Result<(), String> {
    let line = std::str::from_utf8(line).map_err(|_| "the line is not UTF-8".to_string())?;
    if line.trim().is_empty() {
        return Ok(());
    }
    let (key, value) = jsonl::read_entry(line)?;
    importer
        .push(key, value)
        .await
        .map_err(|err| format!("{err:#}"))
}
