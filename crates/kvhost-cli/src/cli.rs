//! The command line, declared with clap. `--help` text lives here and is the reference the
//! README repeats.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::units::{parse_duration, parse_size, parse_time_limit};

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
    /// Run a wasi:cli/run component (WASIp2 @0.2.x or WASIp3 @0.3.0) with buckets and exit
    /// with its status.
    ///
    /// The component gets stdin/stdout/stderr, ARGS (argv[0] is the component's file name),
    /// this process's environment plus --env entries, and wasi:keyvalue (0.2.0-draft2 and
    /// 0.2.0-draft) and Spin's key-value interfaces over the configured buckets. Whatever ends
    /// the guest, the buckets are flushed before kvhost exits. Exit status: the guest's own;
    /// 124 when it runs past --timeout; 134 when it traps or exceeds --max-memory; 130/143
    /// when SIGINT/SIGTERM stopped it; 74 when the buckets could not be flushed after it ended
    /// (acknowledged writes may be lost); 2 when kvhost cannot start it.
    Run(RunArgs),
    /// Serve a wasi:http component (e.g. a Spin app) over HTTP, with buckets.
    ///
    /// A WASIp2 handler (wasi:http/incoming-handler@0.2.x, spin-sdk 3.x) gets a fresh instance
    /// per request; a WASIp3 handler (wasi:http/handler@0.3.0 or @0.3.0-rc-2026-03-15, spin-sdk
    /// 5.x and 4.x) takes several requests per instance, concurrently (see --instance-*).
    /// Instances come pre-linked from a pooling allocator. Key-value: wasi:keyvalue and Spin's
    /// fermyon:spin/key-value@2.0.0 and spin:key-value@3.0.0. Interfaces kvhost does not provide (Spin's variables, SQLite, ..., wasi:config) are linked as stubs: the component loads, and only a request that calls one fails, with a
    /// 500 naming the interface. Logs go to stderr (set KVHOST_LOG=debug for more); SIGINT or
    /// SIGTERM stops accepting, lets in-flight requests finish, flushes the buckets and exits.
    Serve(Box<ServeArgs>),
    /// Read, write, list, import and export the keys of a bucket.
    ///
    /// While a kvhost with an admin listener (`serve --admin`, `admin`) runs on the data
    /// dir, these commands go through its admin API, on its live buckets (found through
    /// DATA_DIR/admin.json; said on stderr), with the same output and exit status; --server
    /// does that explicitly, --read-only never.
    Kv(KvArgs),
    /// Serve the admin API and web console over the configured buckets, with no app (any
    /// backend). SIGINT or SIGTERM stops it. See docs/admin.md.
    Admin(AdminArgs),
    /// Run a wasi:keyvalue watch-service component (or the config's [[watchers]]): its
    /// on-set / on-delete are called for every committed change of the watched buckets, at
    /// least once, in commit order per key, resuming where it stopped (see
    /// docs/consistency.md, "Watchers"). SIGINT or SIGTERM stops it.
    Watch(WatchArgs),
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// A bucket COMPONENT watches (repeatable; any backend). It keeps a change log
    /// (watch_retention, default 100000 changes).
    #[arg(long = "bucket", value_name = "NAME", requires = "component")]
    pub buckets: Vec<String>,
    /// Deliver only changes of keys starting with PREFIX (repeatable; default: every key).
    #[arg(long = "prefix", value_name = "PREFIX", requires = "component")]
    pub prefixes: Vec<String>,
    /// Most linear memory one watcher instance may use.
    #[arg(long, value_name = "SIZE", default_value = DEFAULT_MAX_MEMORY, value_parser = parse_size)]
    pub max_memory: usize,
    /// Where compiled components are cached (as for `run`).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile the component afresh and do not cache it.
    #[arg(long)]
    pub no_cache: bool,
    /// The watch-service component (.wasm), exporting wasi:keyvalue/watcher@0.2.0-draft2
    /// (needs --bucket). Without it, the config's [[watchers]] run.
    #[arg(requires = "buckets")]
    pub component: Option<PathBuf>,
}

/// The default admin address of `kvhost admin`.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9091";

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The address to serve the admin API and console on. Loopback by default; another
    /// address is allowed with a warning (anyone who has the token can change every bucket).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_ADMIN_LISTEN)]
    pub listen: SocketAddr,
    /// Read the bearer token from FILE (at least 32 visible ASCII characters) instead of
    /// making a fresh one. Either way it is written, with the address, to DATA_DIR/admin.json
    /// (mode 0600) for `kvhost kv`, and never logged.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
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
    /// A Spin runtime-config.toml: each [key_value_store.NAME] with type = "spin" becomes a
    /// durable embedded bucket NAME (added to the config's buckets and granted).
    #[arg(long, global = true, value_name = "FILE")]
    pub runtime_config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KvArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Open the buckets for reading only: writes are refused, and the embedded store is read
    /// from a snapshot in memory, so a data dir that cannot be written (a read-only mount,
    /// another user's, one a running kvhost holds) can still be listed and exported.
    #[arg(long, global = true, conflicts_with = "server")]
    pub read_only: bool,
    /// Go through the admin API of the kvhost at URL (e.g. http://127.0.0.1:9091) instead of
    /// opening the buckets here. The token comes from --token-file, else $KVHOST_ADMIN_TOKEN.
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// The file holding the admin token, for --server.
    #[arg(long, global = true, value_name = "FILE", requires = "server")]
    pub token_file: Option<PathBuf>,
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
    /// Print every key of a bucket, one per line (a key with a newline is ambiguous there:
    /// use --json or -0 for such keys).
    List {
        bucket: String,
        /// Only the keys that start with PREFIX.
        #[arg(long, value_name = "PREFIX", default_value = "")]
        prefix: String,
        /// Print each key as a JSON string on its own line.
        #[arg(long, conflicts_with = "null")]
        json: bool,
        /// End each key with a NUL byte instead of a newline (for xargs -0).
        #[arg(short = '0', long = "null")]
        null: bool,
    },
    /// Write every entry as JSON lines: {"key": "...", "value": "<base64>"}.
    Export {
        bucket: String,
        /// Only the entries whose key starts with PREFIX.
        #[arg(
            long,
            value_name = "PREFIX",
            default_value = "",
            conflicts_with = "salvage"
        )]
        prefix: String,
        /// From a damaged store: export every entry that can be read, skip the rest, and say
        /// on stderr what was skipped (exit 0 unless nothing could be read).
        #[arg(long)]
        salvage: bool,
    },
    /// Read every key and value of the buckets (default: all configured buckets) and say, one
    /// line per bucket, whether all of it is readable. Exit 2 if anything is not; then
    /// `export --salvage` saves what can be read (see docs/durability.md).
    Check { buckets: Vec<String> },
    /// Read JSON lines as written by export from FILE or stdin ("-", the default) and set
    /// every entry, in batches.
    Import {
        bucket: String,
        #[arg(default_value = "-")]
        file: String,
    },
    /// List the configured buckets and their backends.
    Buckets,
    /// Copy the entries of a Spin SQLite key-value file (Spin's default store, e.g.
    /// .spin/sqlite_key_value.db) into buckets: each Spin store into the bucket of the same
    /// name, unless --store/--into say otherwise. Existing keys are overwritten.
    ImportSpin {
        /// The Spin SQLite file.
        file: PathBuf,
        /// Import only this Spin store (default: every store in the file).
        #[arg(long, value_name = "STORE")]
        store: Option<String>,
        /// Into this bucket instead of the one named like the store (needs one store).
        #[arg(long, value_name = "BUCKET")]
        into: Option<String>,
    },
}

/// The default `--max-memory`.
pub const DEFAULT_MAX_MEMORY: &str = "2GiB";

/// What `run` and `serve` share: buckets, the memory cap, environment and compile cache.
#[derive(Debug, Args)]
pub struct HostArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Add a bucket: NAME (embedded, in the data dir), NAME=embedded:, NAME=memory:, or
    /// NAME=redis[s]://[:PASSWORD@]HOST:PORT/DB (rediss: TLS; a password is never echoed).
    /// Repeatable; replaces a configured bucket of the same name and is granted to the
    /// component.
    // Parsed by `BucketSpec` in bucket_spec.rs, not by clap, so that a URL's password is never
    // echoed.
    #[arg(long = "bucket", value_name = "NAME[=URL]")]
    pub buckets: Vec<String>,
    /// Most linear memory one component instance may use (e.g. 256MiB, 2GiB).
    #[arg(long, value_name = "SIZE", default_value = DEFAULT_MAX_MEMORY, value_parser = parse_size)]
    pub max_memory: usize,
    /// Set an environment variable for the component.
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Where compiled components are cached (default: $KVHOST_CACHE_DIR, else
    /// $XDG_CACHE_HOME/kvhost, else ~/.cache/kvhost).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile the component afresh and do not cache it.
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct RunArgs {
    #[command(flatten)]
    pub host: HostArgs,
    /// Stop the component after this long (e.g. 500ms, 30s, 2m); exit status 124.
    #[arg(long, value_name = "DURATION", value_parser = parse_time_limit)]
    pub timeout: Option<Duration>,
    /// The component (.wasm) to run.
    pub component: PathBuf,
    /// Arguments for the component.
    #[arg(allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub host: HostArgs,
    /// The address to serve HTTP on. Loopback by default; give 0.0.0.0:PORT to accept
    /// connections from other machines.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// Most requests handled at once (each has its own component instance).
    #[arg(long, value_name = "N", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_concurrency: u32,
    /// Most requests waiting for a free slot; past that, requests get 503 at once.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub max_queued: u32,
    /// How long one request may take, from entering a slot to the component's end (e.g. 5s);
    /// past it the instance is stopped and the client gets 504 if nothing was sent yet.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_time_limit)]
    pub request_timeout: Duration,
    /// On SIGINT/SIGTERM, how long in-flight requests may still take before kvhost exits.
    /// Connections that have not sent a whole request are closed at once.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// Most client connections open at once; one more is answered 503 and closed. Lowered,
    /// with a warning, if the open-file limit (raised as far as allowed) is too small.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// How long a client may take to send a request's head; a connection idle this long
    /// between requests is closed too.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_time_limit)]
    pub header_timeout: Duration,
    /// Largest request body (e.g. 16MiB): a larger Content-Length gets 413 at once, a larger
    /// streamed body ends in an error where the component reads past the limit.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_size)]
    pub max_request_body: usize,
    /// Most linear memory all instances together may use (default: three quarters of the
    /// machine's memory). An instance that would grow past it fails its request with 503.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_total_memory: Option<usize>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9090).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Serve the admin API and web console at http://ADDR/ (e.g. 127.0.0.1:9091), over the
    /// app's own buckets: the console and the app see each other's writes at once, and
    /// `kvhost kv` works while the app runs. Loopback unless another address is given (then
    /// a warning). See docs/admin.md.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
    /// Read the admin token from FILE instead of making a fresh one (see `kvhost admin
    /// --help`).
    #[arg(long, value_name = "FILE", requires = "admin")]
    pub admin_token_file: Option<PathBuf>,
    /// Run a wasi:keyvalue watch-service component beside the app, on BUCKETs (default:
    /// "default"), in this process: its handlers are called for every committed change
    /// (repeatable; the config's [[watchers]] run too; see `kvhost watch --help`).
    #[arg(long = "watcher", value_name = "COMPONENT[:BUCKET[,BUCKET]]", value_parser = crate::watch::WatcherSpec::parse)]
    pub watchers: Vec<crate::watch::WatcherSpec>,
    #[command(flatten)]
    pub reuse: ReuseArgs,
    /// The wasi:http component (.wasm) to serve: a Spin app (any spin-sdk 3.x, 4.x, 5.x) or
    /// any component exporting wasi:http/incoming-handler@0.2.x or wasi:http/handler@0.3.0.
    pub component: PathBuf,
}

/// Instance reuse for WASIp3 handlers (`wasi:http/handler@0.3`). A WASIp2 handler always gets
/// a fresh instance per request.
#[derive(Debug, Args, Clone, Copy)]
pub struct ReuseArgs {
    /// Most requests one WASIp3 instance handles before it is retired; 1 gives every request
    /// a fresh instance (no state shared between requests).
    #[arg(long, value_name = "N", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    pub instance_max_requests: u32,
    /// Most requests one WASIp3 instance handles at the same time.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub instance_max_concurrent: u32,
    /// How long an idle WASIp3 instance is kept for the next request.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub instance_idle_timeout: Duration,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}
