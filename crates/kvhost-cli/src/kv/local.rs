//! `kvhost kv` on buckets opened in this process: export (whole, or salvaging a damaged
//! store) and import.

use std::io::{BufRead, BufReader, IsTerminal};

use anyhow::{anyhow, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kvhost::BucketHandle;

use super::{op_error, write_stdout};
use crate::import::Importer;
use crate::jsonl;

/// Writes every entry whose key starts with `prefix` to stdout as JSON lines.
pub async fn export(bucket: &BucketHandle, prefix: &str) -> Result<()> {
    let mut cursor: Option<String> = None;
    loop {
        let mut lines = Vec::new();
        let next = jsonl::export_page(bucket, prefix, cursor.as_deref(), &mut lines)
            .await
            .map_err(|e| op_error(bucket.name(), &e))?;
        write_stdout(|out| out.write_all(&lines))?;
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// `export --salvage`: every entry that can be read, then a summary on stderr.
pub async fn salvage_export(bucket: &BucketHandle) -> Result<()> {
    let mut failed = None;
    let walk = crate::check::walk(bucket, |key, value| {
        if failed.is_some() {
            return;
        }
        let mut line = Vec::new();
        jsonl::write_entry(&mut line, &key, &value);
        failed = write_stdout(|out| out.write_all(&line)).err();
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

/// Sets every entry of the JSON lines in `file` ("-": stdin), in batches; returns how many.
pub async fn import(bucket: &BucketHandle, file: &str) -> Result<usize> {
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
            let (key, value) = jsonl::read_entry(&line)
                .map_err(|message| anyhow!("{source}:{number}: {message}"))?;
            importer
                .push(key, value)
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
    Ok(imported)
}
