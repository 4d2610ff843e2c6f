//! Making a [`RedisBucket`] from its settings: [`RedisBucket::from_config`], the one
//! constructor every caller goes through, and [`RedisSetupError`], what can be wrong.
//!
//! Invariant: no error holds a URL, only the name of the setting it came from
//! (`buckets.NAME.url`, `buckets.NAME.nodes[1]`, ...): a URL may hold a password.

use std::path::PathBuf;

use super::{RedisBucket, RedisOptions, RedisTarget};
use crate::{BackendKind, BucketConfig};

/// Why a Redis bucket's settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisSetupError {
    /// The bucket is not a `redis` or `redis-cluster` bucket, or has no connection settings.
    #[error("no Redis settings (url or nodes) were given")]
    NoSettings,
    /// A `redis` bucket without `url`.
    #[error("a redis bucket needs a url")]
    NoUrl,
    /// A URL does not parse.
    #[error("{setting} is not a usable Redis URL: {reason}")]
    BadUrl {
        /// The setting holding the URL.
        setting: String,
        /// What is wrong with it (never the URL).
        reason: String,
    },
    /// A `rediss://` URL asks to skip certificate checks.
    #[error(
        "{setting}: certificate checks cannot be turned off (#insecure); give the server's CA \
         with tls_ca_file instead"
    )]
    InsecureTls {
        /// The setting holding the URL.
        setting: String,
    },
    /// A URL that is not TCP (a unix socket).
    #[error("{setting}: only redis:// and rediss:// (TLS) URLs are supported (no unix sockets)")]
    NotTcp {
        /// The setting holding the URL.
        setting: String,
    },
    /// A `redis-cluster` bucket without nodes.
    #[error("{setting} is empty: list at least one cluster node")]
    NoNodes {
        /// The setting that should list them.
        setting: String,
    },
    /// `tls_ca_file` cannot be read.
    #[error("cannot read tls_ca_file {}: {source}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl RedisBucket {
    /// The bucket `[buckets.NAME]` describes (`redis` or `redis-cluster`), named `name`.
    /// Nothing connects yet (see [`RedisBucket::new`]).
    pub fn from_config(name: &str, bucket: &BucketConfig) -> Result<Self, RedisSetupError> {
        let settings = bucket.redis.as_ref().ok_or(RedisSetupError::NoSettings)?;
        let target = match (bucket.backend, &settings.url) {
            (BackendKind::Redis, Some(url)) => RedisTarget::Standalone {
                url: url.clone(),
                replicas: settings.replicas.clone(),
            },
            (BackendKind::Redis, None) => return Err(RedisSetupError::NoUrl),
            (BackendKind::RedisCluster, _) => RedisTarget::Cluster {
                nodes: settings.nodes.clone(),
            },
            _ => return Err(RedisSetupError::NoSettings),
        };
        let tls_root_ca = match &settings.tls_ca_file {
            Some(path) => Some(
                std::fs::read(path).map_err(|source| RedisSetupError::CaFile {
                    path: path.clone(),
                    source,
                })?,
            ),
            None => None,
        };
        let options = RedisOptions {
            timeout: settings.timeout,
            tls_root_ca,
        };
        let redis = RedisBucket::new(name, &target, options, &format!("buckets.{name}"))?;
        Ok(match bucket.watch_retention {
            Some(retention) => redis.with_change_log(retention),
            None => redis,
        })
    }
}
