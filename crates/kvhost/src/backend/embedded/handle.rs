//! The store's redb database, replaced by a freshly opened one after an I/O error.
//!
//! After a failed write or fsync redb refuses every later transaction, reads included
//! ("Previous I/O error occurred. Please close and re-open the database."). A full disk would
//! then stop a store from serving even what it holds. So the writer, on such an error, has
//! the database reopened here: the old one is dropped once its readers are gone, and the
//! file is opened again (redb repairs it from its last commit). Reads go on against the new
//! database; writes resume once a commit succeeds again (see `writer`).
//!
//! Invariant: at most one `Database` is open on the file at any moment: the old one is
//! dropped (and its last reader gone) before the new one is opened; meanwhile readers get an
//! error saying the store is being reopened.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use redb::Database;

use super::read_cache::ReadCache;
use crate::{Error, Result};

/// Opens the database again.
pub(crate) type Opener =
    Box<dyn FnMut() -> std::result::Result<Database, redb::DatabaseError> + Send>;

/// How long a reopen waits for the readers of the old database to finish.
const READERS_GRACE: Duration = Duration::from_secs(2);

/// The current database, and how to open it again.
pub(crate) struct DbHandle {
    current: RwLock<Option<Arc<Database>>>,
    opener: Mutex<Opener>,
}

impl DbHandle {
    /// `db`, reopened with `opener` when needed.
    pub(crate) fn new(db: Database, opener: Opener) -> Self {
        DbHandle {
            current: RwLock::new(Some(Arc::new(db))),
            opener: Mutex::new(opener),
        }
    }

    /// The current database, or an error naming `label` while it is being (or could not be)
    /// reopened.
    pub(crate) fn get(&self, label: &str) -> Result<Arc<Database>> {
        self.current.read().clone().ok_or_else(|| {
            Error::other(format!(
                "{label}: the store is being reopened after an I/O error; retry in a moment"
            ))
        })
    }

    /// Drops the current database (after `read_cache` lets go of its snapshots and readers
    /// finish) and opens the file again.
    pub(crate) fn reopen(&self, read_cache: &ReadCache) -> std::result::Result<(), String> {
        let old = self.current.write().take();
        read_cache.invalidate();
        if let Some(old) = old {
            let deadline = Instant::now() + READERS_GRACE;
            while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(old);
        }
        // A read transaction outliving its `Arc<Database>` still holds the file's lock; the
        // open is retried until it is gone.
        let deadline = Instant::now() + READERS_GRACE;
        let mut opener = self.opener.lock();
        loop {
            match opener() {
                Ok(db) => {
                    *self.current.write() = Some(Arc::new(db));
                    return Ok(());
                }
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(err) => return Err(err.to_string()),
            }
        }
    }
}
