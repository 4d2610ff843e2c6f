//! The anchors: SQLite used the way Spin's key-value store uses it, and raw redb.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use rusqlite::{params, Connection};

use crate::{key, rate};

const STORE: &str = "default";

/// SQLite with Spin's schema and statements; one connection behind a mutex, as in Spin.
pub struct SqliteAnchor {
    connection: Arc<Mutex<Connection>>,
}

impl SqliteAnchor {
    pub fn open(path: &Path) -> Self {
        let connection = Connection::open(path).expect("open sqlite");
        connection
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS spin_key_value (
                   store TEXT NOT NULL,
                   key   TEXT NOT NULL,
                   value BLOB NOT NULL,
                   PRIMARY KEY (store, key)
                 );",
            )
            .expect("schema");
        SqliteAnchor {
            connection: Arc::new(Mutex::new(connection)),
        }
    }

    fn set(connection: &Connection, key: &str, value: &[u8]) {
        connection
            .prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT(store, key) DO UPDATE SET value=$3",
            )
            .expect("prepare")
            .execute(params![STORE, key, value])
            .expect("insert");
    }

    pub fn preload(&self, n: usize, value: &[u8]) {
        let mut connection = self.connection.lock().expect("lock");
        let txn = connection.transaction().expect("txn");
        for i in 0..n {
            Self::set(&txn, &key(i), value);
        }
        txn.commit().expect("commit");
    }

    pub fn gets(&self, keys: &[String]) -> f64 {
        let connection = self.connection.lock().expect("lock");
        let start = Instant::now();
        for k in keys {
            let value: Vec<u8> = connection
                .prepare_cached("SELECT value FROM spin_key_value WHERE store=$1 AND key=$2")
                .expect("prepare")
                .query_row(params![STORE, k], |row| row.get(0))
                .expect("get");
            assert!(!value.is_empty());
        }
        rate(keys.len(), start.elapsed())
    }

    pub fn sets(&self, n: usize, value: &[u8]) -> f64 {
        let connection = self.connection.lock().expect("lock");
        let start = Instant::now();
        for i in 0..n {
            Self::set(&connection, &key(i), value);
        }
        rate(n, start.elapsed())
    }

    pub fn list(&self, expected: usize) -> f64 {
        let connection = self.connection.lock().expect("lock");
        let start = Instant::now();
        let mut statement = connection
            .prepare_cached("SELECT key FROM spin_key_value WHERE store=$1")
            .expect("prepare");
        let keys: Vec<String> = statement
            .query_map([STORE], |row| row.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(keys.len(), expected);
        rate(keys.len(), start.elapsed())
    }

    pub fn concurrent_sets(&self, writers: usize, window: Duration, value: &[u8]) -> f64 {
        let connection = Arc::clone(&self.connection);
        concurrent_sets(writers, window, value, move |key, value| {
            Self::set(&connection.lock().expect("lock"), key, value);
        })
    }
}

const TABLE: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("bench");

/// redb with one transaction per operation.
pub struct RedbAnchor {
    db: Arc<Database>,
}

impl RedbAnchor {
    pub fn open(path: &Path) -> Self {
        let db = Database::create(path).expect("open redb");
        RedbAnchor { db: Arc::new(db) }
    }

    fn set(db: &Database, key: &str, value: &[u8]) {
        let txn = db.begin_write().expect("txn");
        txn.open_table(TABLE)
            .expect("table")
            .insert(key, value)
            .expect("insert");
        txn.commit().expect("commit");
    }

    pub fn preload(&self, n: usize, value: &[u8]) {
        let txn = self.db.begin_write().expect("txn");
        {
            let mut table = txn.open_table(TABLE).expect("table");
            for i in 0..n {
                table.insert(key(i).as_str(), value).expect("insert");
            }
        }
        txn.commit().expect("commit");
    }

    pub fn gets(&self, keys: &[String]) -> f64 {
        let start = Instant::now();
        for k in keys {
            let txn = self.db.begin_read().expect("txn");
            let table = txn.open_table(TABLE).expect("table");
            let value = table
                .get(k.as_str())
                .expect("get")
                .expect("present")
                .value()
                .to_vec();
            assert!(!value.is_empty());
        }
        rate(keys.len(), start.elapsed())
    }

    pub fn sets(&self, n: usize, value: &[u8]) -> f64 {
        let start = Instant::now();
        for i in 0..n {
            Self::set(&self.db, &key(i), value);
        }
        rate(n, start.elapsed())
    }

    pub fn list(&self, expected: usize) -> f64 {
        let start = Instant::now();
        let txn = self.db.begin_read().expect("txn");
        let table = txn.open_table(TABLE).expect("table");
        let keys: Vec<String> = table
            .iter()
            .expect("iter")
            .map(|entry| entry.expect("entry").0.value().to_string())
            .collect();
        assert_eq!(keys.len(), expected);
        rate(keys.len(), start.elapsed())
    }

    /// Writes `batch` keys per fsynced transaction for `window`: the most any group commit of
    /// `batch` writers on redb can reach.
    pub fn batched_sets(&self, batch: usize, window: Duration, value: &[u8]) -> f64 {
        let start = Instant::now();
        let mut done = 0;
        while start.elapsed() < window {
            let txn = self.db.begin_write().expect("txn");
            {
                let mut table = txn.open_table(TABLE).expect("table");
                for _ in 0..batch {
                    // The concurrent writers' key pattern: one key sequence per writer.
                    let key = format!("w{}-{}", done % batch, done / batch);
                    table.insert(key.as_str(), value).expect("insert");
                    done += 1;
                }
            }
            txn.commit().expect("commit");
        }
        rate(done, start.elapsed())
    }

    pub fn concurrent_sets(&self, writers: usize, window: Duration, value: &[u8]) -> f64 {
        let db = Arc::clone(&self.db);
        concurrent_sets(writers, window, value, move |key, value| {
            Self::set(&db, key, value);
        })
    }
}

/// Runs `writers` threads calling `set` with distinct keys for `window`; returns the total rate.
fn concurrent_sets(
    writers: usize,
    window: Duration,
    value: &[u8],
    set: impl Fn(&str, &[u8]) + Send + Sync + 'static,
) -> f64 {
    let set = Arc::new(set);
    let start = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let set = Arc::clone(&set);
            let value = value.to_vec();
            std::thread::spawn(move || {
                let mut done = 0;
                while start.elapsed() < window {
                    set(&format!("w{w}-{done}"), &value);
                    done += 1;
                }
                done
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().expect("writer")).sum();
    rate(total, start.elapsed())
}
