//! Opening an embedded store: the file (created 0600), redb on a storage backend, the
//! format check, the writer thread; and the opener kept for reopening after an I/O error.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;

use parking_lot::Mutex;
use redb::{Database, ReadableTable, StorageBackend, TableHandle};

use super::damage::contain_as;
use super::handle::{DbHandle, Opener};
use super::layout::{self, FORMAT_VERSION, META, META_FORMAT, META_SEQ};
use super::read_cache::ReadCache;
use super::writer::Writer;
use super::{EmbeddedStore, Inner, OpenError};

impl EmbeddedStore {
    /// A snapshot of the store in `dir`, read into memory: nothing is written to `dir` and no
    /// lock is taken, so this works on a data dir that cannot be written. Writes through it
    /// change only the copy in memory (use it behind [`crate::backend::read_only::ReadOnly`]).
    /// A file another process is writing at the same moment may read as damaged.
    pub fn open_snapshot(dir: &Path) -> Result<Self, OpenError> {
        let path = dir.join(layout::FILE_NAME);
        let bytes = std::fs::read(&path).map_err(|error| OpenError::Io {
            dir: dir.to_path_buf(),
            error,
        })?;
        let backend = redb::backends::InMemoryBackend::new();
        let copied = backend
            .set_len(bytes.len() as u64)
            .and_then(|()| backend.write(0, &bytes));
        copied.map_err(|error| OpenError::Io {
            dir: dir.to_path_buf(),
            error,
        })?;
        Self::open_with_backend(dir, backend)
    }

    /// Opens or creates the store in `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        let io = |error| OpenError::Io {
            dir: dir.to_path_buf(),
            error,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join(layout::FILE_NAME);
        let file_backend = move || {
            let mut options = std::fs::OpenOptions::new();
            options.read(true).write(true).create(true).truncate(false);
            // The store holds the users' data: a new file is readable by its owner only.
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options.open(&path)?;
            redb::backends::FileBackend::new(file).map_err(std::io::Error::other)
        };
        Self::open_with_backends(dir, file_backend)
    }

    /// Opens the store on a custom redb storage backend; `dir` only names it in messages.
    /// Such a store cannot be reopened after an I/O error: it refuses writes and reads from
    /// then on (see [`EmbeddedStore::open_with_backends`]).
    pub fn open_with_backend(
        dir: &Path,
        backend: impl StorageBackend + 'static,
    ) -> Result<Self, OpenError> {
        let mut backend = Some(backend);
        Self::open_with_backends(dir, move || {
            backend.take().ok_or_else(|| {
                std::io::Error::other("a store opened on one storage backend cannot be reopened")
            })
        })
    }

    /// Opens the store on the redb storage backends `make` returns: one now, and a new one
    /// each time the store is reopened after an I/O error (see `handle`). `dir` only names
    /// the store in messages. This is the seam fault-injection tests use.
    pub fn open_with_backends<B: StorageBackend>(
        dir: &Path,
        mut make: impl FnMut() -> std::io::Result<B> + Send + 'static,
    ) -> Result<Self, OpenError> {
        let backend = make().map_err(|error| OpenError::Io {
            dir: dir.to_path_buf(),
            error,
        })?;
        let opened = || {
            let db = Database::builder()
                .create_with_backend(backend)
                .map_err(|err| match err {
                    redb::DatabaseError::DatabaseAlreadyOpen => OpenError::InUse {
                        dir: dir.to_path_buf(),
                    },
                    other => storage(dir, other),
                })?;
            let seq = check_format(&db, dir)?;
            Ok((db, seq))
        };
        let (db, seq) = contain_as(opened, |damaged| {
            storage(
                dir,
                format!(
                    "{damaged} where it is opened, so nothing can be read from it: move {} \
                     aside (keep it) and start from a backup or an export; see \
                     docs/durability.md (\"Damaged store files\")",
                    layout::FILE_NAME
                ),
            )
        })?;
        let opener: Opener = Box::new(move || {
            let backend = make().map_err(redb::StorageError::from)?;
            Database::builder().create_with_backend(backend)
        });
        let db = Arc::new(DbHandle::new(db, opener));
        let label = format!("embedded store {}", dir.display());
        let poison = Arc::new(Mutex::new(None));
        let (jobs, receiver) = mpsc::channel();
        let read_cache = Arc::new(ReadCache::default());
        let committed = Arc::new(tokio::sync::watch::Sender::new(seq));
        let writer = Writer {
            db: Arc::clone(&db),
            retry: Vec::new(),
            next_attempt: None,
            jobs: receiver,
            seq,
            poison: Arc::clone(&poison),
            last_delete: HashMap::new(),
            opened_at: seq,
            label: label.clone(),
            read_cache: Arc::clone(&read_cache),
            committed: Arc::clone(&committed),
        };
        let writer = std::thread::Builder::new()
            .name("kvhost-writer".into())
            .spawn(move || writer.run())
            .map_err(|error| OpenError::Io {
                dir: dir.to_path_buf(),
                error,
            })?;
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                db,
                dir: dir.to_path_buf(),
                label,
                jobs: Some(jobs),
                writer: Some(writer),
                poison,
                read_cache,
                committed,
            }),
        })
    }
}

pub(super) fn storage(dir: &Path, err: impl std::fmt::Display) -> OpenError {
    OpenError::Storage {
        dir: dir.to_path_buf(),
        message: err.to_string(),
    }
}

/// Checks (or, for a new file, writes) the format version; returns the write sequence.
fn check_format(db: &Database, dir: &Path) -> Result<u64, OpenError> {
    let fail = |err: redb::Error| storage(dir, err);
    let txn = db.begin_write().map_err(|e| fail(e.into()))?;
    let seq = {
        let has_tables = txn
            .list_tables()
            .map_err(|e| fail(e.into()))?
            .any(|table| table.name() != META.name());
        let mut meta = txn.open_table(META).map_err(|e| fail(e.into()))?;
        let format = meta
            .get(META_FORMAT)
            .map_err(|e| fail(e.into()))?
            .map(|guard| guard.value());
        match format {
            Some(FORMAT_VERSION) => {}
            Some(found) => {
                return Err(OpenError::Format {
                    dir: dir.to_path_buf(),
                    found,
                })
            }
            None if has_tables => {
                return Err(OpenError::Foreign {
                    dir: dir.to_path_buf(),
                })
            }
            None => {
                meta.insert(META_FORMAT, FORMAT_VERSION)
                    .map_err(|e| fail(e.into()))?;
            }
        }
        let seq = meta.get(META_SEQ).map_err(|e| fail(e.into()))?;
        seq.map_or(0, |guard| guard.value())
    };
    txn.commit().map_err(|e| fail(e.into()))?;
    Ok(seq)
}
