//! From command-line flags to a [`Registry`]: find the config, apply overrides, open buckets.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kvhost::{Config, Registry};

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
    let config = load_config(args)?;
    let registry = Registry::from_config(&config).context("cannot open the configured buckets")?;
    Ok((config, registry))
}
