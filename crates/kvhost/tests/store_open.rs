//! Opening an embedded data directory: format version, foreign files, locking, and that a
//! clean shutdown makes `relaxed` writes durable.

use std::time::Duration;

use kvhost::backend::embedded::{EmbeddedStore, OpenError};
use kvhost::{Bucket, Durability};
use redb::{ReadableDatabase, TableDefinition};

const META: TableDefinition<'static, &str, u64> = TableDefinition::new("kvhost_meta");

#[test]
fn an_unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(EmbeddedStore::open(dir.path()).unwrap());
    {
        let db = redb::Database::create(dir.path().join("kvhost.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert("format", 99).unwrap();
        txn.commit().unwrap();
    }
    let err = EmbeddedStore::open(dir.path()).err().expect("must refuse");
    assert!(
        matches!(err, OpenError::Format { found: 99, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("format version 99"), "{message}");
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
}

#[test]
fn a_new_store_records_format_1() {
    let dir = tempfile::tempdir().unwrap();
    drop(EmbeddedStore::open(dir.path()).unwrap());
    let db = redb::Database::open(dir.path().join("kvhost.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    let format = txn
        .open_table(META)
        .unwrap()
        .get("format")
        .unwrap()
        .unwrap()
        .value();
    assert_eq!(format, 1);
}

#[test]
fn foreign_and_damaged_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = redb::Database::create(dir.path().join("kvhost.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        let other: TableDefinition<'_, &str, &str> = TableDefinition::new("someone-elses");
        txn.open_table(other).unwrap().insert("a", "b").unwrap();
        txn.commit().unwrap();
    }
    let err = EmbeddedStore::open(dir.path()).err().expect("must refuse");
    assert!(matches!(err, OpenError::Foreign { .. }), "{err:?}");

    let garbage = tempfile::tempdir().unwrap();
    std::fs::write(garbage.path().join("kvhost.redb"), vec![0x5a; 8192]).unwrap();
    let err = EmbeddedStore::open(garbage.path())
        .err()
        .expect("must refuse");
    assert!(
        err.to_string()
            .contains(&garbage.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn a_second_open_is_refused_while_the_first_is_live() {
    let dir = tempfile::tempdir().unwrap();
    let first = EmbeddedStore::open(dir.path()).unwrap();
    let err = EmbeddedStore::open(dir.path()).err().expect("must refuse");
    assert!(matches!(err, OpenError::InUse { .. }), "{err:?}");
    assert!(err.to_string().contains("in use"), "{err}");
    drop(first);
    EmbeddedStore::open(dir.path()).expect("opens once the first is closed");
}

#[tokio::test]
async fn closing_the_store_makes_relaxed_writes_durable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let bucket = store
            .bucket("b", Durability::Relaxed, Duration::from_secs(3600))
            .unwrap();
        bucket.set("k".into(), b"v".to_vec()).await.unwrap();
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let bucket = store
        .bucket("b", Durability::Relaxed, Duration::from_secs(3600))
        .unwrap();
    assert_eq!(bucket.get("k").await.unwrap(), Some(b"v".to_vec()));
}

/// A new store file is readable and writable by its owner only (whatever the umask).
#[cfg(unix)]
#[test]
fn a_new_store_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    drop(EmbeddedStore::open(dir.path()).unwrap());
    let mode = std::fs::metadata(dir.path().join("kvhost.redb"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
}
