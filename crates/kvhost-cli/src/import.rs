//! Writing many entries into a bucket: `kvhost kv import` and `kvhost kv import-spin`.

use anyhow::{anyhow, Result};
use kvhost::BucketHandle;

/// Entries per `set_many` during import.
const IMPORT_BATCH_ENTRIES: usize = 1000;
/// Value bytes per `set_many` during import.
const IMPORT_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Writes entries into a bucket in `set_many` batches, checking each against the limits
/// first so that an error names the entry, not a batch.
pub struct Importer<'b> {
    bucket: &'b BucketHandle,
    batch: Vec<(String, Vec<u8>)>,
    batch_bytes: usize,
    /// Entries written so far.
    pub imported: usize,
}

impl<'b> Importer<'b> {
    /// An importer into `bucket`.
    pub fn new(bucket: &'b BucketHandle) -> Self {
        Importer {
            bucket,
            batch: Vec::new(),
            batch_bytes: 0,
            imported: 0,
        }
    }

    /// Adds one entry, writing the batch when it is full.
    pub async fn push(&mut self, key: String, value: Vec<u8>) -> Result<()> {
        let limits = self.bucket.limits();
        limits
            .check_key(&key)
            .and_then(|()| limits.check_value(&key, &value))
            .map_err(|e| anyhow!("{e}"))?;
        self.batch_bytes += key.len() + value.len();
        self.batch.push((key, value));
        if self.batch.len() >= IMPORT_BATCH_ENTRIES || self.batch_bytes >= IMPORT_BATCH_BYTES {
            self.write_batch().await?;
        }
        Ok(())
    }

    /// Writes what is left; returns how many entries were imported in all.
    pub async fn finish(mut self) -> Result<usize> {
        self.write_batch().await?;
        Ok(self.imported)
    }

    async fn write_batch(&mut self) -> Result<()> {
        let count = self.batch.len();
        if count > 0 {
            self.bucket
                .set_many(std::mem::take(&mut self.batch))
                .await
                .map_err(|e| {
                    anyhow!(
                        "bucket {:?}: {e} ({} entries were imported before this batch)",
                        self.bucket.name(),
                        self.imported
                    )
                })?;
        }
        self.imported += count;
        self.batch_bytes = 0;
        Ok(())
    }
}
