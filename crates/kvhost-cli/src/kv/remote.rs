//! `kvhost kv` through a running kvhost's admin API (docs/admin.md): a small HTTP/1.1 client,
//! one connection per call, over plain HTTP (the admin listener is loopback by default; reach
//! another machine's through an SSH tunnel).

use std::io::Read;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;

/// What is percent-encoded in a path segment or query value: everything but `A-Z a-z 0-9
/// - . _ ~`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

type RequestBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// A client of one admin API.
pub struct Client {
    /// `host:port`.
    authority: String,
    /// `Bearer TOKEN`.
    authorization: String,
}

/// A configured bucket, as the API lists it.
#[derive(Deserialize)]
pub struct RemoteBucket {
    /// Its name.
    pub name: String,
    /// Its backend.
    pub backend: String,
}

/// A page of keys, as the API answers.
#[derive(Deserialize)]
struct RemotePage {
    keys: Vec<String>,
    cursor: Option<String>,
}

/// The answer to an import.
#[derive(Deserialize)]
struct Imported {
    imported: usize,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Failure {
    error: String,
    #[serde(default)]
    code: Option<String>,
}

impl Client {
    /// A client of the admin API at `url` (`http://HOST:PORT`), sending `token`.
    pub fn new(url: &str, token: &str) -> Result<Client> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!(
                "--server {url:?}: give the admin API's address as http://HOST:PORT (it is plain \
                 HTTP; for another machine's, use an SSH tunnel)"
            );
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            bail!("--server {url:?}: give the admin API's address as http://HOST:PORT");
        }
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            bail!("the admin token is empty or has characters a header cannot carry");
        }
        Ok(Client {
            authority: authority.to_string(),
            authorization: format!("Bearer {token}"),
        })
    }

    /// The configured buckets.
    pub async fn buckets(&self) -> Result<Vec<RemoteBucket>> {
        #[derive(Deserialize)]
        struct Buckets {
            buckets: Vec<RemoteBucket>,
        }
        let response = self
            .call(Method::GET, "/api/v1/buckets".into(), empty())
            .await?;
        let body = ok_body(response).await?;
        Ok(serde_json::from_slice::<Buckets>(&body)
            .context("the admin API answered something other than a bucket list")?
            .buckets)
    }

    /// A key's value, `None` if it does not exist.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let path = value_path(bucket, key);
        let response = self.call(Method::GET, path, empty()).await?;
        if response.status() == StatusCode::NOT_FOUND {
            let status = response.status();
            let failure = failure(status, &collect(response).await?);
            if failure.code.as_deref() == Some("no-such-key") {
                return Ok(None);
            }
            bail!("{}", failure.error);
        }
        Ok(Some(ok_body(response).await?.to_vec()))
    }

    /// Sets a key.
    pub async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<()> {
        let body = Full::new(Bytes::from(value))
            .map_err(|never| match never {})
            .boxed_unsync();
        let response = self
            .call(Method::PUT, value_path(bucket, key), body)
            .await?;
        ok_body(response).await.map(drop)
    }

    /// Deletes a key.
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        let response = self
            .call(Method::DELETE, value_path(bucket, key), empty())
            .await?;
        ok_body(response).await.map(drop)
    }

    /// One page of the keys starting with `prefix`, after `cursor`.
    pub async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        cursor: Option<&str>,
    ) -> Result<kvhost::KeyResponse> {
        let mut path = format!("{}/keys?prefix={}", bucket_path(bucket), encode(prefix));
        if let Some(cursor) = cursor {
            path.push_str("&cursor=");
            path.push_str(&encode(cursor));
        }
        let response = self.call(Method::GET, path, empty()).await?;
        let body = ok_body(response).await?;
        let page: RemotePage = serde_json::from_slice(&body)
            .context("the admin API answered something other than a page of keys")?;
        Ok(kvhost::KeyResponse {
            keys: page.keys,
            cursor: page.cursor,
        })
    }

    /// Streams the export of the entries starting with `prefix` into `write`, chunk by chunk.
    pub async fn export(
        &self,
        bucket: &str,
        prefix: &str,
        mut write: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let path = format!("{}/export?prefix={}", bucket_path(bucket), encode(prefix));
        let response = self.call(Method::GET, path, empty()).await?;
        if !response.status().is_success() {
            let status = response.status();
            bail!("{}", failure(status, &collect(response).await?).error);
        }
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.context("the export broke off (the server said why in its log)")?;
            if let Ok(data) = frame.into_data() {
                write(&data)?;
            }
        }
        Ok(())
    }

    /// Uploads JSON lines from `input` to be imported; returns how many entries were.
    pub async fn import(&self, bucket: &str, mut input: Box<dyn Read + Send>) -> Result<usize> {
        let (chunks, received) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let reader = tokio::task::spawn_blocking(move || {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                match input.read(&mut buffer) {
                    Ok(0) => return Ok(()),
                    Ok(read) => {
                        if chunks
                            .blocking_send(Ok(Bytes::copy_from_slice(&buffer[..read])))
                            .is_err()
                        {
                            return Ok(()); // The server stopped reading: its answer says why.
                        }
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(err) => {
                        let message = err.to_string();
                        let _ = chunks.blocking_send(Err(err));
                        return Err(message);
                    }
                }
            }
        });
        let frames = futures_util::stream::unfold(received, |mut received| async move {
            received
                .recv()
                .await
                .map(|chunk| (chunk.map(Frame::data), received))
        });
        let path = format!("{}/import", bucket_path(bucket));
        let answer = self
            .call(Method::POST, path, StreamBody::new(frames).boxed_unsync())
            .await;
        if let Ok(Err(message)) = reader.await {
            bail!("cannot read the input: {message}");
        }
        let response = answer?;
        let status = response.status();
        let body = collect(response).await?;
        let imported: Imported = serde_json::from_slice(&body)
            .map_err(|_| anyhow!("{}", failure(status, &body).error))?;
        match imported.error {
            Some(error) => Err(anyhow!("{error}")),
            None => Ok(imported.imported),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: String,
        body: RequestBody,
    ) -> Result<Response<Incoming>> {
        let unreachable = |err: &dyn std::fmt::Display| {
            anyhow!(
                "cannot reach the admin API at http://{}: {err}; is that kvhost still running?",
                self.authority
            )
        };
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| unreachable(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.authority)
            .header(AUTHORIZATION, &self.authorization)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .context("cannot build the request")?;
        sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(&e))
    }
}

fn empty() -> RequestBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

fn bucket_path(bucket: &str) -> String {
    format!("/api/v1/buckets/{}", encode(bucket))
}

fn value_path(bucket: &str, key: &str) -> String {
    format!("{}/value?key={}", bucket_path(bucket), encode(key))
}

async fn collect(response: Response<Incoming>) -> Result<Bytes> {
    Ok(response
        .into_body()
        .collect()
        .await
        .context("the admin API's answer broke off")?
        .to_bytes())
}

/// The body of a successful answer, or the error the API gave.
async fn ok_body(response: Response<Incoming>) -> Result<Bytes> {
    let status = response.status();
    let body = collect(response).await?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(anyhow!("{}", failure(status, &body).error))
    }
}

/// The API's error answer (its message, or the status when the body is not one).
fn failure(status: StatusCode, body: &[u8]) -> Failure {
    serde_json::from_slice(body).unwrap_or_else(|_| Failure {
        error: match status {
            StatusCode::UNAUTHORIZED => "the admin API refused the token (401)".to_string(),
            _ => format!("the admin API answered {status}"),
        },
        code: None,
    })
}
