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
//!
//! [limits]
//! max_key_bytes = 1024
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
}

impl BackendKind {
    /// The name used for this backend in `kvhost.toml`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Embedded => "embedded",
            BackendKind::Memory => "memory",
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
}

impl Default for BucketConfig {
    fn default() -> Self {
        BucketConfig {
            backend: BackendKind::Embedded,
            durability: Durability::Immediate,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
        }
    }
}

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
}

impl Default for Config {
    /// One embedded bucket, `default`, in `./.kvhost`.
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            allow: None,
            buckets: BTreeMap::from([(DEFAULT_BUCKET.to_string(), BucketConfig::default())]),
            limits: Limits::default(),
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBucket {
    #[serde(default)]
    backend: BackendKind,
    durability: Option<Durability>,
    flush_interval_ms: Option<u64>,
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
        if config.data_dir.is_relative() {
            let base = path.parent().unwrap_or(Path::new(""));
            config.data_dir = base.join(&config.data_dir);
        }
        Ok(config)
    }

    /// Parses and validates config text; `origin` names it in errors (usually the file name).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|err| ConfigError::Parse {
            origin: origin.to_string(),
            message: err.to_string().trim_end().to_string(),
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
        Ok(Config {
            data_dir: raw
                .data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            allow: raw.allow,
            buckets,
            limits: raw.limits,
        })
    }
}

impl RawBucket {
    fn validate(self) -> Result<BucketConfig, (&'static str, String)> {
        let embedded_only = |field: &'static str| {
            (
                field,
                format!("only embedded buckets take {field} (this bucket's backend is \"memory\")"),
            )
        };
        if self.backend != BackendKind::Embedded {
            if self.durability.is_some() {
                return Err(embedded_only("durability"));
            }
            if self.flush_interval_ms.is_some() {
                return Err(embedded_only("flush_interval_ms"));
            }
        }
        let flush_interval = match self.flush_interval_ms {
            Some(0) => return Err(("flush_interval_ms", "must be at least 1".to_string())),
            Some(ms) => Duration::from_millis(ms),
            None => DEFAULT_FLUSH_INTERVAL,
        };
        Ok(BucketConfig {
            backend: self.backend,
            durability: self.durability.unwrap_or_default(),
            flush_interval,
        })
    }
}

/// Bucket names are 1 to 64 characters of `A-Z a-z 0-9 _ - .`, so they are safe as table
/// names, file names and key prefixes on every backend.
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok_char) {
        return Err(format!(
            "bucket name {name:?} is not allowed: use 1 to 64 characters of A-Z, a-z, 0-9, '_', '-', '.'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::from_toml_str(text, "kvhost.toml").map_err(|err| err.to_string())
    }

    #[test]
    fn architecture_example_parses() {
        let config = parse(
            r#"
            data_dir = "state"
            allow = ["default", "cache"]
            [buckets.default]
            durability = "immediate"
            [buckets.cache]
            backend = "memory"
            [buckets.logs]
            durability = "relaxed"
            flush_interval_ms = 50
            [limits]
            max_key_bytes = 512
            "#,
        )
        .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("state"));
        assert_eq!(config.buckets["cache"].backend, BackendKind::Memory);
        assert_eq!(config.buckets["logs"].durability, Durability::Relaxed);
        assert_eq!(
            config.buckets["logs"].flush_interval,
            Duration::from_millis(50)
        );
        assert_eq!(config.limits.max_key_bytes, 512);
        assert_eq!(config.limits.list_page_keys, 1000);
    }

    #[test]
    fn empty_config_has_the_default_bucket() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn errors_quote_key_value_and_file() {
        let err = parse("[buckets.a]\ndurability = \"sometimes\"\n").unwrap_err();
        assert!(err.starts_with("kvhost.toml:"), "{err}");
        assert!(
            err.contains("sometimes") && err.contains("durability"),
            "{err}"
        );

        let err = parse("colour = \"blue\"\n").unwrap_err();
        assert!(err.contains("colour"), "{err}");

        let err = parse("[buckets.a]\nbackend = \"cassandra\"\n").unwrap_err();
        assert!(err.contains("cassandra"), "{err}");

        let err =
            parse("[buckets.a]\nbackend = \"memory\"\ndurability = \"relaxed\"\n").unwrap_err();
        assert!(err.contains("buckets.a.durability"), "{err}");

        let err = parse("allow = [\"nope\"]\n").unwrap_err();
        assert!(err.contains("allow") && err.contains("nope"), "{err}");

        let err = parse("[buckets.\"a b\"]\n").unwrap_err();
        assert!(err.contains("\"a b\""), "{err}");

        let err = parse("[limits]\nlist_page_keys = 0\n").unwrap_err();
        assert!(err.contains("limits.list_page_keys"), "{err}");

        let err = parse("[limits]\nmax_key_bytes = -1\n").unwrap_err();
        assert!(err.contains("max_key_bytes"), "{err}");
    }

    #[test]
    fn relative_data_dir_follows_the_file() {
        let dir = std::env::temp_dir().join(format!("kvhost-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("kvhost.toml");
        std::fs::write(&file, "data_dir = \"data\"\n").unwrap();
        let config = Config::load(&file).unwrap();
        assert_eq!(config.data_dir, dir.join("data"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
