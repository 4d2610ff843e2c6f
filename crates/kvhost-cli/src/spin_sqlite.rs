//! Moving from Spin, part two: its SQLite key-value files (table `spin_key_value`, one row
//! per store, key and value). [`import`] copies their entries into kvhost buckets
//! (`kvhost kv import-spin FILE`); [`report_spin_data`] tells the user when a file holds
//! entries kvhost does not read.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use kvhost::{Grants, Registry};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::import::Importer;

/// The table Spin keeps key-value entries in, for every store of one file.
const SPIN_TABLE: &str = "spin_key_value";

/// Tells the user when Spin's file for store `name` holds entries kvhost will not see.
pub fn report_spin_data(path: &Path, name: &str) {
    let Ok(connection) = open_spin_file(path) else {
        return;
    };
    let count: Result<i64, _> = connection.query_row(
        &format!("SELECT COUNT(*) FROM {SPIN_TABLE} WHERE store = ?1"),
        [name],
        |row| row.get(0),
    );
    if let Ok(count @ 1..) = count {
        tracing::warn!(
            "Spin's store {name:?} in {} has {count} entries, which kvhost does not read; \
             import them once with: kvhost kv import-spin {} --store {name}",
            path.display(),
            path.display()
        );
    }
}

fn open_spin_file(path: &Path) -> Result<Connection> {
    if !path.is_file() {
        bail!("{} does not exist", path.display());
    }
    let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {} as a SQLite database", path.display()))?;
    let has_table: bool = connection
        .query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [SPIN_TABLE],
            |row| row.get(0),
        )
        .with_context(|| format!("{} is not a SQLite database", path.display()))?;
    if !has_table {
        bail!(
            "{} is not a Spin key-value database (it has no {SPIN_TABLE} table)",
            path.display()
        );
    }
    Ok(connection)
}

/// What `kvhost kv import-spin` was asked to do.
pub struct ImportSpin {
    /// The Spin SQLite file.
    pub file: PathBuf,
    /// Only this store (default: every store in the file).
    pub store: Option<String>,
    /// Into this bucket (default: the bucket named like the store).
    pub into: Option<String>,
}

/// Copies entries from a Spin SQLite key-value file into buckets; prints one line per store.
pub async fn import(registry: &Registry, request: &ImportSpin) -> Result<()> {
    let connection = open_spin_file(&request.file)?;
    let file = request.file.display();
    let stores: Vec<String> = match &request.store {
        Some(store) => vec![store.clone()],
        None => {
            let mut query = connection.prepare(&format!(
                "SELECT DISTINCT store FROM {SPIN_TABLE} ORDER BY store"
            ))?;
            let rows = query.query_map([], |row| row.get(0))?;
            rows.collect::<Result<_, _>>()
                .with_context(|| format!("cannot read the stores of {file}"))?
        }
    };
    if request.into.is_some() && stores.len() != 1 {
        bail!(
            "--into needs exactly one store; {file} has {} (pick one with --store)",
            stores.len()
        );
    }
    // Every store's bucket is found before anything is written.
    let targets = stores
        .iter()
        .map(|store| {
            let target = request.into.as_deref().unwrap_or(store);
            registry.open(target, &Grants::All).map_err(|_| {
                anyhow!(
                    "Spin store {store:?} has no kvhost bucket {target:?} to go into; configured \
                     buckets: {}. Add [buckets.{target}] to kvhost.toml, or pick one with --into",
                    registry.names().collect::<Vec<_>>().join(", ")
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    for (store, bucket) in stores.iter().zip(&targets) {
        let mut query = connection.prepare(&format!(
            "SELECT key, value FROM {SPIN_TABLE} WHERE store = ?1 ORDER BY key"
        ))?;
        let mut rows = query.query([store])?;
        let mut importer = Importer::new(bucket);
        while let Some(row) = rows.next().with_context(|| format!("cannot read {file}"))? {
            let key: String = row
                .get(0)
                .with_context(|| format!("{file}: store {store:?} has a key that is not text"))?;
            let value = match row.get_ref(1)? {
                ValueRef::Blob(bytes) | ValueRef::Text(bytes) => bytes.to_vec(),
                other => bail!(
                    "{file}: store {store:?} key {key:?}: the value is {:?}, not bytes",
                    other.data_type()
                ),
            };
            importer
                .push(key.clone(), value)
                .await
                .with_context(|| format!("{file}: store {store:?} key {key:?}"))?;
        }
        let imported = importer.finish().await?;
        eprintln!(
            "imported {imported} entries from Spin store {store:?} into bucket {:?}",
            bucket.name()
        );
    }
    Ok(())
}
