//! `kvhost kv ...`: administer buckets from the shell, through the same library and config a
//! component would use (limits included; grants do not apply to the administrator).
//!
//! The buckets are opened here ([`local`]), unless a running kvhost with an admin listener
//! serves them (its discovery file in the data dir names a live process whose API answers),
//! or `--server` names one: then every command goes through its admin API ([`remote`]), with
//! the same output and exit status. So `kv` sees the live data of a running server, memory
//! buckets included, and a discovery file left by a killed server is ignored.

mod local;
mod remote;

use std::io::{Read, Write};

use anyhow::{anyhow, Context, Result};
use kvhost::{Config, Registry};

use self::remote::Client;
use crate::cli::{KvArgs, KvCommand};
use crate::setup::{configure, open_bucket as open, open_registry, open_registry_read_only};
use crate::Outcome;

/// The environment variable `--server` takes the token from when `--token-file` is not given.
pub const TOKEN_ENV: &str = "KVHOST_ADMIN_TOKEN";

/// Where the commands run.
enum Target {
    /// On buckets opened in this process.
    Local { config: Config, registry: Registry },
    /// Through a running kvhost's admin API.
    Remote(Client),
}

pub async fn run(args: KvArgs) -> Result<Outcome> {
    let target = target(&args).await?;
    let outcome = match &target {
        Target::Local { config, registry } => run_local(args.command, config, registry).await?,
        Target::Remote(client) => run_remote(args.command, client).await?,
    };
    if let Target::Local { registry, .. } = &target {
        registry
            .flush()
            .await
            .map_err(|e| anyhow!("{e}"))
            .context("cannot flush writes to disk")?;
    }
    Ok(outcome)
}

/// The admin API of `--server`, or of a running kvhost serving the data dir, or local buckets.
async fn target(args: &KvArgs) -> Result<Target> {
    if let Some(url) = &args.server {
        let token = match &args.token_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --token-file {}", path.display()))?
                .trim()
                .to_string(),
            None => std::env::var(TOKEN_ENV).map_err(|_| {
                anyhow!(
                    "--server needs the admin token: pass --token-file FILE or set ${TOKEN_ENV}"
                )
            })?,
        };
        return Ok(Target::Remote(Client::new(url, &token)?));
    }
    let config = configure(&args.config, &[], &[])?;
    if args.read_only {
        let registry = open_registry_read_only(&config)?;
        return Ok(Target::Local { config, registry });
    }
    let data_dir = &config.data_dir;
    let mut unreachable = None;
    if let Some(found) = crate::admin::discovered(data_dir)? {
        if process_alive(found.pid) {
            let client = Client::new(&found.url, &found.token)?;
            match client.buckets().await {
                Ok(_) => {
                    eprintln!(
                        "kvhost: data dir {} is served by a running kvhost (pid {}); going \
                         through its admin API at {}",
                        data_dir.display(),
                        found.pid,
                        found.url
                    );
                    return Ok(Target::Remote(client));
                }
                Err(err) => unreachable = Some(err),
            }
        }
    }
    match open_registry(&config) {
        Ok(registry) => Ok(Target::Local { config, registry }),
        Err(err) if held_by_another_process(&err) => Err(match unreachable {
            Some(api_error) => err.context(format!(
                "the kvhost holding it published an admin API, but it does not answer \
                 ({api_error:#}); pass --read-only to read a snapshot"
            )),
            None => err.context(
                "to use kvhost kv while it runs, start that kvhost with --admin \
                 127.0.0.1:PORT (kvhost kv then goes through it), or pass --read-only to \
                 read a snapshot",
            ),
        }),
        Err(err) => Err(err),
    }
}

/// Whether a process with this pid exists (it may belong to another user).
fn process_alive(pid: u32) -> bool {
    // 0 and negative pids name process groups, not a process.
    let Ok(pid @ 1..) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 sends nothing; it only checks that the process exists.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether opening the buckets failed because another process holds the data dir.
fn held_by_another_process(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<kvhost::SetupError>(),
            Some(kvhost::SetupError::Embedded(
                kvhost::backend::embedded::OpenError::InUse { .. }
            ))
        )
    })
}

async fn run_local(command: KvCommand, config: &Config, registry: &Registry) -> Result<Outcome> {
    Ok(match command {
        KvCommand::Get { bucket, key } => {
            let bucket = open(registry, &bucket)?;
            let value = bucket
                .get(&key)
                .await
                .map_err(|e| op_error(bucket.name(), &e))?;
            print_value(bucket.name(), &key, value)?
        }
        KvCommand::Set { bucket, key, value } => {
            let bucket = open(registry, &bucket)?;
            bucket
                .set(key, value_argument(value)?)
                .await
                .map_err(|e| op_error(bucket.name(), &e))?;
            Outcome::Done
        }
        KvCommand::Delete { bucket, key } => {
            let bucket = open(registry, &bucket)?;
            bucket
                .delete(key)
                .await
                .map_err(|e| op_error(bucket.name(), &e))?;
            Outcome::Done
        }
        KvCommand::List {
            bucket,
            prefix,
            json,
            null,
        } => {
            let bucket = &open(registry, &bucket)?;
            let prefix = &prefix;
            let printer = KeyPrinter::new(bucket.name(), json, null);
            printer
                .print_pages(|cursor| async move {
                    bucket
                        .list_keys_with_prefix(prefix, cursor.as_deref())
                        .await
                        .map_err(|e| op_error(bucket.name(), &e))
                })
                .await?;
            Outcome::Done
        }
        KvCommand::Export {
            bucket,
            prefix,
            salvage,
        } => {
            let bucket = open(registry, &bucket)?;
            if salvage {
                local::salvage_export(&bucket).await?;
            } else {
                local::export(&bucket, &prefix).await?;
            }
            Outcome::Done
        }
        KvCommand::Check { buckets } => {
            if !crate::check::check(registry, &buckets).await? {
                return Err(anyhow!(
                    "the store is damaged: `kvhost kv export BUCKET --salvage > BUCKET.jsonl` \
                     saves what can be read of a bucket (see docs/durability.md, \
                     \"Damaged store files\")"
                ));
            }
            Outcome::Done
        }
        KvCommand::Import { bucket, file } => {
            let bucket = open(registry, &bucket)?;
            let imported = local::import(&bucket, &file).await?;
            eprintln!(
                "imported {imported} entries into bucket {:?}",
                bucket.name()
            );
            Outcome::Done
        }
        KvCommand::ImportSpin { file, store, into } => {
            let request = crate::spin_sqlite::ImportSpin { file, store, into };
            crate::spin_sqlite::import(registry, &request).await?;
            Outcome::Done
        }
        KvCommand::Buckets => {
            let rows: Vec<(String, &str)> = config
                .buckets
                .iter()
                .map(|(name, bucket)| (name.clone(), bucket.backend.name()))
                .collect();
            print_buckets(&rows)?;
            Outcome::Done
        }
    })
}

async fn run_remote(command: KvCommand, client: &Client) -> Result<Outcome> {
    Ok(match command {
        KvCommand::Get { bucket, key } => {
            let value = client.get(&bucket, &key).await?;
            print_value(&bucket, &key, value)?
        }
        KvCommand::Set { bucket, key, value } => {
            client.set(&bucket, &key, value_argument(value)?).await?;
            Outcome::Done
        }
        KvCommand::Delete { bucket, key } => {
            client.delete(&bucket, &key).await?;
            Outcome::Done
        }
        KvCommand::List {
            bucket,
            prefix,
            json,
            null,
        } => {
            let (bucket, prefix) = (&bucket, &prefix);
            let printer = KeyPrinter::new(bucket, json, null);
            printer
                .print_pages(|cursor| async move {
                    client.list_page(bucket, prefix, cursor.as_deref()).await
                })
                .await?;
            Outcome::Done
        }
        KvCommand::Export {
            bucket,
            prefix,
            salvage: false,
        } => {
            client
                .export(&bucket, &prefix, |chunk| {
                    write_stdout(|out| out.write_all(chunk))
                })
                .await?;
            Outcome::Done
        }
        KvCommand::Import { bucket, file } => {
            let input: Box<dyn Read + Send> = if file == "-" {
                Box::new(std::io::stdin())
            } else {
                Box::new(std::fs::File::open(&file).with_context(|| format!("cannot open {file}"))?)
            };
            let imported = client.import(&bucket, input).await?;
            eprintln!("imported {imported} entries into bucket {bucket:?}");
            Outcome::Done
        }
        KvCommand::Buckets => {
            let buckets = client.buckets().await?;
            let rows: Vec<(String, &str)> = buckets
                .iter()
                .map(|bucket| (bucket.name.clone(), bucket.backend.as_str()))
                .collect();
            print_buckets(&rows)?;
            Outcome::Done
        }
        KvCommand::Export { salvage: true, .. }
        | KvCommand::Check { .. }
        | KvCommand::ImportSpin { .. } => {
            return Err(anyhow!(
                "this command reads or writes the store files themselves, which the running \
                 kvhost holds: stop it first (its buckets are flushed on SIGTERM), then run \
                 the command again"
            ));
        }
    })
}

/// `kv set`'s VALUE: the text itself, or all of stdin for "-".
fn value_argument(value: String) -> Result<Vec<u8>> {
    if value != "-" {
        return Ok(value.into_bytes());
    }
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .context("cannot read the value from stdin")?;
    Ok(bytes)
}

/// `kv get`'s output: the value byte for byte, or exit 1 with a word on stderr.
fn print_value(bucket: &str, key: &str, value: Option<Vec<u8>>) -> Result<Outcome> {
    match value {
        Some(value) => {
            write_stdout(|out| out.write_all(&value))?;
            Ok(Outcome::Done)
        }
        None => {
            eprintln!("key {key:?} does not exist in bucket {bucket:?}");
            Ok(Outcome::NotFound)
        }
    }
}

fn print_buckets(rows: &[(String, &str)]) -> Result<()> {
    write_stdout(|out| {
        rows.iter()
            .try_for_each(|(name, backend)| writeln!(out, "{name}\t{backend}"))
    })
}

/// `kv list`'s output, page by page: one key per line, as JSON strings, or NUL-terminated.
struct KeyPrinter<'a> {
    bucket: &'a str,
    json: bool,
    null: bool,
    warned: bool,
}

impl<'a> KeyPrinter<'a> {
    fn new(bucket: &'a str, json: bool, null: bool) -> Self {
        KeyPrinter {
            bucket,
            json,
            null,
            warned: false,
        }
    }

    /// Prints every page `next_page` gives for a cursor, from the first (`None`) to the one
    /// without a cursor.
    async fn print_pages<F, Fut>(mut self, mut next_page: F) -> Result<()>
    where
        F: FnMut(Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<kvhost::KeyResponse>>,
    {
        let mut cursor = None;
        loop {
            let page = next_page(cursor.take()).await?;
            self.print(&page.keys)?;
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(()),
            }
        }
    }

    fn print(&mut self, keys: &[String]) -> Result<()> {
        let (json, null) = (self.json, self.null);
        if !(json || null || self.warned) && keys.iter().any(|key| key.contains('\n')) {
            self.warned = true;
            eprintln!(
                "warning: bucket {:?} has keys with a newline, which this list cannot tell \
                 apart; use --json or -0",
                self.bucket
            );
        }
        write_stdout(|out| {
            keys.iter().try_for_each(|key| {
                if json {
                    serde_json::to_writer(&mut *out, key)?;
                    writeln!(out)
                } else if null {
                    write!(out, "{key}\0")
                } else {
                    writeln!(out, "{key}")
                }
            })
        })
    }
}

fn op_error(bucket: &str, err: &kvhost::Error) -> anyhow::Error {
    anyhow!("bucket {bucket:?}: {err}")
}

/// Runs `write` on a locked stdout; a closed pipe (`kvhost kv list | head`) is not an error.
/// Exiting at once is safe there: only read-only commands write to stdout, so no write is
/// waiting to be flushed.
fn write_stdout(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match write(&mut out).and_then(|()| out.flush()) {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other.context("cannot write to stdout"),
    }
}
