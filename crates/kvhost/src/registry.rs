//! [`Registry`]: bucket name -> bucket, and the answer to `open(name)`.
//!
//! The registry is built once (from a [`Config`] or by hand) and shared by every client. It
//! owns the backends: embedded buckets of one data directory share one store, memory buckets
//! each own a map. `open` applies [`Grants`]: an unknown name is `NoSuchStore`, a configured
//! name the caller was not granted is `AccessDenied`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::backend::memory::MemoryBucket;
use crate::config::{BackendKind, Config, ConfigError};
use crate::observe::{Observer, Op};
use crate::{Bucket, BucketHandle, Error, Limits, Result};

/// Which buckets a caller may open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Grants {
    /// Every configured bucket.
    #[default]
    All,
    /// Only these names.
    Only(BTreeSet<String>),
}

impl Grants {
    /// The grants a config's `allow` list gives a component.
    pub fn from_config(config: &Config) -> Self {
        match &config.allow {
            None => Grants::All,
            Some(names) => Grants::Only(names.iter().cloned().collect()),
        }
    }

    /// Whether `name` is granted.
    pub fn allows(&self, name: &str) -> bool {
        match self {
            Grants::All => true,
            Grants::Only(names) => names.contains(name),
        }
    }
}

/// Why a registry could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The embedded store could not be opened.
    #[cfg(feature = "embedded")]
    #[error(transparent)]
    Embedded(#[from] crate::backend::embedded::OpenError),
    /// A Redis bucket's settings cannot be used (the error never holds a URL).
    #[cfg(feature = "redis")]
    #[error("bucket {bucket:?}: {source}")]
    Redis {
        /// The bucket.
        bucket: String,
        /// What is wrong.
        source: crate::backend::redis::RedisSetupError,
    },
    /// The configuration asks for a backend this build does not include.
    #[error("bucket {bucket:?} uses backend {backend:?}, which this build of kvhost does not include (enable the cargo feature {backend:?})")]
    NotBuilt {
        /// The bucket.
        bucket: String,
        /// The backend's name.
        backend: &'static str,
    },
}

/// The buckets a host provides, by name.
pub struct Registry {
    buckets: BTreeMap<String, Arc<dyn Bucket>>,
    limits: Arc<Limits>,
    observer: Option<Arc<dyn Observer>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("buckets", &self.buckets.keys().collect::<Vec<_>>())
            .field("limits", &self.limits)
            .finish()
    }
}

impl Registry {
    /// An empty registry enforcing `limits`; add buckets with [`Registry::insert`].
    pub fn new(limits: Limits) -> Self {
        Registry {
            buckets: BTreeMap::new(),
            limits: Arc::new(limits),
            observer: None,
        }
    }

    /// Builds every configured bucket, opening the embedded store if any bucket uses it.
    pub fn from_config(config: &Config) -> Result<Self, SetupError> {
        Self::build(config, false)
    }

    /// As [`Registry::from_config`], for reading only: every write is refused, and the
    /// embedded store is a snapshot read into memory
    /// ([`EmbeddedStore::open_snapshot`](crate::backend::embedded::EmbeddedStore::open_snapshot)),
    /// so a data dir that cannot be written (read-only mount, another owner) can be read.
    pub fn from_config_read_only(config: &Config) -> Result<Self, SetupError> {
        Self::build(config, true)
    }

    fn build(config: &Config, read_only: bool) -> Result<Self, SetupError> {
        let mut registry = Registry::new(config.limits.clone());
        #[cfg(feature = "embedded")]
        let mut store: Option<crate::backend::embedded::EmbeddedStore> = None;
        for (name, bucket) in &config.buckets {
            let backend: Arc<dyn Bucket> = match bucket.backend {
                BackendKind::Memory => match bucket.watch_retention {
                    Some(retention) => Arc::new(MemoryBucket::with_change_log(
                        usize::try_from(retention).unwrap_or(usize::MAX),
                    )),
                    None => Arc::new(MemoryBucket::new()),
                },
                #[cfg(feature = "embedded")]
                BackendKind::Embedded => {
                    use crate::backend::embedded::EmbeddedStore;
                    let store = match &mut store {
                        Some(store) => store,
                        None if read_only => {
                            store.insert(EmbeddedStore::open_snapshot(&config.data_dir)?)
                        }
                        None => store.insert(EmbeddedStore::open(&config.data_dir)?),
                    };
                    let (durability, flush) = (bucket.durability, bucket.flush_interval);
                    match bucket.watch_retention {
                        Some(retention) if !read_only => Arc::new(
                            store.bucket_with_change_log(name, durability, flush, retention)?,
                        ),
                        _ => Arc::new(store.bucket(name, durability, flush)?),
                    }
                }
                #[cfg(not(feature = "embedded"))]
                BackendKind::Embedded => {
                    return Err(SetupError::NotBuilt {
                        bucket: name.clone(),
                        backend: "embedded",
                    })
                }
                #[cfg(feature = "redis")]
                BackendKind::Redis | BackendKind::RedisCluster => {
                    let redis = crate::backend::redis::RedisBucket::from_config(name, bucket)
                        .map_err(|source| SetupError::Redis {
                            bucket: name.clone(),
                            source,
                        })?;
                    // Reading only: nothing is written to Redis, not even the layout record
                    // or the switch of the change log.
                    Arc::new(if read_only {
                        redis.reading_only()
                    } else {
                        redis
                    })
                }
                #[cfg(not(feature = "redis"))]
                BackendKind::Redis | BackendKind::RedisCluster => {
                    return Err(SetupError::NotBuilt {
                        bucket: name.clone(),
                        backend: "redis",
                    })
                }
            };
            let backend = if read_only {
                Arc::new(crate::backend::read_only::ReadOnly::new(backend))
            } else {
                backend
            };
            registry.insert(name.clone(), backend);
        }
        Ok(registry)
    }

    /// Adds (or replaces) a bucket under `name`.
    pub fn insert(&mut self, name: impl Into<String>, bucket: Arc<dyn Bucket>) {
        self.buckets.insert(name.into(), bucket);
    }

    /// Reports every bucket operation through handles opened from now on, and every failed
    /// `open`, to `observer` (see [`crate::observe`]).
    pub fn set_observer(&mut self, observer: Arc<dyn Observer>) {
        self.observer = Some(observer);
    }

    /// Opens bucket `name` for a caller holding `grants`.
    pub fn open(&self, name: &str, grants: &Grants) -> Result<BucketHandle> {
        let opened = match self.buckets.get(name) {
            None => Err(Error::NoSuchStore),
            Some(_) if !grants.allows(name) => Err(Error::AccessDenied),
            Some(bucket) => {
                Ok(
                    BucketHandle::new(name, Arc::clone(bucket), Arc::clone(&self.limits))
                        .with_observer(self.observer.clone()),
                )
            }
        };
        if let Some(observer) = &self.observer {
            observer.observe(name, Op::Open, opened.as_ref().err());
        }
        opened
    }

    /// The configured bucket names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.buckets.keys().map(String::as_str)
    }

    /// The limits every handle enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Makes every acknowledged write of every bucket durable.
    pub async fn flush(&self) -> Result<()> {
        for bucket in self.buckets.values() {
            bucket.flush().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_distinguishes_unknown_from_denied() {
        let mut registry = Registry::new(Limits::default());
        registry.insert("granted", Arc::new(MemoryBucket::new()));
        registry.insert("secret", Arc::new(MemoryBucket::new()));
        let grants = Grants::Only(BTreeSet::from(["granted".to_string()]));
        assert!(registry.open("granted", &grants).is_ok());
        assert_eq!(
            registry.open("secret", &grants).unwrap_err(),
            Error::AccessDenied
        );
        assert_eq!(
            registry.open("missing", &grants).unwrap_err(),
            Error::NoSuchStore
        );
        assert!(registry.open("secret", &Grants::All).is_ok());
    }

    #[tokio::test]
    async fn an_observer_sees_every_operation_once_with_its_outcome() {
        use crate::observe::{Observer, Outcome};
        #[derive(Default)]
        struct Seen(parking_lot::Mutex<Vec<(String, Op, Outcome)>>);
        impl Observer for Seen {
            fn observe(&self, bucket: &str, op: Op, error: Option<&Error>) {
                let outcome = Outcome::of(&error.cloned().map_or(Ok(()), Err));
                self.0.lock().push((bucket.to_string(), op, outcome));
            }
        }
        let seen = Arc::new(Seen::default());
        let mut registry = Registry::new(Limits::default());
        registry.insert("a", Arc::new(MemoryBucket::new()));
        registry.insert("secret", Arc::new(MemoryBucket::new()));
        registry.set_observer(seen.clone());
        let grants = Grants::Only(BTreeSet::from(["a".to_string()]));
        let a = registry.open("a", &grants).unwrap();
        a.set("k".into(), b"x".to_vec()).await.unwrap();
        a.get("k").await.unwrap();
        a.increment("k".into(), 1).await.unwrap_err();
        assert!(registry.open("secret", &grants).is_err());
        assert!(registry.open("nope", &grants).is_err());
        let seen = seen.0.lock().clone();
        let s = |b: &str, op, outcome| (b.to_string(), op, outcome);
        assert_eq!(
            seen,
            vec![
                s("a", Op::Open, Outcome::Ok),
                s("a", Op::Set, Outcome::Ok),
                s("a", Op::Get, Outcome::Ok),
                s("a", Op::Increment, Outcome::Other),
                s("secret", Op::Open, Outcome::AccessDenied),
                s("nope", Op::Open, Outcome::NoSuchStore),
            ]
        );
    }
}
