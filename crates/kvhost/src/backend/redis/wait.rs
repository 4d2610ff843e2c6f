//! Waiting for a Redis bucket's next change with blocking reads (`XREAD BLOCK`).
//!
//! A bucket of one shard (a standalone server) is read with one blocking read straight from
//! the reader's version ([`Waiters::next_in_only_shard`]): it answers at once when changes
//! are there and otherwise when the first one comes, and because stream ids are consecutive
//! versions, a first entry that is the next version proves nothing was cut.
//!
//! A bucket of many shards (a cluster) cannot be read that way (`XREAD` takes keys of one
//! slot). A reader that found nothing new arms [`Waiters`] with its position and waits for the
//! bucket's signal. Each shard then has one task blocked in `XREAD` on its own connection
//! (a blocked connection holds back everything queued behind it; a cluster shard lives in its
//! own slot and `XREAD` takes keys of one slot) from the reader's version in that shard. The
//! first change in any shard signals, and the reader reads again through the shared
//! connection, which alone says what the changes are: a wake is only a hint, so a lost or
//! spurious one costs time, never a change.
//!
//! Invariant (no missed wake): while a reader is armed, every shard has a running task whose
//! next or current `XREAD` starts at or before the reader's version in that shard. A task
//! stops only when no reader is armed, and re-checks after marking itself stopped, so an
//! arming reader either sees it running or starts a new one.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::Value;
use tokio::sync::watch;

use super::conn::{Conn, Endpoint};
use super::layout::Layout;
use crate::changes::Change;
use crate::Result;

/// The longest one `XREAD` blocks (shorter when the bucket's timeout is short).
const LONGEST_BLOCK: Duration = Duration::from_secs(1);
/// The pause after a failed blocking read, before the next.
const AFTER_FAILURE: Duration = Duration::from_millis(100);

/// The blocking readers of one bucket, one per shard, and the signal they send.
pub(crate) struct Waiters {
    shared: Arc<Shared>,
    shards: Vec<Arc<ShardWaiter>>,
    /// Dedicated connections free for [`Waiters::next_in_only_shard`] (one per concurrent
    /// reader).
    idle: Mutex<Vec<Conn>>,
}

struct Shared {
    endpoint: Arc<Endpoint>,
    signal: watch::Sender<u64>,
    /// How many readers are armed.
    armed: AtomicUsize,
}

struct ShardWaiter {
    stream: String,
    /// The version the next `XREAD` reads after.
    after: Mutex<u64>,
    running: AtomicBool,
    conn: tokio::sync::Mutex<Option<Conn>>,
}

/// Keeps a reader armed; dropping it disarms.
pub(crate) struct Armed<'w> {
    waiters: &'w Waiters,
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.waiters.shared.armed.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Waiters {
    /// The waiters of the bucket laid out as `layout` on `endpoint` (nothing runs yet).
    pub(crate) fn new(endpoint: Arc<Endpoint>, layout: &Layout) -> Self {
        Waiters {
            shared: Arc::new(Shared {
                endpoint,
                signal: watch::Sender::new(0),
                armed: AtomicUsize::new(0),
            }),
            shards: (0..layout.shards())
                .map(|shard| {
                    Arc::new(ShardWaiter {
                        stream: layout.shard(shard).changes(),
                        after: Mutex::new(0),
                        running: AtomicBool::new(false),
                        conn: tokio::sync::Mutex::new(None),
                    })
                })
                .collect(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The longest one blocking read may block, within the bucket's timeout.
    fn block(&self) -> Duration {
        block_for(&self.shared.endpoint)
    }

    /// For a bucket of one shard: up to `max` changes after version `after`, as (version,
    /// change) in order, waiting up to `wait` (at most one block) for the first. `None`: none
    /// came, or the first one is not the next version (changes were cut, or made before the
    /// log was on): the caller reads with the script, which tells which.
    pub(crate) async fn next_in_only_shard(
        &self,
        after: u64,
        max: usize,
        wait: Duration,
    ) -> Result<Option<Vec<(u64, Change)>>> {
        let endpoint = &self.shared.endpoint;
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => endpoint.dedicated().await?,
        };
        let block = wait.min(self.block());
        let reply = xread(&mut conn, &self.shards[0].stream, after, max, block);
        // Dropped mid-read (the caller gave up), the connection stays blocked on the server:
        // then it is not put back, and closes.
        let reply = match tokio::time::timeout(block + endpoint.timeout(), reply).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(err)) => return Err(endpoint.error(&err)),
            Err(_) => return Err(endpoint.timed_out()),
        };
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
        let entries = entries(&reply).ok_or_else(|| super::bad_reply("XREAD"))?;
        Ok(match entries.first() {
            Some((version, _)) if *version == after + 1 => Some(entries),
            _ => None,
        })
    }

    /// A receiver of the signal; subscribe before the read that decides to wait, so a change
    /// between that read and the wait is not missed.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.signal.subscribe()
    }

    /// Arms a reader standing at `versions` (one per shard) until the guard drops.
    pub(crate) fn arm(&self, versions: &[u64]) -> Armed<'_> {
        self.shared.armed.fetch_add(1, Ordering::SeqCst);
        for (shard, &version) in self.shards.iter().zip(versions) {
            *shard.after.lock().unwrap_or_else(PoisonError::into_inner) = version;
            if !shard.running.swap(true, Ordering::SeqCst) {
                let (shared, shard) = (Arc::clone(&self.shared), Arc::clone(shard));
                tokio::spawn(shard.run(shared));
            }
        }
        Armed { waiters: self }
    }
}

impl ShardWaiter {
    async fn run(self: Arc<Self>, shared: Arc<Shared>) {
        loop {
            if shared.armed.load(Ordering::SeqCst) == 0 {
                self.running.store(false, Ordering::SeqCst);
                // A reader armed after the check above saw `running` true and started none.
                if shared.armed.load(Ordering::SeqCst) == 0
                    || self.running.swap(true, Ordering::SeqCst)
                {
                    return;
                }
            }
            let after = *self.after.lock().unwrap_or_else(PoisonError::into_inner);
            match self.block_once(&shared.endpoint, after).await {
                Ok(None) => {}
                Ok(Some(version)) => {
                    let mut stored = self.after.lock().unwrap_or_else(PoisonError::into_inner);
                    *stored = (*stored).max(version);
                    drop(stored);
                    shared.signal.send_modify(|n| *n = n.wrapping_add(1));
                }
                Err(()) => {
                    *self.conn.lock().await = None;
                    tokio::time::sleep(AFTER_FAILURE).await;
                    // The reader reads again and meets the failure itself, if it lasts.
                    shared.signal.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
        }
    }

    /// One `XREAD BLOCK` after version `after`: the version of the change it found, or
    /// `None` when the block ended with none.
    async fn block_once(&self, endpoint: &Endpoint, after: u64) -> Result<Option<u64>, ()> {
        let mut slot = self.conn.lock().await;
        let conn = match &mut *slot {
            Some(conn) => conn,
            None => slot.insert(endpoint.dedicated().await.map_err(drop)?),
        };
        let block = block_for(endpoint);
        let reply = xread(conn, &self.stream, after, 1, block);
        match tokio::time::timeout(block + endpoint.timeout(), reply).await {
            Ok(Ok(Value::Nil)) => Ok(None),
            Ok(Ok(value)) => entries(&value)
                .and_then(|entries| entries.first().map(|(version, _)| *version))
                .map(Some)
                .ok_or(()),
            _ => Err(()),
        }
    }
}

/// The longest one blocking read on `endpoint` may block: half its timeout, at most
/// [`LONGEST_BLOCK`].
fn block_for(endpoint: &Endpoint) -> Duration {
    (endpoint.timeout() / 2).clamp(Duration::from_millis(10), LONGEST_BLOCK)
}

/// `XREAD COUNT max BLOCK block STREAMS stream <after>-0` on `conn`.
async fn xread(
    conn: &mut Conn,
    stream: &str,
    after: u64,
    max: usize,
    block: Duration,
) -> redis::RedisResult<Value> {
    redis::cmd("XREAD")
        .arg("COUNT")
        .arg(max.max(1))
        .arg("BLOCK")
        .arg(u64::try_from(block.as_millis()).unwrap_or(1000).max(1))
        .arg("STREAMS")
        .arg(stream)
        .arg(format!("{after}-0"))
        .query_async(conn)
        .await
}

/// The entries of an `XREAD` reply on one stream, as (version, change): the reply is nil (no
/// entry) or `[[stream, [[id, [field, value, ...]], ...]]]`, ids `<version>-0`, fields `k`
/// (key) and `v` (value; none for a delete). `None`: another shape.
fn entries(reply: &Value) -> Option<Vec<(u64, Change)>> {
    let streams = match reply {
        Value::Nil => return Some(Vec::new()),
        Value::Array(streams) => streams,
        _ => return None,
    };
    let Some(Value::Array(stream)) = streams.first() else {
        return Some(Vec::new());
    };
    let Some(Value::Array(items)) = stream.get(1) else {
        return None;
    };
    items
        .iter()
        .map(|item| {
            let Value::Array(item) = item else {
                return None;
            };
            let id: String = redis::from_redis_value_ref(item.first()?).ok()?;
            let version = id.split_once('-')?.0.parse().ok()?;
            let Some(Value::Array(fields)) = item.get(1) else {
                return None;
            };
            let (mut key, mut value) = (None, None);
            for pair in fields.chunks_exact(2) {
                let name: Vec<u8> = redis::from_redis_value_ref(&pair[0]).ok()?;
                let field: Vec<u8> = redis::from_redis_value_ref(&pair[1]).ok()?;
                match name.as_slice() {
                    b"k" => key = Some(String::from_utf8(field).ok()?),
                    b"v" => value = Some(field),
                    _ => {}
                }
            }
            Some((version, Change { key: key?, value }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xread_replies_become_changes() {
        let bulk = |text: &str| Value::BulkString(text.as_bytes().to_vec());
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("kvhost:{b/0}:c"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("42-0"),
                    Value::Array(vec![bulk("k"), bulk("key"), bulk("v"), bulk("value")]),
                ]),
                Value::Array(vec![
                    bulk("43-0"),
                    Value::Array(vec![bulk("k"), bulk("key")]),
                ]),
            ]),
        ])]);
        let change = |value: Option<&[u8]>| Change {
            key: "key".into(),
            value: value.map(<[u8]>::to_vec),
        };
        assert_eq!(
            entries(&reply),
            Some(vec![(42, change(Some(b"value"))), (43, change(None))])
        );
        assert_eq!(entries(&Value::Nil), Some(vec![]));
        assert_eq!(entries(&bulk("junk")), None);
    }
}
