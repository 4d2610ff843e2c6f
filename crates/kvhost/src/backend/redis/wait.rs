//! Waiting for a Redis bucket's next change with blocking reads (`XREAD BLOCK`).
//!
//! A reader that found nothing new arms [`Waiters`] with its position and waits for the
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

/// The longest one `XREAD` blocks (shorter when the bucket's timeout is short).
const LONGEST_BLOCK: Duration = Duration::from_secs(1);
/// The pause after a failed blocking read, before the next.
const AFTER_FAILURE: Duration = Duration::from_millis(100);

/// The blocking readers of one bucket, one per shard, and the signal they send.
pub(crate) struct Waiters {
    shared: Arc<Shared>,
    shards: Vec<Arc<ShardWaiter>>,
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
        }
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
        let block = (endpoint.timeout() / 2).clamp(Duration::from_millis(10), LONGEST_BLOCK);
        let mut xread = redis::cmd("XREAD");
        xread
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(u64::try_from(block.as_millis()).unwrap_or(1000))
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(format!("{after}-0"));
        let reply = xread.query_async::<Value>(conn);
        match tokio::time::timeout(block + endpoint.timeout(), reply).await {
            Ok(Ok(Value::Nil)) => Ok(None),
            Ok(Ok(value)) => first_version(&value).map(Some).ok_or(()),
            _ => Err(()),
        }
    }
}

/// The version of the first entry in an `XREAD` reply:
/// `[[stream, [[id, fields], ...]], ...]`, ids `<version>-0`.
fn first_version(reply: &Value) -> Option<u64> {
    let first = |value: &Value| match value {
        Value::Array(items) => items.first().cloned(),
        _ => None,
    };
    let stream = first(reply)?;
    let Value::Array(stream) = stream else {
        return None;
    };
    let entry = first(stream.get(1)?)?;
    let id: String = redis::from_redis_value_ref(&first(&entry)?).ok()?;
    id.split_once('-')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_version_of_an_xread_reply() {
        let bulk = |text: &str| Value::BulkString(text.as_bytes().to_vec());
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("kvhost:{b/0}:c"),
            Value::Array(vec![Value::Array(vec![
                bulk("42-0"),
                Value::Array(vec![bulk("k"), bulk("key")]),
            ])]),
        ])]);
        assert_eq!(first_version(&reply), Some(42));
        assert_eq!(first_version(&Value::Array(vec![])), None);
        assert_eq!(first_version(&bulk("junk")), None);
    }
}
