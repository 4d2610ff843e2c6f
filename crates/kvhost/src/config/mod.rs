//! The configuration model: `kvhost.toml`.
//!
//! ```toml
//! data_dir = ".kvhost"                 # embedded buckets live here
//! allow = ["default", "cache"]         # buckets a component may open; omitted = all
//!
//! [buckets.default]                    # backend defaults to "embedded"
//! durability = "immediate"             # or "relaxed"
//! [buckets.cache]
//! backend = "memory"
//! watch_retention = 100000            # keep the last 100000 changes for watchers
//!
//! [buckets.shared]                    # shared by every kvhost using this Redis
//! backend = "redis"
//! url = "redis://127.0.0.1:6379/0"     # a password goes in the URL; it is never echoed
//! replicas = ["redis://127.0.0.1:6380/0"]  # optional: reads may go here (read-your-writes kept)
//! timeout_ms = 2000                    # the longest any Redis command may take
//! # tls_ca_file = "ca.pem"             # rediss:// only: the CA to trust (default: system roots)
//! [buckets.big]
//! backend = "redis-cluster"
//! nodes = ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]
//!
//! [limits]
//! max_key_bytes = 1024
//!
//! [[watchers]]                         # run by `kvhost serve` and `kvhost watch`
//! component = "mirror.wasm"            # a wasi:keyvalue watch-service (relative to this file)
//! buckets = ["cache"]                  # default: ["default"]
//! prefixes = ["user/"]                 # default: every key
//! ```
//!
//! Parsing is strict: an unknown key or a bad value is an error that quotes the key, the value
//! and the file. A config that names no bucket gets the one embedded bucket `default`, as does
//! a run with no config file at all. A relative `data_dir` is taken relative to the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::Limits;

/// The name of the bucket that exists when no bucket is configured.
pub const DEFAULT_BUCKET: &str = "default";
/// The data directory used when neither the config nor the command line names one.
pub const DEFAULT_DATA_DIR: &str = ".kvhost";
/// How often a `relaxed` bucket is flushed to disk unless configured otherwise.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// A problem with the configuration; every variant names the file it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("{origin}: {message}")]
    Parse {
        /// The file (or other origin) of the text.
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The file parsed, but a value is not acceptable.
    #[error("{origin}: {key}: {message}")]
    Invalid {
        /// The file (or other origin) of the text.
        origin: String,
        /// The dotted key that is wrong, e.g. `buckets.cache.durability`.
        key: String,
        /// What is wrong and what would be right.
        message: String,
    },
}

/// Which engine stores a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// The durable embedded store (one redb file in `data_dir`). The default.
    #[default]
    Embedded,
    /// A map in memory: fast, and gone when the process exits.
    Memory,
    /// A Redis server (`url`), optionally read through `replicas`.
    Redis,
    /// A Redis Cluster (`nodes`).
    RedisCluster,
}

impl BackendKind {
    /// The name used for this backend in `kvhost.toml`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Embedded => "embedded",
            BackendKind::Memory => "memory",
            BackendKind::Redis => "redis",
            BackendKind::RedisCluster => "redis-cluster",
        }
    }
}

/// When an acknowledged write to an embedded bucket is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// On disk before the call returns (concurrent writers share fsyncs). The default.
    #[default]
    Immediate,
    /// Acknowledged from memory and flushed within `flush_interval_ms`; a crash may lose that
    /// window, and never corrupts the store.
    Relaxed,
}

/// One `[buckets.NAME]` table, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketConfig {
    /// The engine.
    pub backend: BackendKind,
    /// For embedded buckets: when writes are durable.
    pub durability: Durability,
    /// For `relaxed` embedded buckets: the longest a write stays only in memory.
    pub flush_interval: Duration,
    /// For `redis` and `redis-cluster` buckets: where and how to connect.
    pub redis: Option<RedisSettings>,
    /// Keep a change log of this many changes for watchers (`None`: no log). Embedded and
    /// memory buckets; see [`crate::changes`].
    pub watch_retention: Option<u64>,
}

impl Default for BucketConfig {
    fn default() -> Self {
        BucketConfig {
            backend: BackendKind::Embedded,
            durability: Durability::Immediate,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            redis: None,
            watch_retention: None,
        }
    }
}

impl BucketConfig {
    /// A `redis` bucket at `url` (a primary, no replicas) with the default timeout: what
    /// `--bucket NAME=redis://...` and a Spin runtime config's `type = "redis"` store mean.
    /// The URL is checked when the bucket is made ([`crate::Registry::from_config`]).
    pub fn redis(url: String) -> Self {
        BucketConfig {
            backend: BackendKind::Redis,
            redis: Some(RedisSettings {
                url: Some(url),
                replicas: Vec::new(),
                nodes: Vec::new(),
                timeout: DEFAULT_REDIS_TIMEOUT,
                tls_ca_file: None,
            }),
            ..BucketConfig::default()
        }
    }
}

/// The connection settings of a Redis bucket. `Debug` never prints the URLs (they may hold a
/// password).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis`: the primary's URL.
    pub url: Option<String>,
    /// `redis`: replica URLs that may serve reads.
    pub replicas: Vec<String>,
    /// `redis-cluster`: seed node URLs.
    pub nodes: Vec<String>,
    /// The longest any one operation may wait for Redis.
    pub timeout: Duration,
    /// For `rediss://` URLs: a PEM file with the CA to trust instead of the system's roots.
    pub tls_ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("replicas", &self.replicas.len())
            .field("nodes", &self.nodes.len())
            .field("timeout", &self.timeout)
            .field("tls_ca_file", &self.tls_ca_file)
            .finish_non_exhaustive()
    }
}

/// The Redis timeout used when a bucket does not set `timeout_ms`.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(2000);

/// A whole, validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where embedded buckets live.
    pub data_dir: PathBuf,
    /// The buckets a component may open; `None` means all configured buckets.
    pub allow: Option<Vec<String>>,
    /// The buckets, by name.
    pub buckets: BTreeMap<String, BucketConfig>,
    /// Size limits.
    pub limits: Limits,
    /// The `[[watchers]]`: watch-service components and what they watch.
    pub watchers: Vec<WatcherConfig>,
}

/// One `[[watchers]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatcherConfig {
    /// The `watch-service` component (relative paths are taken from the config file's
    /// directory).
    pub component: PathBuf,
    /// The buckets it watches.
    #[serde(default = "default_watched")]
    pub buckets: Vec<String>,
    /// Only keys with one of these prefixes are delivered (empty: every key).
    #[serde(default)]
    pub prefixes: Vec<String>,
}

fn default_watched() -> Vec<String> {
    vec![DEFAULT_BUCKET.to_string()]
}

impl Default for Config {
    /// One embedded bucket, `default`, in `./.kvhost`.
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            allow: None,
            buckets: BTreeMap::from([(DEFAULT_BUCKET.to_string(), BucketConfig::default())]),
            limits: Limits::default(),
            watchers: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: Option<PathBuf>,
    allow: Option<Vec<String>>,
    #[serde(default)]
    buckets: BTreeMap<String, RawBucket>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    watchers: Vec<WatcherConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBucket {
    #[serde(default)]
    backend: BackendKind,
    durability: Option<Durability>,
    flush_interval_ms: Option<u64>,
    url: Option<String>,
    replicas: Option<Vec<String>>,
    nodes: Option<Vec<String>>,
    timeout_ms: Option<u64>,
    tls_ca_file: Option<PathBuf>,
    watch_retention: Option<u64>,
}

impl Config {
    /// Reads and validates a config file. A relative `data_dir` is resolved against the
    /// file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let mut config = Config::from_toml_str(&text, &path.display().to_string())?;
        let base = path.parent().unwrap_or(Path::new(""));
        if config.data_dir.is_relative() {
            config.data_dir = base.join(&config.data_dir);
        }
        let ca_files = config.buckets.values_mut().filter_map(|bucket| {
            bucket
                .redis
                .as_mut()
                .and_then(|redis| redis.tls_ca_file.as_mut())
        });
        for ca_file in ca_files {
            if ca_file.is_relative() {
                *ca_file = base.join(&*ca_file);
            }
        }
        for watcher in &mut config.watchers {
            if watcher.component.is_relative() {
                watcher.component = base.join(&watcher.component);
            }
        }
        Ok(config)
    }

    /// Parses and validates config text; `origin` names it in errors (usually the file name).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|err| ConfigError::Parse {
            origin: origin.to_string(),
            message: describe_toml_error(&err, text),
        })?;
        let invalid = |key: String, message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            key,
            message,
        };
        let mut buckets = BTreeMap::new();
        for (name, raw_bucket) in raw.buckets {
            check_bucket_name(&name)
                .map_err(|message| invalid(format!("buckets.{name}"), message))?;
            let bucket = raw_bucket
                .validate()
                .map_err(|(field, message)| invalid(format!("buckets.{name}.{field}"), message))?;
            buckets.insert(name, bucket);
        }
        if buckets.is_empty() {
            buckets.insert(DEFAULT_BUCKET.to_string(), BucketConfig::default());
        }
        if let Some(allow) = &raw.allow {
            if let Some(unknown) = allow.iter().find(|name| !buckets.contains_key(*name)) {
                return Err(invalid(
                    "allow".into(),
                    format!(
                        "{unknown:?} is not a configured bucket (configured: {})",
                        buckets.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        raw.limits
            .validate()
            .map_err(|(key, message)| invalid(key, message))?;
        for (index, watcher) in raw.watchers.iter().enumerate() {
            let key = |field: &str| format!("watchers[{index}].{field}");
            if let Some(unknown) = watcher
                .buckets
                .iter()
                .find(|name| !buckets.contains_key(*name))
            {
                return Err(invalid(
                    key("buckets"),
                    format!(
                        "{unknown:?} is not a configured bucket (configured: {})",
                        buckets.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            if watcher.buckets.is_empty() {
                return Err(invalid(key("buckets"), "name at least one bucket".into()));
            }
            if watcher.component.as_os_str().is_empty() {
                return Err(invalid(
                    key("component"),
                    "give the component's file".into(),
                ));
            }
        }
        Ok(Config {
            data_dir: raw
                .data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            allow: raw.allow,
            buckets,
            limits: raw.limits,
            watchers: raw.watchers,
        })
    }
}

impl RawBucket {
    fn validate(self) -> Result<BucketConfig, (&'static str, String)> {
        let backend = self.backend;
        let only = |field: &'static str, kinds: &str| {
            (
                field,
                format!(
                    "only {kinds} buckets take {field} (this bucket's backend is {:?})",
                    backend.name()
                ),
            )
        };
        let is_redis = matches!(backend, BackendKind::Redis | BackendKind::RedisCluster);
        if backend != BackendKind::Embedded {
            if self.durability.is_some() {
                return Err(only("durability", "embedded"));
            }
            if self.flush_interval_ms.is_some() {
                return Err(only("flush_interval_ms", "embedded"));
            }
        }
        if backend != BackendKind::Redis {
            if self.url.is_some() {
                return Err(only("url", "redis"));
            }
            if self.replicas.is_some() {
                return Err(only("replicas", "redis"));
            }
        }
        if backend != BackendKind::RedisCluster && self.nodes.is_some() {
            return Err(only("nodes", "redis-cluster"));
        }
        if !is_redis && self.timeout_ms.is_some() {
            return Err(only("timeout_ms", "redis and redis-cluster"));
        }
        if !is_redis && self.tls_ca_file.is_some() {
            return Err(only("tls_ca_file", "redis and redis-cluster"));
        }
        if self.watch_retention == Some(0) {
            return Err((
                "watch_retention",
                "must be at least 1 (leave it out for no change log)".to_string(),
            ));
        }
        if self.durability.unwrap_or_default() == Durability::Immediate
            && self.flush_interval_ms.is_some()
        {
            return Err((
                "flush_interval_ms",
                "only relaxed buckets take flush_interval_ms (an immediate bucket writes every \
                 write to disk before answering); add durability = \"relaxed\" or remove it"
                    .to_string(),
            ));
        }
        let flush_interval = match self.flush_interval_ms {
            Some(0) => return Err(("flush_interval_ms", "must be at least 1".to_string())),
            Some(ms) => Duration::from_millis(ms),
            None => DEFAULT_FLUSH_INTERVAL,
        };
        let redis = match backend {
            BackendKind::Redis if self.url.is_none() => {
                return Err((
                    "url",
                    "a redis bucket needs url = \"redis://HOST:PORT/DB\"".to_string(),
                ))
            }
            BackendKind::RedisCluster if self.nodes.as_ref().is_none_or(Vec::is_empty) => {
                return Err((
                    "nodes",
                    "a redis-cluster bucket needs nodes = [\"redis://HOST:PORT\", ...]".to_string(),
                ))
            }
            _ if is_redis => Some(RedisSettings {
                url: self.url,
                replicas: self.replicas.unwrap_or_default(),
                nodes: self.nodes.unwrap_or_default(),
                timeout: match self.timeout_ms {
                    Some(0) => return Err(("timeout_ms", "must be at least 1".to_string())),
                    Some(ms) => Duration::from_millis(ms),
                    None => DEFAULT_REDIS_TIMEOUT,
                },
                tls_ca_file: self.tls_ca_file,
            }),
            _ => None,
        };
        Ok(BucketConfig {
            backend,
            durability: self.durability.unwrap_or_default(),
            flush_interval,
            redis,
            watch_retention: self.watch_retention,
        })
    }
}

/// `text` with the user-info part of every URL (`://USER:PASSWORD@`) replaced by `***`.
///
/// The user info runs to the last `@` before the URL ends (at whitespace, a quote or a
/// bracket), so a password with an unencoded `/`, `?` or `#` is hidden whole.
pub fn redact_urls(text: &str) -> String {
    let ends_url = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | ',' | ']' | ')');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (head, tail) = rest.split_at(start + 3);
        out.push_str(head);
        let url_end = tail.find(ends_url).unwrap_or(tail.len());
        match tail[..url_end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// A TOML error as `line L, column C: MESSAGE`, for a file whose text is `text`.
///
/// Never the parser's own rendering: that quotes the offending line, which may hold a
/// password (a URL's, or any other key's). URLs in the message are redacted as well.
pub fn describe_toml_error(err: &toml::de::Error, text: &str) -> String {
    let message = redact_urls(err.message().trim_end());
    let Some(start) = err.span().map(|span| span.start) else {
        return message;
    };
    let before = text.get(..start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    // The line's key (what is left of `=`) or table header names the setting; its value is
    // never shown.
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line_text = text[line_start..].lines().next().unwrap_or("").trim();
    let setting = match line_text.split_once('=') {
        Some((key, _)) if !key.trim().is_empty() => Some(key.trim()),
        _ if line_text.starts_with('[') && line_text.ends_with(']') => Some(line_text),
        _ => None,
    };
    match setting {
        Some(setting) => format!(
            "line {line}, column {column}, at `{}`: {message}",
            redact_urls(setting)
        ),
        None => format!("line {line}, column {column}: {message}"),
    }
}

/// Bucket names are 1 to 64 characters of `A-Z a-z 0-9 _ - .`, other than `.` and `..`, so
/// they are safe as table names, file names and key prefixes on every backend.
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok_char) {
        return Err(format!(
            "bucket name {name:?} is not allowed: use 1 to 64 characters of A-Z, a-z, 0-9, '_', '-', '.'"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!(
            "bucket name {name:?} is not allowed: it names a directory; use letters or digits too"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
