//! The in-memory backend: one ordered map per bucket behind a lock.
//!
//! Every operation takes the lock once, so each is atomic, batches included, and the bucket is
//! linearizable. Nothing survives the process. Used for `backend = "memory"` and as the
//! reference the conformance suite's model is checked against.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::RwLock;

use super::{cas_allows, ordered_page};
use crate::changes::{read_seq_position, seq_position, wait_for_changes, Change, ChangeRead};
use crate::cursor::ordered_position;
use crate::{counter, Bucket, CasToken, KeyPage, PageBudget, Result, Swap};

/// A bucket held in memory.
#[derive(Debug, Default)]
pub struct MemoryBucket {
    state: RwLock<State>,
    /// With a change log: sent the latest version after every write, for change-feed
    /// readers. Buckets without one never touch it.
    committed: tokio::sync::watch::Sender<u64>,
    /// Whether this bucket keeps a change log (fixed when made).
    logged: bool,
}

/// The change log of a memory bucket: the last `retention` changes, each at the version it
/// made, and watchers' positions; in this process only, like the data.
#[derive(Debug, Default)]
struct ChangeLog {
    retention: usize,
    changes: VecDeque<(u64, Change)>,
    /// The version of the newest change dropped (0: none yet).
    dropped: u64,
    positions: HashMap<String, Vec<u8>>,
}

#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<String, Entry>,
    /// The version of the latest write; every write takes the next one.
    seq: u64,
    /// The version of the latest delete that removed a key.
    last_delete: u64,
    log: Option<ChangeLog>,
}

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    version: u64,
}

impl State {
    fn put(&mut self, key: String, value: Vec<u8>) {
        self.seq += 1;
        let version = self.seq;
        self.logged(&key, Some(&value));
        self.entries.insert(key, Entry { value, version });
    }

    /// Records the change that took version `self.seq`, if this bucket keeps a log.
    fn logged(&mut self, key: &str, value: Option<&[u8]>) {
        let version = self.seq;
        if let Some(log) = &mut self.log {
            log.changes.push_back((
                version,
                Change {
                    key: key.to_string(),
                    value: value.map(<[u8]>::to_vec),
                },
            ));
            while log.changes.len() > log.retention {
                if let Some((dropped, _)) = log.changes.pop_front() {
                    log.dropped = dropped;
                }
            }
        }
    }

    /// A CAS token for `key` as it is now (absent keys carry the current sequence).
    fn token(&self, key: String) -> CasToken {
        match self.entries.get(&key) {
            Some(entry) => {
                let (value, version) = (entry.value.clone(), entry.version);
                CasToken::new(key, Some(value), version)
            }
            None => CasToken::new(key, None, self.seq),
        }
    }

    fn remove(&mut self, key: &str) {
        if self.entries.remove(key).is_some() {
            self.seq += 1;
            self.last_delete = self.seq;
            self.logged(key, None);
        }
    }
}

impl MemoryBucket {
    /// An empty bucket.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty bucket that keeps its last `retention` changes for watchers (in this
    /// process only).
    pub fn with_change_log(retention: usize) -> Self {
        let bucket = MemoryBucket {
            logged: true,
            ..Self::default()
        };
        bucket.state.write().log = Some(ChangeLog {
            retention: retention.max(1),
            ..ChangeLog::default()
        });
        bucket
    }

    /// Wakes change-feed readers after a write, if this bucket keeps a log.
    fn written(&self) {
        if self.logged {
            let seq = self.state.read().seq;
            self.committed.send_replace(seq);
        }
    }

    fn read_changes(&self, after: Option<&[u8]>, max: usize) -> Result<ChangeRead> {
        let state = self.state.read();
        let log = state
            .log
            .as_ref()
            .ok_or_else(crate::changes::no_change_log)?;
        let after = match after {
            Some(position) => read_seq_position(position)?,
            None => log.dropped,
        };
        if after < log.dropped {
            return Ok(ChangeRead::FellBehind);
        }
        let changes: Vec<Change> = log
            .changes
            .iter()
            .filter(|(version, _)| *version > after)
            .take(max.max(1))
            .map(|(_, change)| change.clone())
            .collect();
        let next = log
            .changes
            .iter()
            .filter(|(version, _)| *version > after)
            .nth(changes.len().saturating_sub(1))
            .map_or(after, |(version, _)| *version);
        Ok(ChangeRead::Changes {
            changes,
            next: seq_position(next),
        })
    }
}

#[async_trait]
impl Bucket for MemoryBucket {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.state.read().entries.get(key).map(|e| e.value.clone()))
    }

    async fn set(&self, key: String, value: Vec<u8>) -> Result<()> {
        self.state.write().put(key, value);
        self.written();
        Ok(())
    }

    async fn delete(&self, key: String) -> Result<()> {
        self.state.write().remove(&key);
        self.written();
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.state.read().entries.contains_key(key))
    }

    async fn list_keys(&self, position: Option<Vec<u8>>, budget: PageBudget) -> Result<KeyPage> {
        let after = position.map(ordered_position).transpose()?;
        let state = self.state.read();
        let start = match &after {
            Some(key) => Bound::Excluded(key.as_str()),
            None => Bound::Unbounded,
        };
        let keys = state
            .entries
            .range::<str, _>((start, Bound::Unbounded))
            .map(|(key, _)| Ok(key.clone()));
        ordered_page(keys, budget)
    }

    async fn increment(&self, key: String, delta: i64) -> Result<i64> {
        let mut state = self.state.write();
        let current = state.entries.get(&key).map(|e| e.value.as_slice());
        let new = counter::add(&key, current, delta)?;
        state.put(key, counter::format(new));
        drop(state);
        self.written();
        Ok(new)
    }

    async fn cas_begin(&self, key: String) -> Result<CasToken> {
        Ok(self.state.read().token(key))
    }

    async fn cas_swap(&self, token: CasToken, value: Vec<u8>) -> Result<Swap> {
        let mut state = self.state.write();
        let now = state.entries.get(token.key()).map(|e| e.version);
        if cas_allows(&token, now, state.last_delete) {
            state.put(token.key().to_string(), value);
            drop(state);
            self.written();
            return Ok(Swap::Swapped);
        }
        Ok(Swap::Stale(state.token(token.key().to_string())))
    }

    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        let state = self.state.read();
        Ok(keys
            .into_iter()
            .map(|key| {
                let value = state.entries.get(&key).map(|e| e.value.clone());
                (key, value)
            })
            .collect())
    }

    async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<()> {
        let mut state = self.state.write();
        for (key, value) in entries {
            state.put(key, value);
        }
        drop(state);
        self.written();
        Ok(())
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<()> {
        let mut state = self.state.write();
        for key in keys {
            state.remove(&key);
        }
        drop(state);
        self.written();
        Ok(())
    }

    async fn changes(
        &self,
        after: Option<Vec<u8>>,
        max: usize,
        wait: Duration,
    ) -> Result<ChangeRead> {
        wait_for_changes(&self.committed, wait, || {
            self.read_changes(after.as_deref(), max)
        })
        .await
    }

    async fn change_head(&self) -> Result<Vec<u8>> {
        let state = self.state.read();
        state
            .log
            .as_ref()
            .ok_or_else(crate::changes::no_change_log)?;
        Ok(seq_position(state.seq))
    }

    async fn watch_position(&self, watcher: &str) -> Result<Option<Vec<u8>>> {
        let state = self.state.read();
        let log = state
            .log
            .as_ref()
            .ok_or_else(crate::changes::no_change_log)?;
        Ok(log.positions.get(watcher).cloned())
    }

    async fn save_watch_position(&self, watcher: String, position: Vec<u8>) -> Result<()> {
        let mut state = self.state.write();
        let log = state
            .log
            .as_mut()
            .ok_or_else(crate::changes::no_change_log)?;
        log.positions.insert(watcher, position);
        Ok(())
    }
}
