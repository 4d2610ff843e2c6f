//! Connections to one Redis endpoint: made lazily, re-made on their own, bounded in time, and
//! turned into errors a person can act on without ever showing a password.
//!
//! An [`Endpoint`] is a standalone server (a redis-rs `ConnectionManager`: one multiplexed
//! connection that reconnects in the background after a failure) or a whole cluster (the
//! redis-rs async cluster client, which follows MOVED/ASK and refreshes its slot map after a
//! failover). Nothing connects until the first command, so kvhost starts while Redis is down
//! and works as soon as it is back. Every command runs under the bucket's timeout.
//!
//! Retries: the standalone manager never re-sends a command; the cluster client re-sends after
//! redirects and connection errors. The scripts that are not idempotent (increment, swap)
//! carry an operation id and remember their result, so a re-sent one does not apply twice.

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, Value};
use tokio::sync::OnceCell;

use super::RedisSetupError;
use crate::{Error, Result};

/// A live connection to an endpoint; cheap to clone (every clone shares the connection).
#[derive(Clone)]
pub(crate) enum Conn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Standalone(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Standalone(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Standalone(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}

enum Target {
    Standalone(Client, ConnectionManagerConfig),
    Cluster(ClusterClient),
}

/// One Redis endpoint (a server or a cluster) and its lazily made connection.
pub(crate) struct Endpoint {
    /// How errors name it: `redis 127.0.0.1:6379` or `redis cluster a:7000, b:7000`; never a
    /// password.
    label: String,
    /// Strings that must never appear in a message (passwords).
    secrets: Vec<String>,
    target: Target,
    conn: OnceCell<Conn>,
    timeout: Duration,
}

/// What the caller got wrong in a URL; the URL itself is never repeated (it may hold a
/// password).
pub(crate) fn bad_url(what: &str, err: &RedisError) -> RedisSetupError {
    let reason = match err.detail() {
        Some(detail) if !detail.contains("://") => detail.to_string(),
        _ => "expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]".to_string(),
    };
    RedisSetupError::BadUrl {
        setting: what.to_string(),
        reason,
    }
}

fn info(url: &str, what: &str) -> std::result::Result<redis::ConnectionInfo, RedisSetupError> {
    let info = url
        .into_connection_info()
        .map_err(|err| bad_url(what, &err))?;
    match info.addr() {
        redis::ConnectionAddr::Tcp(..) => Ok(info),
        redis::ConnectionAddr::TcpTls {
            insecure: false, ..
        } => Ok(info),
        redis::ConnectionAddr::TcpTls { insecure: true, .. } => Err(RedisSetupError::InsecureTls {
            setting: what.to_string(),
        }),
        _ => Err(RedisSetupError::NotTcp {
            setting: what.to_string(),
        }),
    }
}

/// The certificates to trust for `rediss://`: `ca_pem`, else the system's roots.
fn certificates(ca_pem: Option<&[u8]>) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: None,
        root_cert: ca_pem.map(<[u8]>::to_vec),
    }
}

fn secrets_of(info: &redis::ConnectionInfo) -> Vec<String> {
    info.redis_settings()
        .password()
        .filter(|password| !password.is_empty())
        .map(str::to_string)
        .into_iter()
        .collect()
}

impl Endpoint {
    /// A standalone server at `url`; `what` names the setting in errors; `ca_pem` is the CA
    /// to trust for `rediss://` instead of the system's roots.
    pub(crate) fn standalone(
        url: &str,
        what: &str,
        timeout: Duration,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, RedisSetupError> {
        let info = info(url, what)?;
        let label = format!("redis {}", info.addr());
        let secrets = secrets_of(&info);
        let client = match ca_pem {
            Some(_) => Client::build_with_tls(info, certificates(ca_pem)),
            None => Client::open(info),
        }
        .map_err(|err| bad_url(what, &err))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(500));
        Ok(Endpoint {
            label,
            secrets,
            target: Target::Standalone(client, config),
            conn: OnceCell::new(),
            timeout,
        })
    }

    /// A cluster reached through any of `nodes`; `what` names the setting in errors.
    pub(crate) fn cluster(
        nodes: &[String],
        what: &str,
        timeout: Duration,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, RedisSetupError> {
        let mut infos = Vec::with_capacity(nodes.len());
        for (i, url) in nodes.iter().enumerate() {
            infos.push(info(url, &format!("{what}[{i}]"))?);
        }
        if infos.is_empty() {
            return Err(RedisSetupError::NoNodes {
                setting: what.to_string(),
            });
        }
        let label = format!(
            "redis cluster {}",
            infos
                .iter()
                .map(|info| info.addr().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let secrets = infos.iter().flat_map(secrets_of).collect();
        let mut builder = ClusterClient::builder(infos);
        if ca_pem.is_some() {
            builder = builder.certs(certificates(ca_pem));
        }
        let client = builder
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(6)
            .min_retry_wait(10)
            .max_retry_wait(200)
            .build()
            .map_err(|err| bad_url(what, &err))?;
        Ok(Endpoint {
            label,
            secrets,
            target: Target::Cluster(client),
            conn: OnceCell::new(),
            timeout,
        })
    }

    /// How errors name this endpoint.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// Runs `op` on a connection within the timeout; failures become `Error::Other` naming
    /// the endpoint.
    pub(crate) async fn run<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            let conn = self.conn().await?;
            op(conn).await
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(self.error(&err)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// The error of a command that got no answer within the timeout.
    pub(crate) fn timed_out(&self) -> Error {
        Error::other(format!(
            "redis unavailable: no answer from {} within {} ms (the bucket's timeout_ms)",
            self.label,
            self.timeout.as_millis()
        ))
    }

    /// The bound on one command (the bucket's timeout).
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A new connection of its own, for a blocking command (`XREAD BLOCK`): a blocked
    /// connection holds back every command queued behind it, so blocking never uses the shared
    /// one. Its replies are bounded by the timeout, so a block must be shorter.
    pub(crate) async fn dedicated(&self) -> Result<Conn> {
        let made = match &self.target {
            Target::Standalone(client, config) => {
                ConnectionManager::new_with_config(client.clone(), config.clone())
                    .await
                    .map(Conn::Standalone)
            }
            Target::Cluster(client) => client.get_async_connection().await.map(Conn::Cluster),
        };
        made.map_err(|err| self.error(&err))
    }

    async fn conn(&self) -> redis::RedisResult<Conn> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                match &self.target {
                    Target::Standalone(client, config) => {
                        ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                            .map(Conn::Standalone)
                    }
                    Target::Cluster(client) => {
                        client.get_async_connection().await.map(Conn::Cluster)
                    }
                }
            })
            .await?;
        Ok(conn.clone())
    }

    /// The message for a failed command: `redis unavailable: ...` when Redis could not be
    /// reached or is not serving, `redis error: ...` otherwise. Passwords are masked.
    pub(crate) fn error(&self, err: &RedisError) -> Error {
        let unavailable = err.is_io_error()
            || err.is_connection_refusal()
            || err.is_connection_dropped()
            || err.is_timeout()
            || err.is_cluster_error()
            || matches!(
                err.code(),
                Some("LOADING" | "MASTERDOWN" | "READONLY" | "BUSY" | "TRYAGAIN" | "CLUSTERDOWN")
            );
        let text = if unavailable {
            format!("redis unavailable: {} ({err})", self.label)
        } else {
            format!("redis error from {}: {err}", self.label)
        };
        Error::other(self.redact(text))
    }

    /// `text` with every secret replaced by `***`.
    pub(crate) fn redact(&self, mut text: String) -> String {
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "***");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_appear_in_labels_or_errors() {
        let endpoint = Endpoint::standalone(
            "redis://user:s3cret-pw@127.0.0.1:6390/2",
            "buckets.a.url",
            Duration::from_secs(1),
            None,
        )
        .unwrap();
        assert_eq!(endpoint.label(), "redis 127.0.0.1:6390");
        let err = RedisError::from(std::io::Error::other("auth s3cret-pw refused"));
        let message = endpoint.error(&err).to_string();
        assert!(message.starts_with("redis unavailable:"), "{message}");
        assert!(!message.contains("s3cret-pw"), "{message}");

        let Err(err) = Endpoint::standalone(
            "http://user:s3cret-pw@host",
            "buckets.a.url",
            Duration::from_secs(1),
            None,
        ) else {
            panic!("an http URL was accepted");
        };
        let message = err.to_string();
        assert!(message.contains("buckets.a.url"), "{message}");
        assert!(!message.contains("s3cret-pw"), "{message}");
    }
}
