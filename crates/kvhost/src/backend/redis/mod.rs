//! Redis and Redis Cluster buckets (cargo feature `redis`).
//!
//! A [`RedisBucket`] keeps one bucket in a Redis deployment shared by any number of kvhost
//! processes: every process configured with the same bucket name and server sees the same
//! data. The pieces:
//!
//! * `layout`: which Redis keys hold a bucket (documented for operators; `redis-cli GET
//!   'kvhost:{orders/0}:k:user:42'` reads a value);
//! * `scripts`: the Lua scripts that change a value together with its index entry and version;
//! * `conn`: lazily made, self-healing connections with a timeout and password-free errors;
//! * `listing`: the exact, duplicate-free merge of the shards' sorted key indexes;
//! * `replicas`: read routing that keeps read-your-writes while replicas lag;
//! * `changes` and `wait`: the change feed of a watched bucket (a stream per shard, written by
//!   the scripts) and waiting for it with blocking reads;
//! * `setup`: [`RedisBucket::from_config`], the one way from settings to a bucket, and its
//!   typed error.
//!
//! Consistency: writes and compare-and-swap go to the primary (or the owning cluster master)
//! and are atomic per shard. Reads go to the primary, or to a replica when the replica is known
//! to hold every write this process made to the keys read (see `replicas`). On a cluster,
//! reads go to masters. Batches are atomic on a standalone server (one shard, one script) and
//! atomic per shard on a cluster.

mod changes;
mod conn;
mod layout;
mod listing;
mod replicas;
mod scripts;
mod setup;
mod wait;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::try_join_all;
use redis::Value;
use tokio::sync::OnceCell;

use crate::changes::ChangeRead;
use crate::cursor::ordered_position;
use crate::{counter, Bucket, CasToken, Error, KeyPage, PageBudget, Result, Swap};
use conn::Endpoint;
use layout::{Layout, Shard};
use replicas::Replicas;
pub use setup::RedisSetupError;

/// The timeout used when a bucket does not configure `timeout_ms`.
pub const DEFAULT_TIMEOUT: Duration = crate::config::DEFAULT_REDIS_TIMEOUT;

/// Where a Redis bucket lives.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One primary (`redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`) and optional read replicas.
    Standalone {
        /// The primary's URL.
        url: String,
        /// Replica URLs reads may go to (read-your-writes is kept).
        replicas: Vec<String>,
    },
    /// A Redis Cluster reached through any of these node URLs.
    Cluster {
        /// Seed node URLs.
        nodes: Vec<String>,
    },
}

impl std::fmt::Debug for RedisTarget {
    /// Never prints URLs (they may hold passwords).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisTarget::Standalone { replicas, .. } => f
                .debug_struct("Standalone")
                .field("replicas", &replicas.len())
                .finish_non_exhaustive(),
            RedisTarget::Cluster { nodes } => f
                .debug_struct("Cluster")
                .field("nodes", &nodes.len())
                .finish(),
        }
    }
}

/// How a [`RedisBucket`] talks to Redis. A `Duration` converts into options with that timeout.
#[derive(Clone, Default)]
pub struct RedisOptions {
    /// The longest one operation may wait for Redis ([`DEFAULT_TIMEOUT`] when zero).
    pub timeout: Duration,
    /// For `rediss://`: the PEM certificate(s) of the CA to trust instead of the system's roots
    /// (which honour `SSL_CERT_FILE`).
    pub tls_root_ca: Option<Vec<u8>>,
}

impl From<Duration> for RedisOptions {
    fn from(timeout: Duration) -> Self {
        RedisOptions {
            timeout,
            tls_root_ca: None,
        }
    }
}

/// A bucket stored in Redis or Redis Cluster. See the module docs.
pub struct RedisBucket {
    name: String,
    primary: Arc<Endpoint>,
    replicas: Option<Arc<Replicas>>,
    cluster: bool,
    layout: OnceCell<Layout>,
    /// Changes kept for watchers (`watch_retention`), if this bucket keeps a change log.
    change_log: Option<u64>,
    /// Whether this process only reads the bucket: then it never writes to Redis, not even
    /// the layout record (see [`RedisBucket::reading_only`]).
    reading_only: bool,
    waiters: std::sync::OnceLock<wait::Waiters>,
}

impl std::fmt::Debug for RedisBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBucket")
            .field("name", &self.name)
            .field("primary", &self.primary.label())
            .finish_non_exhaustive()
    }
}

impl RedisBucket {
    /// A bucket named `name` at `target`; every command is bounded by the options' timeout. Nothing
    /// connects yet: the first operation does, and a Redis that is down gives
    /// `other("redis unavailable: ...")` until it is back. `setting` names the configuration
    /// entry in errors (e.g. `buckets.shared`); a bad URL is an error that never repeats the
    /// URL.
    pub fn new(
        name: &str,
        target: &RedisTarget,
        options: impl Into<RedisOptions>,
        setting: &str,
    ) -> std::result::Result<Self, RedisSetupError> {
        let options = options.into();
        let timeout = match options.timeout {
            Duration::ZERO => DEFAULT_TIMEOUT,
            timeout => timeout,
        };
        let ca = options.tls_root_ca.as_deref();
        let (primary, replicas, cluster) = match target {
            RedisTarget::Standalone { url, replicas } => {
                let primary = Endpoint::standalone(url, &format!("{setting}.url"), timeout, ca)?;
                let replicas = replicas
                    .iter()
                    .enumerate()
                    .map(|(i, url)| {
                        let what = format!("{setting}.replicas[{i}]");
                        Endpoint::standalone(url, &what, timeout, ca)
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                let replicas = (!replicas.is_empty()).then(|| Arc::new(Replicas::new(replicas)));
                (primary, replicas, false)
            }
            RedisTarget::Cluster { nodes } => (
                Endpoint::cluster(nodes, &format!("{setting}.nodes"), timeout, ca)?,
                None,
                true,
            ),
        };
        Ok(RedisBucket {
            name: name.to_string(),
            primary: Arc::new(primary),
            replicas,
            cluster,
            layout: OnceCell::new(),
            change_log: None,
            reading_only: false,
            waiters: std::sync::OnceLock::new(),
        })
    }

    /// This bucket used by a process that only reads it (`kv --read-only`): its first use
    /// reads the layout record without creating it (a bucket never written has none: it is
    /// read with the layout a first writer would create, and is empty), and no change log
    /// is turned on. Writes are refused above this type (see `backend::read_only`).
    #[must_use]
    pub fn reading_only(mut self) -> Self {
        self.reading_only = true;
        self.change_log = None;
        self
    }

    /// This bucket keeping a change log of the last `retention` changes, written by every
    /// kvhost process that writes the bucket (see [`crate::changes`]). The log is turned on in
    /// Redis when the bucket is first used, and stays on for every process.
    #[must_use]
    pub fn with_change_log(mut self, retention: u64) -> Self {
        self.change_log = Some(retention.max(1));
        self
    }

    /// The layout of a bucket with a change log; the "no change log" error otherwise.
    async fn watched_layout(&self) -> Result<&Layout> {
        match self.change_log {
            Some(_) => self.layout().await,
            None => Err(crate::changes::no_change_log()),
        }
    }

    /// The bucket's layout, read from (or first written to) its layout record.
    async fn layout(&self) -> Result<&Layout> {
        self.layout
            .get_or_try_init(|| async {
                let shards = if self.cluster {
                    layout::CLUSTER_SHARDS
                } else {
                    layout::STANDALONE_SHARDS
                };
                let key = Layout::layout_key(&self.name);
                let (format, stored): (u32, u32) = if self.reading_only {
                    let stored: (Option<u32>, Option<u32>) = self
                        .primary
                        .run(|mut conn| async move {
                            redis::cmd("HMGET")
                                .arg(key)
                                .arg("format")
                                .arg("shards")
                                .query_async(&mut conn)
                                .await
                        })
                        .await?;
                    (
                        stored.0.unwrap_or(layout::FORMAT),
                        stored.1.unwrap_or(shards),
                    )
                } else {
                    self.primary
                        .run(|mut conn| async move {
                            scripts::LAYOUT
                                .key(key)
                                .arg(layout::FORMAT)
                                .arg(shards)
                                .invoke_async(&mut conn)
                                .await
                        })
                        .await?
                };
                if format != layout::FORMAT {
                    return Err(Error::other(format!(
                        "bucket {:?} on {} has layout format {format}; this kvhost reads format {}",
                        self.name,
                        self.primary.label(),
                        layout::FORMAT
                    )));
                }
                let layout = Layout::new(&self.name, stored);
                if let Some(retention) = self.change_log {
                    changes::enable(&self.primary, &layout, retention).await?;
                }
                Ok(layout)
            })
            .await
    }

    /// Starts the replica sampler (once) and returns the replica set, if any.
    fn replicas(&self) -> Option<&Arc<Replicas>> {
        let replicas = self.replicas.as_ref()?;
        replicas.start_sampler(&self.primary);
        Some(replicas)
    }

    /// Runs a read on a replica allowed to serve `keys` (falling back to the primary if it
    /// fails), or on the primary.
    async fn read<'k, T, F, Fut>(&self, keys: impl IntoIterator<Item = &'k str>, op: F) -> Result<T>
    where
        F: Fn(conn::Conn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if let Some(replica) = self.replicas().and_then(|r| r.reader(keys)) {
            if let Ok(value) = replica.endpoint.run(&op).await {
                return Ok(value);
            }
        }
        self.primary.run(op).await
    }

    /// Records a completed write of `keys` for read routing.
    fn wrote<'k>(&self, keys: impl IntoIterator<Item = &'k str>) {
        if let Some(replicas) = self.replicas() {
            replicas.wrote(keys);
        }
    }

    /// Runs a write script on one shard: KEYS = index, versions, meta, changes, then `extra`.
    async fn write<T: redis::FromRedisValue + Send>(
        &self,
        script: &redis::Script,
        shard: &Shard,
        extra_keys: Vec<String>,
        args: Vec<Vec<u8>>,
    ) -> Result<T> {
        self.primary
            .run(|mut conn| async move {
                let mut invocation = script.prepare_invoke();
                invocation
                    .key(shard.index())
                    .key(shard.versions())
                    .key(shard.meta())
                    .key(shard.changes());
                for key in extra_keys {
                    invocation.key(key);
                }
                for arg in args {
                    invocation.arg(arg);
                }
                invocation.invoke_async(&mut conn).await
            })
            .await
    }

    /// Groups `keys` (with their positions in the caller's order) by shard.
    fn by_shard<'k>(
        layout: &Layout,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> BTreeMap<u32, Vec<(usize, &'k str)>> {
        let mut groups: BTreeMap<u32, Vec<(usize, &str)>> = BTreeMap::new();
        for (i, key) in keys.into_iter().enumerate() {
            groups
                .entry(layout.shard_of(key))
                .or_default()
                .push((i, key));
        }
        groups
    }
}

fn bad_reply(what: &str) -> Error {
    Error::other(format!("redis gave an unexpected reply to {what}"))
}

fn version_of(bytes: &[u8]) -> Result<u64> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| bad_reply("a version read"))
}

#[async_trait]
impl Bucket for RedisBucket {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let data = self.layout().await?.shard_for(key).data(key);
        self.read([key], |mut conn| {
            let data = data.clone();
            async move { redis::cmd("GET").arg(data).query_async(&mut conn).await }
        })
        .await
    }

    async fn set(&self, key: String, value: Vec<u8>) -> Result<()> {
        self.set_many(vec![(key, value)]).await
    }

    async fn delete(&self, key: String) -> Result<()> {
        self.delete_many(vec![key]).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let data = self.layout().await?.shard_for(key).data(key);
        self.read([key], |mut conn| {
            let data = data.clone();
            async move { redis::cmd("EXISTS").arg(data).query_async(&mut conn).await }
        })
        .await
    }

    async fn list_keys(&self, position: Option<Vec<u8>>, budget: PageBudget) -> Result<KeyPage> {
        let layout = self.layout().await?;
        let after = match position {
            Some(last) => format!("({}", ordered_position(last)?),
            None => "-".to_string(),
        };
        let per_shard = listing::per_shard(layout.shards(), budget);
        let from_replica = match self.replicas().and_then(|r| r.lister()) {
            Some(replica) => listing::fetch(&replica.endpoint, layout, &after, per_shard)
                .await
                .ok(),
            None => None,
        };
        let runs = match from_replica {
            Some(runs) => runs,
            None => listing::fetch(&self.primary, layout, &after, per_shard).await?,
        };
        Ok(listing::merge(runs, per_shard, budget))
    }

    async fn increment(&self, key: String, delta: i64) -> Result<i64> {
        let shard = self.layout().await?.shard_for(&key);
        let extra = vec![shard.data(&key), shard.op(&layout::op_id())];
        let args = vec![
            key.clone().into_bytes(),
            delta.to_string().into_bytes(),
            layout::OP_MEMORY_SECONDS.to_string().into_bytes(),
        ];
        let reply: Result<(String, Vec<u8>)> =
            self.write(&scripts::INCREMENT, &shard, extra, args).await;
        self.wrote([key.as_str()]);
        let (status, value) = reply?;
        match status.as_str() {
            "ok" => counter::parse(&key, &value),
            "overflow" => Err(counter::overflow(
                &key,
                counter::parse(&key, &value)?,
                delta,
            )),
            "notint" => Err(counter::not_integer(&key)),
            _ => Err(bad_reply("increment")),
        }
    }

    async fn cas_begin(&self, key: String) -> Result<CasToken> {
        let shard = self.layout().await?.shard_for(&key);
        let keys = [shard.versions(), shard.meta(), shard.data(&key)];
        let arg = key.clone();
        let (current, version): (Option<Vec<u8>>, Vec<u8>) = self
            .primary
            .run(|mut conn| async move {
                scripts::CAS_BEGIN
                    .key(&keys[..])
                    .arg(arg)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(CasToken::new(key, current, version_of(&version)?))
    }

    async fn cas_swap(&self, token: CasToken, value: Vec<u8>) -> Result<Swap> {
        let key = token.key().to_string();
        let shard = self.layout().await?.shard_for(&key);
        let extra = vec![shard.data(&key), shard.op(&layout::op_id())];
        let saw_value = if token.current().is_some() { "1" } else { "0" };
        let args = vec![
            key.clone().into_bytes(),
            value,
            saw_value.as_bytes().to_vec(),
            token.version().to_string().into_bytes(),
            layout::OP_MEMORY_SECONDS.to_string().into_bytes(),
        ];
        let reply: Result<Vec<Value>> = self.write(&scripts::CAS_SWAP, &shard, extra, args).await;
        self.wrote([key.as_str()]);
        let reply = reply?;
        let text = |value: &Value| -> Result<Option<Vec<u8>>> {
            redis::from_redis_value_ref(value).map_err(|_| bad_reply("compare-and-swap"))
        };
        match reply.as_slice() {
            [status] if text(status)?.as_deref() == Some(b"swapped") => Ok(Swap::Swapped),
            [status, current, version] if text(status)?.as_deref() == Some(b"stale") => {
                let version = text(version)?.ok_or_else(|| bad_reply("compare-and-swap"))?;
                Ok(Swap::Stale(CasToken::new(
                    key,
                    text(current)?,
                    version_of(&version)?,
                )))
            }
            _ => Err(bad_reply("compare-and-swap")),
        }
    }

    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        let layout = self.layout().await?;
        let groups = Self::by_shard(layout, keys.iter().map(String::as_str));
        let fetched = try_join_all(groups.iter().map(|(&index, group)| {
            let shard = layout.shard(index);
            let data: Vec<String> = group.iter().map(|(_, key)| shard.data(key)).collect();
            self.read(group.iter().map(|(_, key)| *key), move |mut conn| {
                let data = data.clone();
                async move {
                    redis::cmd("MGET")
                        .arg(data)
                        .query_async::<Vec<Option<Vec<u8>>>>(&mut conn)
                        .await
                }
            })
        }))
        .await?;
        let mut values: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        for (group, group_values) in groups.values().zip(fetched) {
            if group_values.len() != group.len() {
                return Err(bad_reply("MGET"));
            }
            for ((i, _), value) in group.iter().zip(group_values) {
                values[*i] = value;
            }
        }
        Ok(keys.into_iter().zip(values).collect())
    }

    async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<()> {
        let layout = self.layout().await?;
        let groups = Self::by_shard(layout, entries.iter().map(|(key, _)| key.as_str()));
        let result = try_join_all(groups.iter().map(|(&index, group)| {
            let shard = layout.shard(index);
            let data = group.iter().map(|(_, key)| shard.data(key)).collect();
            let args = group
                .iter()
                .flat_map(|(i, key)| [key.as_bytes().to_vec(), entries[*i].1.clone()])
                .collect();
            async move { self.write::<u64>(&scripts::SET, &shard, data, args).await }
        }))
        .await;
        self.wrote(entries.iter().map(|(key, _)| key.as_str()));
        result.map(drop)
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<()> {
        let layout = self.layout().await?;
        let groups = Self::by_shard(layout, keys.iter().map(String::as_str));
        let result = try_join_all(groups.iter().map(|(&index, group)| {
            let shard = layout.shard(index);
            let data = group.iter().map(|(_, key)| shard.data(key)).collect();
            let args = group
                .iter()
                .map(|(_, key)| key.as_bytes().to_vec())
                .collect();
            async move {
                self.write::<u64>(&scripts::DELETE, &shard, data, args)
                    .await
            }
        }))
        .await;
        self.wrote(keys.iter().map(String::as_str));
        result.map(drop)
    }

    async fn changes(
        &self,
        after: Option<Vec<u8>>,
        max: usize,
        wait: Duration,
    ) -> Result<ChangeRead> {
        let layout = self.watched_layout().await?;
        let waiters = self
            .waiters
            .get_or_init(|| wait::Waiters::new(Arc::clone(&self.primary), layout));
        changes::read_or_wait(&self.primary, layout, waiters, after, max, wait).await
    }

    async fn change_head(&self) -> Result<Vec<u8>> {
        changes::head(&self.primary, self.watched_layout().await?).await
    }

    async fn watch_position(&self, watcher: &str) -> Result<Option<Vec<u8>>> {
        changes::saved_position(&self.primary, self.watched_layout().await?, watcher).await
    }

    async fn save_watch_position(&self, watcher: String, position: Vec<u8>) -> Result<()> {
        let layout = self.watched_layout().await?;
        changes::save_position(&self.primary, layout, watcher, position).await
    }
}

#[cfg(test)]
mod tests;
