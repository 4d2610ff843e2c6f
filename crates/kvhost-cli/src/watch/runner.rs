//! One watcher on one bucket: read the change feed, call the handler for each change (with
//! retries, then parking), save the position after each batch.
//!
//! Guarantees (docs/consistency.md, "Watchers"):
//! - at least once, in commit order per key: a batch's position is saved only after every
//!   change in it was delivered or parked, and changes are delivered one at a time, in feed
//!   order; a restart redelivers from the saved position;
//! - nothing uncommitted: the feed holds committed changes only;
//! - a new watcher, and one that fell behind the retention, starts from a snapshot: every
//!   present key (with the prefix) as `on-set`, then the changes after the snapshot's head;
//!   deletes that fell out of the retention are not delivered (a warning and the resync
//!   counter say so);
//! - a handler that traps or passes the deadline is retried with backoff, then the change is
//!   parked in the dead-letter bucket (if one is configured) and the watcher goes on.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use kvhost::changes::{Change, ChangeRead};
use kvhost::{BucketHandle, Grants, Registry};
use kvhost_wasi::watch::{Delivered, WatcherInstance, WatcherPre};
use tokio::sync::watch;
use wasmtime::{Engine, Store};
use wasmtime_wasi::WasiCtx;

use crate::host::{new_store, HostState};
use crate::metrics::{now_micros, WatchCounters};

/// Changes read from the feed at a time (and delivered before the position moves past them).
const BATCH: usize = 256;
/// The position is saved once this many changes were delivered since the last save, ...
const SAVE_AFTER_CHANGES: usize = BATCH;
/// ... or this long after it, or when the watcher is caught up or stops: a crash redelivers
/// at most this much, and a watcher that keeps up with its writers (small batches) does not
/// pay a save per change.
const SAVE_AFTER: Duration = Duration::from_millis(250);
/// How long one read waits for a change.
const POLL: Duration = Duration::from_secs(1);
/// After a batch that did not fill, the pause before the next read: a watcher keeping up
/// with busy writers then reads changes a few at a time instead of one by one (each read
/// costs a wake-up and a feed read, CPU the writers share); a change after a quiet spell is
/// still delivered at once.
const LINGER: Duration = Duration::from_millis(2);
/// Deliveries of one change before it is parked.
const ATTEMPTS: u32 = 4;
/// The first retry's wait; each later one doubles it.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Changes one instance handles before a fresh one replaces it (bounds what a guest's heap
/// can accumulate). Instantiating a Python guest costs milliseconds, so a well-behaved
/// handler keeps its instance a long while.
const EVENTS_PER_INSTANCE: u32 = 100_000;

/// What every runner of one watcher component shares.
pub struct Shared {
    /// The linked component.
    pub pre: WatcherPre<HostState>,
    /// The engine it runs on.
    pub engine: Engine,
    /// The buckets.
    pub registry: Arc<Registry>,
    /// What the watcher may open.
    pub grants: Grants,
    /// Memory cap per instance.
    pub max_memory: usize,
    /// How long one delivery may take.
    pub deadline: Duration,
    /// Where given-up changes go, if configured.
    pub dead_letters: Option<BucketHandle>,
}

/// One watcher on one bucket.
pub struct Runner {
    /// The watcher's name (its saved position's key).
    pub name: String,
    /// The watched bucket.
    pub bucket: BucketHandle,
    /// Only keys with one of these prefixes are delivered (empty: every key).
    pub prefixes: Vec<String>,
    /// The component and the rest.
    pub shared: Arc<Shared>,
    /// Its numbers.
    pub counters: Arc<WatchCounters>,
    /// Becomes `true` when kvhost stops.
    pub stopping: watch::Receiver<bool>,
}

/// A live instance and how many changes it took.
struct Live {
    store: Store<HostState>,
    instance: WatcherInstance,
    events: u32,
}

/// What was delivered since the position was last saved.
struct Unsaved {
    changes: usize,
    since: tokio::time::Instant,
}

impl Unsaved {
    fn new() -> Self {
        Unsaved {
            changes: 0,
            since: tokio::time::Instant::now(),
        }
    }

    /// Whether the position should be saved now.
    fn due(&self) -> bool {
        self.changes >= SAVE_AFTER_CHANGES || self.since.elapsed() >= SAVE_AFTER
    }
}

impl Runner {
    /// Runs until kvhost stops (the change in hand is finished first, or redelivered later).
    pub async fn run(mut self) {
        let mut live: Option<Live> = None;
        let saved = match self.bucket.watch_position(&self.name).await {
            Ok(saved) => saved,
            Err(err) => {
                tracing::error!(
                    watcher = self.name,
                    bucket = self.bucket.name(),
                    "cannot start: {err}"
                );
                return;
            }
        };
        let mut position = match saved {
            Some(position) => Some(position),
            None => {
                tracing::info!(
                    watcher = self.name,
                    bucket = self.bucket.name(),
                    "new watcher: starting from a snapshot of the bucket"
                );
                match self.resync(&mut live).await {
                    Some(position) => Some(position),
                    None => return,
                }
            }
        };
        let mut unsaved = Unsaved::new();
        while !*self.stopping.borrow() {
            let read = tokio::select! {
                read = self.bucket.changes(position.clone(), BATCH, POLL) => read,
                _ = self.stopping.changed() => break,
            };
            match read {
                Ok(ChangeRead::Changes { changes, next }) => {
                    if changes.is_empty() {
                        self.counters.behind_since_micros.store(0, Relaxed);
                        // Caught up: a good moment to save.
                        self.save_unsaved(&mut unsaved, &position).await;
                        continue;
                    }
                    if self.counters.behind_since_micros.load(Relaxed) == 0 {
                        self.counters
                            .behind_since_micros
                            .store(now_micros(), Relaxed);
                    }
                    self.counters
                        .lag_events
                        .store(changes.len() as u64, Relaxed);
                    for change in &changes {
                        if !self.delivered(&mut live, change).await {
                            // Stopping: the batch is redelivered from `position`.
                            break;
                        }
                        self.counters.lag_events.fetch_sub(1, Relaxed);
                    }
                    if *self.stopping.borrow() {
                        break;
                    }
                    position = Some(next);
                    unsaved.changes += changes.len();
                    if unsaved.due() {
                        self.save_unsaved(&mut unsaved, &position).await;
                    }
                    if changes.len() < BATCH {
                        tokio::time::sleep(LINGER).await;
                    }
                }
                Ok(ChangeRead::FellBehind) => {
                    tracing::warn!(
                        watcher = self.name,
                        bucket = self.bucket.name(),
                        "fell behind the change log's retention (watch_retention): resyncing from \
                         a snapshot; deletes in the gap are not delivered"
                    );
                    match self.resync(&mut live).await {
                        Some(head) => {
                            position = Some(head);
                            unsaved = Unsaved::new();
                        }
                        None => return,
                    }
                }
                Err(err) => {
                    tracing::warn!(
                        watcher = self.name,
                        bucket = self.bucket.name(),
                        "reading changes failed: {err}; retrying"
                    );
                    tokio::time::sleep(POLL).await;
                }
            }
        }
        // Stopping: keep what was delivered in whole batches.
        self.save_unsaved(&mut unsaved, &position).await;
    }

    /// Saves `position` if changes were delivered since the last save.
    async fn save_unsaved(&self, unsaved: &mut Unsaved, position: &Option<Vec<u8>>) {
        if let (true, Some(position)) = (unsaved.changes > 0, position) {
            // Even when the save fails (and says so), the walk goes on: the saved position
            // stays older, so a restart redelivers, never skips.
            self.save(position.clone()).await;
        }
        *unsaved = Unsaved::new();
    }

    /// Delivers every present key (with the prefix) as `on-set`, from the head taken first;
    /// saves and returns that head. `None`: stopping.
    async fn resync(&mut self, live: &mut Option<Live>) -> Option<Vec<u8>> {
        self.counters.resyncs.fetch_add(1, Relaxed);
        loop {
            match self.snapshot(live).await {
                Ok(Some(head)) => {
                    self.save(head.clone()).await;
                    return Some(head);
                }
                Ok(None) => return None,
                Err(err) => {
                    tracing::warn!(
                        watcher = self.name,
                        bucket = self.bucket.name(),
                        "snapshot failed: {err}; retrying"
                    );
                    tokio::time::sleep(POLL).await;
                    if *self.stopping.borrow() {
                        return None;
                    }
                }
            }
        }
    }

    async fn snapshot(&mut self, live: &mut Option<Live>) -> kvhost::Result<Option<Vec<u8>>> {
        let head = self.bucket.change_head().await?;
        let prefixes = if self.prefixes.is_empty() {
            vec![String::new()]
        } else {
            self.prefixes.clone()
        };
        for prefix in prefixes {
            let mut cursor: Option<String> = None;
            loop {
                let page = self
                    .bucket
                    .list_keys_with_prefix(&prefix, cursor.as_deref())
                    .await?;
                for (key, value) in self.bucket.get_many(page.keys).await? {
                    let Some(value) = value else { continue };
                    if !self
                        .delivered(
                            live,
                            &Change {
                                key,
                                value: Some(value),
                            },
                        )
                        .await
                    {
                        return Ok(None);
                    }
                }
                match page.cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        Ok(Some(head))
    }

    async fn save(&self, position: Vec<u8>) {
        let saved = self
            .bucket
            .save_watch_position(self.name.clone(), position)
            .await;
        if let Err(err) = saved {
            tracing::warn!(
                watcher = self.name,
                bucket = self.bucket.name(),
                "cannot save the position: {err} (after a restart, changes since the last \
                 saved one are delivered again)"
            );
        }
    }

    fn wanted(&self, key: &str) -> bool {
        self.prefixes.is_empty()
            || self
                .prefixes
                .iter()
                .any(|prefix| key.starts_with(prefix.as_str()))
    }

    /// Delivers `change` (retrying, then parking it). `false`: kvhost is stopping and the
    /// change was not delivered.
    async fn delivered(&mut self, live: &mut Option<Live>, change: &Change) -> bool {
        if !self.wanted(&change.key) {
            return true;
        }
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            if *self.stopping.borrow() {
                return false;
            }
            match self.deliver_once(live, change).await {
                Ok(()) => {
                    self.counters.delivered.fetch_add(1, Relaxed);
                    return true;
                }
                Err(err) => {
                    *live = None;
                    if attempt == ATTEMPTS {
                        self.park(change, &err).await;
                        return true;
                    }
                    self.counters.retried.fetch_add(1, Relaxed);
                    tracing::debug!(
                        watcher = self.name,
                        key = change.key,
                        "handler failed (attempt {attempt}): {err}"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = self.stopping.changed() => return false,
                    }
                    backoff *= 2;
                }
            }
        }
        true
    }

    async fn deliver_once(&self, live: &mut Option<Live>, change: &Change) -> Result<(), String> {
        // A handler that keeps the buckets it is handed would reach the handle cap: its
        // instance is replaced once it holds half of it.
        let max_held = self.shared.registry.limits().max_open_buckets / 2;
        if live.as_ref().is_none_or(|live| {
            live.events >= EVENTS_PER_INSTANCE || live.store.data().open_buckets() > max_held
        }) {
            *live = None;
            let shared = &self.shared;
            let mut store = new_store(
                &shared.engine,
                &shared.registry,
                &shared.grants,
                WasiCtx::builder().inherit_stderr().build(),
                (shared.max_memory, None),
            );
            crate::engine::yield_each_tick(&mut store, None);
            let instance = shared
                .pre
                .instantiate(&mut store)
                .await
                .map_err(|err| format!("cannot instantiate the watcher: {err:?}"))?;
            *live = Some(Live {
                store,
                instance,
                events: 0,
            });
        }
        let Some(current) = live.as_mut() else {
            return Err("internal error: no instance".into());
        };
        current.events += 1;
        crate::engine::yield_each_tick(
            &mut current.store,
            Instant::now().checked_add(self.shared.deadline),
        );
        let delivered = current
            .instance
            .deliver(
                &mut current.store,
                &self.bucket,
                &change.key,
                change.value.as_deref(),
            )
            .await;
        match delivered {
            Ok(Delivered::Done) => Ok(()),
            Ok(Delivered::NotOpened(reason)) => Err(format!(
                "cannot open bucket {:?} for the handler: {reason}",
                self.bucket.name()
            )),
            Err(err)
                if matches!(
                    err.downcast_ref::<wasmtime::Trap>(),
                    Some(wasmtime::Trap::Interrupt)
                ) =>
            {
                Err(format!(
                    "the handler ran past its deadline ({})",
                    crate::units::format_duration(self.shared.deadline)
                ))
            }
            // The root cause ("wasm trap: ..."), not the whole guest backtrace.
            Err(err) => Err(format!("the handler failed: {}", err.root_cause())),
        }
    }

    /// Parks a change given up on: into the dead-letter bucket, or only into the log.
    async fn park(&self, change: &Change, error: &str) {
        self.counters.parked.fetch_add(1, Relaxed);
        let op = if change.value.is_some() {
            "set"
        } else {
            "delete"
        };
        tracing::warn!(
            watcher = self.name,
            bucket = self.bucket.name(),
            key = change.key,
            "gave up after {ATTEMPTS} attempts, parking the {op}: {error}"
        );
        let Some(dead_letters) = &self.shared.dead_letters else {
            return;
        };
        let record = serde_json::json!({
            "watcher": self.name,
            "bucket": self.bucket.name(),
            "key": change.key,
            "op": op,
            "value": change.value.as_ref().map(|value| STANDARD.encode(value)),
            "error": error,
        });
        let key = format!("{}/{}/{:020}", self.name, self.bucket.name(), now_micros());
        if let Err(err) = dead_letters.set(key, record.to_string().into_bytes()).await {
            tracing::error!(
                watcher = self.name,
                "cannot park in bucket {:?}: {err}",
                dead_letters.name()
            );
        }
    }
}
