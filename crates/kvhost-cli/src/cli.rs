//! The command line, declared with clap. `--help` text lives here and is the reference the
//! README repeats.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// kvhost: the host side of wasi:keyvalue.
///
/// Buckets come from kvhost.toml (--config, or ./kvhost.toml if present); with no config there
/// is one durable embedded bucket, "default", in ./.kvhost.
#[derive(Debug, Parser)]
#[command(name = "kvhost", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read, write, list, import and export the keys of a bucket.
    Kv(KvArgs),
}

/// Where the configuration comes from; accepted by every subcommand.
#[derive(Debug, Args, Clone, Default)]
pub struct ConfigArgs {
    /// The config file (default: ./kvhost.toml if it exists, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The data directory for embedded buckets (overrides data_dir in the config).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KvArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(subcommand)]
    pub command: KvCommand,
}

#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Print a key's value to stdout, byte for byte (exit 1 if the key does not exist).
    Get { bucket: String, key: String },
    /// Set a key to VALUE, or to all of stdin when VALUE is "-".
    Set {
        bucket: String,
        key: String,
        value: String,
    },
    /// Delete a key (deleting a missing key succeeds).
    Delete { bucket: String, key: String },
    /// Print every key of a bucket, one per line.
    List { bucket: String },
    /// Write every entry as JSON lines: {"key": "...", "value": "<base64>"}.
    Export { bucket: String },
    /// Read JSON lines as written by export from FILE or stdin ("-", the default) and set
    /// every entry, in batches.
    Import {
        bucket: String,
        #[arg(default_value = "-")]
        file: String,
    },
    /// List the configured buckets and their backends.
    Buckets,
}
