//! Reading from replicas without ever reading older than your own writes.
//!
//! A standalone Redis bucket may list `replicas`. Reads go to a replica unless that could
//! return something older than a write this process made; then they go to the primary. The
//! rule is exact, not a guess at the lag:
//!
//! * Every write records, per key, the instant it completed (`Writes`).
//! * A sampler task, every [`SAMPLE_EVERY`], notes an instant `t` and then asks the primary for
//!   its replication offset `O(t)`: every write that completed before `t` is inside `O(t)`.
//!   It then asks each replica how far it has applied the stream; once a replica has applied
//!   `O(t)`, every write that completed before `t` is on it (`caught_up = t`).
//! * A read of keys whose latest local write completed before the replica's `caught_up` may go
//!   to that replica; otherwise it goes to the primary. A listing may go to a replica only if
//!   every local write did. Keys this process never wrote always may (other clients' writes
//!   may lag: the spec allows that).
//!
//! Memory is bounded: entries older than every replica's `caught_up` are dropped, and past
//! [`MAX_TRACKED`] keys the map is replaced by one "everything was written now" floor.
//! A replica that does not answer the sampler is not read from until it does; a failed replica
//! read is retried on the primary.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::conn::Endpoint;

/// How often the sampler compares replication offsets.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// The most keys remembered individually before falling back to a floor.
const MAX_TRACKED: usize = 100_000;
/// The most unconfirmed primary samples kept per replica.
const MAX_PENDING: usize = 4096;

/// One replica and how far it is known to have caught up.
pub(crate) struct Replica {
    pub(crate) endpoint: Endpoint,
    state: Mutex<ReplicaState>,
    healthy: AtomicBool,
}

#[derive(Default)]
struct ReplicaState {
    /// Every write that completed before this instant is applied on the replica.
    caught_up: Option<Instant>,
    /// Primary samples (instant, offset) the replica has not reached yet, oldest first.
    pending: VecDeque<(Instant, u64)>,
}

#[derive(Default)]
struct Writes {
    by_key: HashMap<String, Instant>,
    /// Every key counts as written at this instant (after an overflow of `by_key`).
    floor: Option<Instant>,
    /// The latest write of any key.
    latest: Option<Instant>,
}

/// The replicas of one bucket and the write history that decides where a read may go.
pub(crate) struct Replicas {
    replicas: Vec<Replica>,
    next: AtomicUsize,
    writes: Mutex<Writes>,
    sampler_started: AtomicBool,
}

impl Replicas {
    /// Replicas at these endpoints.
    pub(crate) fn new(endpoints: Vec<Endpoint>) -> Self {
        Replicas {
            replicas: endpoints
                .into_iter()
                .map(|endpoint| Replica {
                    endpoint,
                    state: Mutex::default(),
                    healthy: AtomicBool::new(false),
                })
                .collect(),
            next: AtomicUsize::new(0),
            writes: Mutex::default(),
            sampler_started: AtomicBool::new(false),
        }
    }

    /// Records that writes of `keys` completed now (successfully or not: a failed write may
    /// still have been applied).
    pub(crate) fn wrote<'k>(&self, keys: impl IntoIterator<Item = &'k str>) {
        let now = Instant::now();
        let mut writes = self.writes.lock();
        writes.latest = Some(now);
        for key in keys {
            writes.by_key.insert(key.to_string(), now);
        }
        if writes.by_key.len() > MAX_TRACKED {
            writes.by_key.clear();
            writes.floor = Some(now);
        }
    }

    /// A replica that may serve a read of `keys`, or `None`: read from the primary.
    pub(crate) fn reader<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> Option<&Replica> {
        let replica = self.pick()?;
        let caught_up = replica.state.lock().caught_up;
        let writes = self.writes.lock();
        let safe = |written: Option<Instant>| match (written, caught_up) {
            (None, _) => true,
            (Some(written), Some(caught_up)) => written < caught_up,
            (Some(_), None) => false,
        };
        if !safe(writes.floor) {
            return None;
        }
        keys.into_iter()
            .all(|key| safe(writes.by_key.get(key).copied()))
            .then_some(replica)
    }

    /// A replica that may serve a listing (it has every local write), or `None`.
    pub(crate) fn lister(&self) -> Option<&Replica> {
        let replica = self.pick()?;
        let caught_up = replica.state.lock().caught_up;
        let latest = self.writes.lock().latest;
        match (latest, caught_up) {
            (None, _) => Some(replica),
            (Some(latest), Some(caught_up)) if latest < caught_up => Some(replica),
            _ => None,
        }
    }

    /// The next healthy replica, round robin.
    fn pick(&self) -> Option<&Replica> {
        let count = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|i| &self.replicas[(start + i) % count])
            .find(|replica| replica.healthy.load(Ordering::Relaxed))
    }

    /// Starts the sampler (once) on the current tokio runtime; it stops when the bucket is
    /// dropped.
    pub(crate) fn start_sampler(self: &Arc<Self>, primary: &Arc<Endpoint>) {
        // Called on every operation: a plain load keeps the hot path free of a shared write.
        if self.sampler_started.load(Ordering::Acquire)
            || self.sampler_started.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let replicas = Arc::downgrade(self);
        let primary = Arc::downgrade(primary);
        tokio::spawn(sample_forever(replicas, primary));
    }

    /// One round: a primary offset, then every replica's applied offset.
    async fn sample(&self, primary: &Endpoint) {
        let at = Instant::now();
        let Ok(primary_offset) = offset(primary, "master_repl_offset").await else {
            return;
        };
        for replica in &self.replicas {
            let applied = offset(&replica.endpoint, "slave_repl_offset").await;
            replica.healthy.store(applied.is_ok(), Ordering::Relaxed);
            let mut state = replica.state.lock();
            state.pending.push_back((at, primary_offset));
            if state.pending.len() > MAX_PENDING {
                state.pending.pop_front();
            }
            if let Ok(applied) = applied {
                while let Some(&(instant, needed)) = state.pending.front() {
                    if needed > applied {
                        break;
                    }
                    state.caught_up = Some(instant);
                    state.pending.pop_front();
                }
            }
        }
        self.forget_confirmed();
    }

    /// Drops write records every replica has caught up with.
    fn forget_confirmed(&self) {
        let Some(oldest) = self
            .replicas
            .iter()
            .map(|replica| replica.state.lock().caught_up)
            .min()
            .flatten()
        else {
            return;
        };
        let mut writes = self.writes.lock();
        writes.by_key.retain(|_, written| *written >= oldest);
        if writes.floor.is_some_and(|floor| floor < oldest) {
            writes.floor = None;
        }
    }
}

async fn sample_forever(replicas: Weak<Replicas>, primary: Weak<Endpoint>) {
    let mut ticker = tokio::time::interval(SAMPLE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let (Some(replicas), Some(primary)) = (replicas.upgrade(), primary.upgrade()) else {
            return;
        };
        replicas.sample(&primary).await;
    }
}

/// A numeric field of `INFO replication` on `endpoint`.
async fn offset(endpoint: &Endpoint, field: &str) -> crate::Result<u64> {
    let text: String = endpoint
        .run(|mut conn| async move {
            redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut conn)
                .await
        })
        .await?;
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
        .ok_or_else(|| {
            crate::Error::other(format!(
                "{} reports no {field} (is it a replica of the primary?)",
                endpoint.label()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replicas() -> Replicas {
        let endpoint =
            Endpoint::standalone("redis://127.0.0.1:1", "r", Duration::from_secs(1), None).unwrap();
        let replicas = Replicas::new(vec![endpoint]);
        replicas.replicas[0].healthy.store(true, Ordering::Relaxed);
        replicas
    }

    fn catch_up(replicas: &Replicas, at: Instant) {
        let mut state = replicas.replicas[0].state.lock();
        state.caught_up = Some(at);
    }

    #[test]
    fn own_writes_go_to_the_primary_until_the_replica_has_them() {
        let replicas = replicas();
        assert!(replicas.reader(["never-written"]).is_some());
        replicas.wrote(["k"]);
        assert!(replicas.reader(["k"]).is_none(), "no sample yet");
        assert!(replicas.reader(["other"]).is_some());
        assert!(replicas.lister().is_none());
        catch_up(&replicas, Instant::now());
        assert!(replicas.reader(["k"]).is_some());
        assert!(replicas.lister().is_some());
        replicas.wrote(["k"]);
        assert!(replicas.reader(["k"]).is_none(), "a newer write");
        assert!(
            replicas.reader(["other", "k"]).is_none(),
            "any key of a batch"
        );
    }

    #[test]
    fn overflow_turns_into_a_floor_and_is_forgotten_once_confirmed() {
        let replicas = replicas();
        let keys: Vec<String> = (0..=MAX_TRACKED).map(|i| i.to_string()).collect();
        replicas.wrote(keys.iter().map(String::as_str));
        assert!(replicas.writes.lock().by_key.is_empty());
        assert!(
            replicas.reader(["unrelated"]).is_none(),
            "the floor covers all"
        );
        catch_up(&replicas, Instant::now());
        replicas.forget_confirmed();
        assert!(replicas.writes.lock().floor.is_none());
        assert!(replicas.reader(["unrelated"]).is_some());
    }

    #[test]
    fn an_unhealthy_replica_is_not_read() {
        let replicas = replicas();
        replicas.replicas[0].healthy.store(false, Ordering::Relaxed);
        assert!(replicas.reader(["k"]).is_none());
    }
}
