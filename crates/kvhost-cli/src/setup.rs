//! From command-line flags to a [`Registry`]: find the config, apply overrides, open buckets.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use kvhost::{BucketHandle, Config, Error, Grants, Registry};

use crate::bucket_spec::BucketSpec;
use crate::cli::{ConfigArgs, HostArgs};

/// The config file used when `--config` is not given, if it exists.
pub const IMPLICIT_CONFIG: &str = "kvhost.toml";

/// The change-log retention a watched bucket gets when its config sets none.
pub const DEFAULT_WATCH_RETENTION: u64 = 100_000;

/// The configuration the flags select: the config file (`--config`, else `./kvhost.toml` if
/// present, else the defaults), with `--data-dir`, then the buckets of `--runtime-config` and
/// then `extra` (`--bucket` flags), each replacing a configured bucket of the same name.
/// `watched` buckets, and those of the config's `[[watchers]]`, keep a change log (their own
/// `watch_retention`, else [`DEFAULT_WATCH_RETENTION`]).
///
/// Read once per process: every later step (finding a running server, sizing pools, opening
/// buckets) takes the [`Config`] this returns.
pub fn configure(args: &ConfigArgs, extra: &[BucketSpec], watched: &[String]) -> Result<Config> {
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
    let spin = match &args.runtime_config {
        Some(path) => crate::spin_config::runtime_config_buckets(path)?,
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
    let from_config: Vec<String> = config
        .watchers
        .iter()
        .flat_map(|watcher| watcher.buckets.clone())
        .collect();
    keep_change_logs(&mut config, watched)?;
    keep_change_logs(&mut config, &from_config)?;
    Ok(config)
}

/// As [`configure`], for a command that runs a component: `extra` comes from its `--bucket`
/// flags.
pub fn configure_host(args: &HostArgs, watched: &[String]) -> Result<Config> {
    let extra = args
        .buckets
        .iter()
        .map(|spec| spec.parse::<BucketSpec>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|message| anyhow!("--bucket: {message}"))?;
    configure(&args.config, &extra, watched)
}

/// Opens the buckets of `config`.
pub fn open_registry(config: &Config) -> Result<Registry> {
    Registry::from_config(config).context("cannot open the configured buckets")
}

/// As [`open_registry`], for reading only (`kvhost kv --read-only`): writes are refused, and
/// the embedded store is read from a snapshot in memory, so a data dir that cannot be written
/// (or that a running kvhost holds) can be read.
pub fn open_registry_read_only(config: &Config) -> Result<Registry> {
    Registry::from_config_read_only(config)
        .context("cannot open the configured buckets (read-only)")
}

/// Gives every bucket in `watched` a change log, refusing buckets that are not configured.
fn keep_change_logs(config: &mut Config, watched: &[String]) -> Result<()> {
    for name in watched {
        let names = config
            .buckets
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        let Some(bucket) = config.buckets.get_mut(name) else {
            return Err(anyhow!(
                "a watcher watches bucket {name:?}, which is not configured (configured buckets: \
                 {names})"
            ));
        };
        bucket
            .watch_retention
            .get_or_insert(DEFAULT_WATCH_RETENTION);
    }
    Ok(())
}

/// Opens a bucket with every grant, turning "no such store" into advice.
pub fn open_bucket(registry: &Registry, name: &str) -> Result<BucketHandle> {
    registry.open(name, &Grants::All).map_err(|err| match err {
        Error::NoSuchStore => anyhow!(
            "no bucket named {name:?}; configured buckets: {}. Add a [buckets.{name}] table to \
             kvhost.toml (or pass --config) to create it",
            registry.names().collect::<Vec<_>>().join(", ")
        ),
        other => anyhow!("cannot open bucket {name:?}: {other}"),
    })
}
