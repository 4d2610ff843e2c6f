//! Moving from Spin, part one: the `[key_value_store.NAME]` tables of its
//! `runtime-config.toml` as kvhost buckets (`--runtime-config`).
//!
//! `type = "spin"` (Spin's default, a SQLite file) becomes a durable embedded bucket NAME in
//! kvhost's data dir; `type = "redis"` (with `url`) becomes a kvhost redis bucket (kvhost's own
//! key layout, so keys Spin wrote to that Redis are not visible); other sections of the file
//! (`[sqlite_database.*]`, `[llm_compute]`, ...) are not key-value storage and are ignored
//! with a note.
//!
//! Spin's data is never read behind the user's back: a `type = "spin"` store whose `path`
//! holds data is reported with the command that imports it ([`crate::spin_sqlite`]).

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use kvhost::config::{check_bucket_name, describe_toml_error};
use kvhost::{BackendKind, BucketConfig};

use crate::bucket_spec::BucketSpec;
use crate::spin_sqlite::report_spin_data;

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
            bucket: BucketConfig::redis(url.to_string()),
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
