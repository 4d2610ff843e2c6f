//! From command-line flags to a [`Registry`]: find the config, apply overrides, open buckets.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kvhost::config::{check_bucket_name, DEFAULT_REDIS_TIMEOUT};
use kvhost::{BackendKind, BucketConfig, Config, RedisSettings, Registry};

use crate::cli::ConfigArgs;

/// The config file used when `--config` is not given, if it exists.
pub const IMPLICIT_CONFIG: &str = "kvhost.toml";

/// The configuration the flags select.
pub fn load_config(args: &ConfigArgs) -> Result<Config> {
    let implicit = Path::new(IMPLICIT_CONFIG);
    let file: Option<PathBuf> = match &args.config {
        Some(file) => Some(file.clone()),
        None if implicit.is_file() => Some(implicit.to_path_buf()),
        None => None,
    };
    let mut config = match file {
        Some(file) => Config::load(&file)?,
        None => Config::default(),
    };
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    Ok(config)
}

/// The registry the flags select.
pub fn open_registry(args: &ConfigArgs) -> Result<(Config, Registry)> {
    open_registry_with(args, &[])
}

/// As [`open_registry`], for reading only (`kvhost kv --read-only`): writes are refused, and
/// the embedded store is read from a snapshot in memory, so a data dir that cannot be written
/// (or that a running kvhost holds) can be read.
pub fn open_registry_read_only(args: &ConfigArgs) -> Result<(Config, Registry)> {
    let config = configured(args, &[])?;
    let registry = Registry::from_config_read_only(&config)
        .context("cannot open the configured buckets (read-only)")?;
    Ok((config, registry))
}

/// The registry the flags select, plus the buckets of `--runtime-config` and then those of
/// `--bucket` flags (`extra`), each replacing a configured bucket of the same name.
pub fn open_registry_with(args: &ConfigArgs, extra: &[BucketSpec]) -> Result<(Config, Registry)> {
    let config = configured(args, extra)?;
    let registry = Registry::from_config(&config).context("cannot open the configured buckets")?;
    Ok((config, registry))
}

/// The config the flags select, with the buckets of `--runtime-config` and then `extra`.
fn configured(args: &ConfigArgs, extra: &[BucketSpec]) -> Result<Config> {
    let mut config = load_config(args)?;
    let spin = match &args.runtime_config {
        Some(path) => crate::spin::runtime_config_buckets(path)?,
        None => Vec::new(),
    };
    for spec in spin.iter().chain(extra) {
        config
            .buckets
            .insert(spec.name.clone(), spec.bucket.clone());
        if let Some(allow) = &mut config.allow {
            if !allow.contains(&spec.name) {
                allow.push(spec.name.clone());
            }
        }
    }
    Ok(config)
}

/// A `--bucket NAME[=URL]` flag: a bucket added on the command line.
#[derive(Debug, Clone)]
pub struct BucketSpec {
    /// The bucket's name.
    pub name: String,
    /// How it is stored.
    pub bucket: BucketConfig,
}

impl std::str::FromStr for BucketSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        // Nothing of `text` is echoed unless it is known to hold no password: a bucket name
        // that passed the check, or a URL scheme.
        let (name, url) = match text.split_once('=') {
            Some((name, url)) => (name, Some(url)),
            None if text.contains("://") || text.contains('@') => {
                return Err(
                    "a bucket needs a name: write NAME=URL (e.g. cache=redis://HOST:PORT/0)"
                        .to_string(),
                )
            }
            None => (text, None),
        };
        if let Err(message) = check_bucket_name(name) {
            return Err(if name.contains(':') || name.contains('@') {
                "the bucket name before '=' is not valid: use 1 to 64 characters of A-Z, a-z, \
                 0-9, '_', '-', '.'"
                    .to_string()
            } else {
                format!("bucket {name:?}: {message}")
            });
        }
        let bucket = match url {
            None | Some("embedded:") => BucketConfig::default(),
            Some("memory:") => BucketConfig {
                backend: BackendKind::Memory,
                ..BucketConfig::default()
            },
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                redis_bucket(url.to_string())
            }
            Some(other) => {
                let scheme = other
                    .split_once("://")
                    .map(|(scheme, _)| scheme)
                    .or_else(|| other.strip_suffix(':'))
                    .filter(|scheme| is_scheme(scheme));
                let unknown = match scheme {
                    Some(scheme) => format!("unknown backend {scheme:?}"),
                    None => "not a backend URL".to_string(),
                };
                return Err(format!(
                    "bucket {name:?}: {unknown}; use NAME (embedded), NAME=embedded:, \
                     NAME=memory: or NAME=redis[s]://HOST:PORT/DB"
                ));
            }
        };
        Ok(BucketSpec {
            name: name.to_string(),
            bucket,
        })
    }
}

/// Whether `text` is a URL scheme (RFC 3986: a letter, then letters, digits, `+ - .`); only
/// a scheme followed by `://` or ending the text is echoed.
fn is_scheme(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// A `redis` bucket at `url` with the default timeout and no replicas.
pub fn redis_bucket(url: String) -> BucketConfig {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_specs() {
        let spec: BucketSpec = "cache=memory:".parse().unwrap();
        assert_eq!(
            (spec.name.as_str(), spec.bucket.backend),
            ("cache", BackendKind::Memory)
        );
        let spec: BucketSpec = "logs".parse().unwrap();
        assert_eq!(spec.bucket.backend, BackendKind::Embedded);
        assert!("a b".parse::<BucketSpec>().is_err());
        let err = "x=ftp://user:hunter2@nope"
            .parse::<BucketSpec>()
            .unwrap_err();
        assert!(err.contains("unknown backend \"ftp\""), "{err}");
        assert!(!err.contains("hunter2"), "password echoed: {err}");
        let spec: BucketSpec = "x=redis://u:hunter2@127.0.0.1:6379/0".parse().unwrap();
        assert_eq!(spec.bucket.backend, BackendKind::Redis);
        assert!(
            !format!("{spec:?}").contains("hunter2"),
            "password in Debug"
        );
        let spec: BucketSpec = "x=rediss://u:hunter2@127.0.0.1:6379/0".parse().unwrap();
        assert_eq!(spec.bucket.backend, BackendKind::Redis);
        // Mistakes that would put the password where a name or scheme is echoed.
        for (text, wanted) in [
            ("redis://:hunter2@host/0", "a bucket needs a name"),
            ("x=hunter2@host:6379", "not a backend URL"),
            ("x=hunter2:6379", "not a backend URL"),
            ("x=hunter2:", "unknown backend \"hunter2\""),
            (
                "u:hunter2@h=redis://h/0",
                "the bucket name before '=' is not valid",
            ),
        ] {
            let err = text.parse::<BucketSpec>().unwrap_err();
            assert!(err.contains(wanted), "{text}: {err}");
            if wanted != "unknown backend \"hunter2\"" {
                assert!(!err.contains("hunter2"), "password echoed: {err}");
            }
        }
    }
}
