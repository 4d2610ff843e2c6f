//! `kvhost kv ...`: administer buckets from the shell, through the same library and config a
//! component would use (limits included; grants do not apply to the administrator).

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};

use anyhow::{anyhow, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kvhost::{BucketHandle, Error};
use serde::{Deserialize, Serialize};

use crate::cli::{KvArgs, KvCommand};
use crate::import::Importer;
use crate::setup::{open_bucket as open, open_registry, open_registry_read_only};
use crate::Outcome;

/// One line of `export` output and `import` input.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    key: String,
    /// The value, base64 (standard alphabet, padded).
    value: String,
}

pub async fn run(args: KvArgs) -> Result<Outcome> {
    let (config, registry) = if args.read_only {
        open_registry_read_only(&args.config)?
    } else {
        open_registry(&args.config)?
    };
    let outcome = match args.command {
        KvCommand::Get { bucket, key } => {
            let bucket = open(&registry, &bucket)?;
            match bucket.get(&key).await.map_err(|e| op_error(&bucket, &e))? {
                Some(value) => {
                    write_stdout(|out| out.write_all(&value))?;
                    Outcome::Done
                }
                None => {
                    eprintln!("key {key:?} does not exist in bucket {:?}", bucket.name());
                    Outcome::NotFound
                }
            }
        }
        KvCommand::Set { bucket, key, value } => {
            let bucket = open(&registry, &bucket)?;
            let value = if value == "-" {
                let mut bytes = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut bytes)
                    .context("cannot read the value from stdin")?;
                bytes
            } else {
                value.into_bytes()
            };
            bucket
                .set(key, value)
                .await
                .map_err(|e| op_error(&bucket, &e))?;
            Outcome::Done
        }
        KvCommand::Delete { bucket, key } => {
            let bucket = open(&registry, &bucket)?;
            bucket
                .delete(key)
                .await
                .map_err(|e| op_error(&bucket, &e))?;
            Outcome::Done
        }
        KvCommand::List { bucket, json, null } => {
            let bucket = open(&registry, &bucket)?;
            let mut pages = Pages::new(&bucket);
            let mut warned = false;
            while let Some(keys) = pages.next().await? {
                if !(json || null || warned) && keys.iter().any(|key| key.contains('\n')) {
                    warned = true;
                    eprintln!(
                        "warning: bucket {:?} has keys with a newline, which this list cannot \
                         tell apart; use --json or -0",
                        bucket.name()
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
                })?;
            }
            Outcome::Done
        }
        KvCommand::Export { bucket, salvage } => {
            let bucket = open(&registry, &bucket)?;
            if salvage {
                salvage_export(&bucket).await?;
            } else {
                export(&bucket).await?;
            }
            Outcome::Done
        }
        KvCommand::Check { buckets } => {
            if !crate::check::check(&registry, &buckets).await? {
                return Err(anyhow!(
                    "the store is damaged: `kvhost kv export BUCKET --salvage > BUCKET.jsonl` \
                     saves what can be read of a bucket (see docs/durability.md, \
                     \"Damaged store files\")"
                ));
            }
            Outcome::Done
        }
        KvCommand::Import { bucket, file } => {
            import(&open(&registry, &bucket)?, &file).await?;
            Outcome::Done
        }
        KvCommand::ImportSpin { file, store, into } => {
            let request = crate::spin_sqlite::ImportSpin { file, store, into };
            crate::spin_sqlite::import(&registry, &request).await?;
            Outcome::Done
        }
        KvCommand::Buckets => {
            write_stdout(|out| {
                config.buckets.iter().try_for_each(|(name, bucket)| {
                    writeln!(out, "{name}\t{}", bucket.backend.name())
                })
            })?;
            Outcome::Done
        }
    };
    registry
        .flush()
        .await
        .map_err(|e| anyhow!("{e}"))
        .context("cannot flush writes to disk")?;
    Ok(outcome)
}

fn op_error(bucket: &BucketHandle, err: &Error) -> anyhow::Error {
    anyhow!("bucket {:?}: {err}", bucket.name())
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

/// Walks a bucket's listing page by page, first to last.
struct Pages<'b> {
    bucket: &'b BucketHandle,
    /// `None` before the first page; `Some(None)` once the listing is done.
    cursor: Option<Option<String>>,
}

impl<'b> Pages<'b> {
    fn new(bucket: &'b BucketHandle) -> Self {
        Pages {
            bucket,
            cursor: None,
        }
    }

    /// The next page of keys, or `None` after the last one.
    async fn next(&mut self) -> Result<Option<Vec<String>>> {
        let position = match &self.cursor {
            Some(None) => return Ok(None),
            Some(Some(cursor)) => Some(cursor.as_str()),
            None => None,
        };
        let page = self
            .bucket
            .list_keys(position)
            .await
            .map_err(|e| op_error(self.bucket, &e))?;
        self.cursor = Some(page.cursor);
        Ok(Some(page.keys))
    }
}

async fn export(bucket: &BucketHandle) -> Result<()> {
    let mut pages = Pages::new(bucket);
    while let Some(keys) = pages.next().await? {
        let entries = bucket
            .get_many(keys)
            .await
            .map_err(|e| op_error(bucket, &e))?;
        write_stdout(|out| {
            // A key deleted between listing and reading is simply not exported.
            for (key, value) in entries {
                if let Some(value) = value {
                    let line = Line {
                        key,
                        value: STANDARD.encode(value),
                    };
                    serde_json::to_writer(&mut *out, &line)?;
                    out.write_all(b"\n")?;
                }
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// `export --salvage`: every entry that can be read, then a summary on stderr.
async fn salvage_export(bucket: &BucketHandle) -> Result<()> {
    let mut failed = None;
    let walk = crate::check::walk(bucket, |key, value| {
        if failed.is_some() {
            return;
        }
        let line = Line {
            key,
            value: STANDARD.encode(value),
        };
        let written = write_stdout(|out| {
            serde_json::to_writer(&mut *out, &line)?;
            out.write_all(b"\n")
        });
        failed = written.err();
    })
    .await;
    if let Some(err) = failed {
        return Err(err);
    }
    let summary = crate::check::describe(bucket.name(), &walk);
    if walk.read == 0 && !walk.complete() {
        return Err(anyhow!("nothing could be salvaged: {summary}"));
    }
    eprintln!("salvaged {summary}");
    Ok(())
}

async fn import(bucket: &BucketHandle, file: &str) -> Result<()> {
    let (input, progress): (Box<dyn BufRead>, ProgressBar) = if file == "-" {
        (
            Box::new(BufReader::new(std::io::stdin())),
            ProgressBar::new_spinner(),
        )
    } else {
        let opened = std::fs::File::open(file).with_context(|| format!("cannot open {file}"))?;
        let size = opened.metadata().map_or(0, |m| m.len());
        (Box::new(BufReader::new(opened)), ProgressBar::new(size))
    };
    if std::io::stderr().is_terminal() {
        progress.set_draw_target(ProgressDrawTarget::stderr());
        progress.set_style(
            ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
    } else {
        progress.set_draw_target(ProgressDrawTarget::hidden());
    }
    let source = if file == "-" { "stdin" } else { file };
    let mut importer = Importer::new(bucket);
    let mut stopped = None;
    for (index, line) in input.lines().enumerate() {
        let number = index + 1;
        let entry = async {
            let line = line.with_context(|| format!("{source}:{number}: cannot read the line"))?;
            progress.inc(line.len() as u64 + 1);
            if line.trim().is_empty() {
                return Ok(());
            }
            let entry: Line = serde_json::from_str(&line).with_context(|| {
                format!("{source}:{number}: expected {{\"key\": \"...\", \"value\": \"<base64>\"}}")
            })?;
            let value = STANDARD
                .decode(&entry.value)
                .with_context(|| format!("{source}:{number}: value is not valid base64"))?;
            importer
                .push(entry.key, value)
                .await
                .with_context(|| format!("{source}:{number}"))
        }
        .await;
        if let Err(err) = entry {
            stopped = Some(err);
            break;
        }
        progress.set_message(format!("{} entries", importer.imported));
    }
    // What was read before a bad line is written, so the count below is exact.
    let imported = importer.finish().await?;
    progress.finish_and_clear();
    if let Some(err) = stopped {
        return Err(anyhow!(
            "{err:#}\nimport stopped there: the first {imported} entries of the input are in \
             bucket {:?}, none after them; fix the line and import again (keys already \
             imported are overwritten with the same values)",
            bucket.name()
        ));
    }
    eprintln!(
        "imported {imported} entries into bucket {:?}",
        bucket.name()
    );
    Ok(())
}
