//! The in-memory backend: one ordered map per bucket behind a lock.
//!
//! Every operation takes the lock once, so each is atomic, batches included, and the bucket is
//! linearizable. Nothing survives the process. Used for `backend = "memory"` and as the
//! reference the conformance suite's model is checked against.

use std::collections::BTreeMap;
use std::ops::Bound;

use async_trait::async_trait;
use parking_lot::RwLock;

use super::{cas_allows, ordered_page};
use crate::cursor::ordered_position;
use crate::{counter, Bucket, CasToken, KeyPage, PageBudget, Result, Swap};

/// A bucket held in memory.
#[derive(Debug, Default)]
pub struct MemoryBucket {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<String, Entry>,
    /// The version of the latest write; every write takes the next one.
    seq: u64,
    /// The version of the latest delete that removed a key.
    last_delete: u64,
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
        self.entries.insert(key, Entry { value, version });
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
        }
    }
}

impl MemoryBucket {
    /// An empty bucket.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Bucket for MemoryBucket {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.state.read().entries.get(key).map(|e| e.value.clone()))
    }

    async fn set(&self, key: String, value: Vec<u8>) -> Result<()> {
        self.state.write().put(key, value);
        Ok(())
    }

    async fn delete(&self, key: String) -> Result<()> {
        self.state.write().remove(&key);
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
        Ok(())
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<()> {
        let mut state = self.state.write();
        for key in keys {
            state.remove(&key);
        }
        Ok(())
    }
}
