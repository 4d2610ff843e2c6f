//! # kvhost: the host side of `wasi:keyvalue`
//!
//! A WebAssembly component calls `open("cache")`, then `get`, `set`, `increment`, ... on the
//! bucket it got back. This crate is what answers those calls, independent of WebAssembly:
//!
//! * [`Bucket`] is the seam every storage engine implements (the memory map, the embedded
//!   redb store, Redis and Redis Cluster with the cargo feature `redis`). It speaks in owned keys and values and opaque cursor positions.
//! * [`BucketHandle`] is what callers hold: it checks [`Limits`] before any I/O and turns
//!   backend positions into the versioned, opaque cursor strings guests see.
//! * [`Registry`] maps bucket names to buckets, built from a [`Config`] (`kvhost.toml`), and
//!   answers `open(name)` with the three errors the interface knows ([`Error`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use kvhost::{Config, Grants, Registry};
//!
//! let config = Config::from_toml_str("[buckets.cache]\nbackend = \"memory\"\n", "example.toml")?;
//! let registry = Registry::from_config(&config)?;
//! let cache = registry.open("cache", &Grants::All)?;
//! cache.set("greeting".into(), b"hello".to_vec()).await?;
//! assert_eq!(cache.get("greeting").await?, Some(b"hello".to_vec()));
//! assert_eq!(cache.increment("visits".into(), 2).await?, 2);
//! # Ok(()) }
//! ```
//!
//! The consistency promise: a client always reads its own writes. The memory and embedded
//! backends, and Redis without replicas, are linearizable; a Redis bucket reading from replicas
//! keeps read-your-writes for every client of the process (see `backend::redis`). Durability
//! per embedded bucket is described in [`Durability`].
//!
//! # Modules
//! Imports run one way: from the registry down to the backends, never back.
//! - `registry`: [`Registry`] and [`Grants`], from a [`Config`] to open buckets
//!   ([`SetupError`] when that fails).
//! - [`config`]: `kvhost.toml`, parsed and validated ([`Config`], [`BucketConfig`]).
//! - `handle`: [`BucketHandle`], limits and cursors in front of a backend, and the calls it
//!   reports to an [`observe::Observer`].
//! - `limits`: [`Limits`], every size and count a caller may use, checked before any I/O.
//! - `cursor` (private): the versioned, opaque cursor strings guests see.
//! - `bucket`: the [`Bucket`] trait and its types ([`CasToken`], [`KeyPage`], [`Swap`]).
//! - [`changes`]: change feeds for watchers ([`changes::Change`], [`changes::ChangeRead`]).
//! - `counter`: `increment`'s decimal counter format, shared by every backend.
//! - `error`: [`Error`], the interface's three errors.
//! - [`observe`]: the [`observe::Observer`] seam for metrics and logs.
//! - [`backend`]: the engines (`memory`, `embedded`, `redis`) and `read_only`.
//! - `conformance` (feature `conformance`): the suite every backend passes.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod backend;
mod bucket;
pub mod changes;
pub mod config;
mod counter;
mod cursor;
mod error;
mod handle;
mod limits;
pub mod observe;
mod registry;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use bucket::{Bucket, CasToken, KeyPage, PageBudget, Swap};
pub use config::{
    BackendKind, BucketConfig, Config, ConfigError, Durability, RedisSettings, WatcherConfig,
};
pub use error::{Error, Result};
pub use handle::{BucketHandle, KeyResponse};
pub use limits::Limits;
pub use registry::{Grants, Registry, SetupError};
