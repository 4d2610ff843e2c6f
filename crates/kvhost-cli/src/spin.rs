//! Moving from Spin: its `runtime-config.toml` key-value section, and its SQLite key-value
//! files.
//!
//! * [`runtime_config_buckets`] reads `[key_value_store.NAME]` tables. `type = "spin"` (Spin's
//!   default, a SQLite file) becomes a durable embedded bucket NAME in kvhost's data dir;
//!   `type = "redis"` (with `url`) becomes a kvhost redis bucket (kvhost's own key layout, so
//!   keys Spin wrote to that Redis are not visible); other sections of the file
//!   (`[sqlite_database.*]`, `[llm_compute]`, ...) are not key-value storage and are ignored
//!   with a note.
//! * [`import`] copies the entries of a Spin SQLite key-value file (table `spin_key_value`,
//!   one row per store, key and value) into kvhost buckets: `kvhost kv import-spin FILE`.
//!
//! Spin's data is never read behind the user's back: a `type = "spin"` store whose `path`
//! holds data is reported with the command that imports it.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use kvhost::config::{check_bucket_name, describe_toml_error};
use kvhost::{BackendKind, BucketConfig, Grants, Registry};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::kv::Importer;
use crate::setup::BucketSpec;

/// The table Spin keeps key-value entries in, for every store of one file.
const SPIN_TABLE: &str = "spin_key_value";

/// The buckets the `[key_value_store.*]` tables of Spin's runtime config at `path` describe.
pub fn runtime_config_buckets(path: &Path) -> Result<Vec<BucketSpec>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the Spin runtime config {}", path.display()))?;
    let file = path.display();
    let table: toml::Table = text.parse().map_err(|err| {
        anyhow!(
            "{file}: not valid TOML: {}",
            describe_toml_error(&err, &text)
        )
    })?;
    let mut buckets = Vec::new();
    for (section, value) in &table {
        if section != "key_value_store" {
            tracing::info!("{file}: ignoring [{section}]: kvhost reads only [key_value_store.*]");
            continue;
        }
        let stores = value
            .as_table()
            .ok_or_else(|| anyhow!("{file}: key_value_store must be a table of stores"))?;
        for (name, store) in stores {
            let store = store
                .as_table()
                .ok_or_else(|| anyhow!("{file}: [key_value_store.{name}] must be a table"))?;
            buckets.push(store_bucket(path, name, store)?);
        }
    }
    Ok(buckets)
}

/// One `[key_value_store.NAME]` table as a bucket.
fn store_bucket(config: &Path, name: &str, store: &toml::Table) -> Result<BucketSpec> {
    let file = config.display();
    check_bucket_name(name).map_err(|message| anyhow!("{file}: store {name:?}: {message}"))?;
    let kind = store
        .get("type")
        .and_then(toml::Value::as_str)
        .ok_or_else(|| anyhow!("{file}: [key_value_store.{name}] needs type = \"spin\""))?;
    let allowed: &[&str] = match kind {
        "spin" => &["type", "path"],
        "redis" => &["type", "url"],
        other => bail!(
            "{file}: [key_value_store.{name}] has type {other:?}; kvhost supports type = \
             \"spin\" (a durable embedded bucket) and type = \"redis\""
        ),
    };
    if let Some(key) = store.keys().find(|key| !allowed.contains(&key.as_str())) {
        bail!(
            "{file}: [key_value_store.{name}]: unknown key {key:?} for type {kind:?} (known: {})",
            allowed.join(", ")
        );
    }
    if kind == "redis" {
        // The url is never echoed: it may hold a password.
        let url = store
            .get("url")
            .and_then(toml::Value::as_str)
            .filter(|url| url.starts_with("redis://") || url.starts_with("rediss://"))
            .ok_or_else(|| {
                anyhow!("{file}: [key_value_store.{name}] needs url = \"redis://HOST:PORT/DB\" (or rediss://)")
            })?;
        tracing::warn!(
            "{file}: store {name:?} is a kvhost redis bucket; kvhost keeps its own key layout \
             (docs/redis.md), so keys a Spin app stored in that Redis are not visible"
        );
        return Ok(BucketSpec {
            name: name.to_string(),
            bucket: crate::setup::redis_bucket(url.to_string()),
        });
    }
    if let Some(path) = store.get("path") {
        let path = path
            .as_str()
            .ok_or_else(|| anyhow!("{file}: [key_value_store.{name}] path must be a string"))?;
        // Spin resolves a relative path against the runtime config's directory.
        let path = config.parent().unwrap_or(Path::new(".")).join(path);
        report_spin_data(&path, name);
    }
    Ok(BucketSpec {
        name: name.to_string(),
        bucket: BucketConfig {
            backend: BackendKind::Embedded,
            ..BucketConfig::default()
        },
    })
}

/// Tells the user when Spin's file for store `name` holds entries kvhost will not see.
fn report_spin_data(path: &Path, name: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(text: &str) -> Result<Vec<BucketSpec>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("runtime-config.toml");
        std::fs::write(&path, text)?;
        runtime_config_buckets(&path)
    }

    #[test]
    fn spin_stores_become_embedded_buckets() {
        let specs = buckets(
            "[key_value_store.default]\ntype = \"spin\"\npath = \".spin/kv.db\"\n\n\
             [key_value_store.cache]\ntype = \"spin\"\n\n[sqlite_database.default]\ntype = \"spin\"\n",
        )
        .unwrap();
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["cache", "default"]);
        assert!(specs
            .iter()
            .all(|s| s.bucket.backend == BackendKind::Embedded));
    }

    #[test]
    fn unsupported_stores_are_refused_without_echoing_urls() {
        let err = buckets("[key_value_store.x]\ntype = \"redis\"\nurl = \"http://u:hunter2@h\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rediss://"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let redis =
            buckets("[key_value_store.x]\ntype = \"redis\"\nurl = \"redis://u:hunter2@h\"\n")
                .unwrap();
        assert_eq!(redis[0].bucket.backend, kvhost::BackendKind::Redis);
        let err = buckets("[key_value_store.x]\ntype = \"azure_cosmos\"\n").unwrap_err();
        assert!(err.to_string().contains("\"azure_cosmos\""), "{err}");
        let err = buckets("[key_value_store.x]\ntype = \"spin\"\npth = \"a\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown key \"pth\""), "{err}");
        assert!(buckets("[key_value_store.x]\npath = \"a\"\n").is_err());
        assert!(buckets("[key_value_store.\"a b\"]\ntype = \"spin\"\n").is_err());
    }
}
