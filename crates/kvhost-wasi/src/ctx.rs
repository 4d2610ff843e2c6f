//! Per-instance state: [`KvCtx`] (what one client may do and what it holds open) and the
//! [`KvView`] trait through which an embedder's store data lends it to the bindings.
//!
//! A *client* in the `wasi:keyvalue` sense is one component instance, which in wasmtime means
//! one `Store`. Each store owns one `KvCtx`. Read-your-writes holds per client because every
//! backend behind a [`Registry`] is linearizable for a single caller: a write is applied before
//! the call that made it returns.
//!
//! Invariants kept here:
//! - `open_buckets` / `open_cas` equal the number of live bucket / CAS resources this client
//!   holds in the resource table: buckets enter through [`KvCtxView::open_bucket`] and leave
//!   through [`KvCtxView::drop_bucket`]; CAS handles enter through [`KvCtxView::push_cas`] and
//!   leave through [`KvCtxView::take_cas`]. Those four are the only callers of the counters.
//! - The draft cursor table never holds more than [`DRAFT_CURSORS`] entries.

use std::collections::VecDeque;
use std::sync::Arc;

use kvhost::{BucketHandle, CasToken, Error, Grants, Registry};
use wasmtime::component::{Resource, ResourceTable};

use crate::error::HostError;

/// How many `0.2.0-draft` cursors one client keeps alive at once (oldest are forgotten first).
pub const DRAFT_CURSORS: usize = 256;

/// What one client (component instance) may open, and the handles it holds.
///
/// Built from a shared [`Registry`] and the [`Grants`] of this component. Limits are the
/// registry's: [`kvhost::Limits::max_open_buckets`] and
/// [`kvhost::Limits::max_open_cas_handles`] cap this client's open handles, and every key,
/// value, page and batch is checked by the bucket handles before any I/O.
pub struct KvCtx {
    registry: Arc<Registry>,
    grants: Grants,
    open_buckets: usize,
    open_cas: usize,
    draft_cursors: DraftCursors,
}

impl std::fmt::Debug for KvCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvCtx")
            .field("grants", &self.grants)
            .field("open_buckets", &self.open_buckets)
            .field("open_cas", &self.open_cas)
            .finish_non_exhaustive()
    }
}

impl KvCtx {
    /// A context for one client that may open the buckets `grants` allows.
    pub fn new(registry: Arc<Registry>, grants: Grants) -> Self {
        KvCtx {
            registry,
            grants,
            open_buckets: 0,
            open_cas: 0,
            draft_cursors: DraftCursors::default(),
        }
    }

    /// The registry this client opens buckets from.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// How many bucket handles this client holds open.
    pub fn open_buckets(&self) -> usize {
        self.open_buckets
    }

    /// How many CAS handles this client holds open.
    pub fn open_cas_handles(&self) -> usize {
        self.open_cas
    }

    /// `open(identifier)`: the bucket, counted against this client's handle cap.
    pub(crate) fn open(&mut self, identifier: &str) -> Result<BucketHandle, HostError> {
        let handle = self.registry.open(identifier, &self.grants)?;
        self.reserve_bucket()?;
        Ok(handle)
    }

    pub(crate) fn reserve_bucket(&mut self) -> Result<(), HostError> {
        let limit = self.registry.limits().max_open_buckets;
        if self.open_buckets >= limit {
            return Err(HostError::TableFull(format!(
                "this instance already holds {limit} open bucket handles, the limit \
                 (limits.max_open_buckets); drop handles it no longer needs"
            )));
        }
        self.open_buckets += 1;
        Ok(())
    }

    pub(crate) fn release_bucket(&mut self) {
        self.open_buckets = self.open_buckets.saturating_sub(1);
    }

    fn reserve_cas(&mut self) -> kvhost::Result<()> {
        let limit = self.registry.limits().max_open_cas_handles;
        if self.open_cas >= limit {
            return Err(Error::other(format!(
                "this instance already holds {limit} open CAS handles, the limit \
                 (limits.max_open_cas_handles); swap or drop handles it no longer needs"
            )));
        }
        self.open_cas += 1;
        Ok(())
    }

    fn release_cas(&mut self) {
        self.open_cas = self.open_cas.saturating_sub(1);
    }

    pub(crate) fn draft_cursors(&mut self) -> &mut DraftCursors {
        &mut self.draft_cursors
    }
}

/// The state the `wasi:keyvalue` bindings borrow from an embedder's store data for one call.
pub struct KvCtxView<'a> {
    /// This client's context.
    pub ctx: &'a mut KvCtx,
    /// The store's resource table, where bucket and CAS handles live.
    pub table: &'a mut ResourceTable,
}

impl KvCtxView<'_> {
    /// `open(identifier)`: pushes a bucket resource, counted against the handle cap.
    pub(crate) fn open_bucket(
        &mut self,
        identifier: &str,
    ) -> Result<Resource<BucketResource>, HostError> {
        let handle = self.ctx.open(identifier)?;
        self.push_bucket(handle)
    }

    /// Pushes a resource for `handle`, a bucket the host hands the guest (a watcher's
    /// bucket: the host chose it, so the grants are not asked), counted against the cap.
    pub(crate) fn hand_over_bucket(
        &mut self,
        handle: BucketHandle,
    ) -> Result<Resource<BucketResource>, HostError> {
        self.ctx.reserve_bucket()?;
        self.push_bucket(handle)
    }

    /// Pushes a bucket resource whose slot is reserved already.
    fn push_bucket(&mut self, handle: BucketHandle) -> Result<Resource<BucketResource>, HostError> {
        self.table.push(BucketResource { handle }).map_err(|err| {
            self.ctx.release_bucket();
            err.into()
        })
    }

    /// The bucket behind a guest's borrowed handle.
    pub(crate) fn bucket(
        &self,
        bucket: &Resource<BucketResource>,
    ) -> Result<BucketHandle, HostError> {
        Ok(self.table.get(bucket)?.handle.clone())
    }

    /// The guest dropped a bucket handle.
    pub(crate) fn drop_bucket(&mut self, bucket: Resource<BucketResource>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        self.ctx.release_bucket();
        Ok(())
    }

    /// Pushes a CAS resource, counted against the CAS handle cap.
    pub(crate) fn push_cas(
        &mut self,
        cas: CasResource,
    ) -> Result<Resource<CasResource>, HostError> {
        self.ctx.reserve_cas()?;
        self.table.push(cas).map_err(|err| {
            self.ctx.release_cas();
            err.into()
        })
    }

    /// Removes a CAS resource (dropped by the guest, or consumed by `swap`).
    pub(crate) fn take_cas(&mut self, cas: Resource<CasResource>) -> wasmtime::Result<CasResource> {
        let taken = self.table.delete(cas)?;
        self.ctx.release_cas();
        Ok(taken)
    }
}

/// Implemented by an embedder's store data (`T` of `Store<T>`) to lend the bindings a
/// [`KvCtxView`]; the same pattern as `wasmtime_wasi::WasiView`.
pub trait KvView: Send {
    /// This store's key-value context and resource table.
    fn kv(&mut self) -> KvCtxView<'_>;
}

/// A bucket handle as the resource table holds it.
#[doc(hidden)]
pub struct BucketResource {
    pub(crate) handle: BucketHandle,
}

/// A CAS handle as the resource table holds it: the bucket it belongs to (kept alive even if
/// the guest drops its bucket handle first) and the token a swap checks.
#[doc(hidden)]
pub struct CasResource {
    pub(crate) bucket: BucketHandle,
    pub(crate) token: CasToken,
}

/// Cursors of the `0.2.0-draft` interface, which are `u64`s: each stands for one of our cursor
/// strings, valid in the client that received it.
///
/// Id 0 is never handed out; a guest passing `Some(0)` starts from the beginning, which is how
/// several draft-era guests ask for the first page.
#[derive(Default)]
pub(crate) struct DraftCursors {
    next_id: u64,
    live: VecDeque<(u64, String)>,
}

impl DraftCursors {
    /// Remembers `cursor` and returns the number that stands for it.
    pub(crate) fn remember(&mut self, cursor: String) -> u64 {
        self.next_id += 1;
        if self.live.len() == DRAFT_CURSORS {
            self.live.pop_front();
        }
        self.live.push_back((self.next_id, cursor));
        self.next_id
    }

    /// The cursor string `id` stands for; `Ok(None)` for 0 (start of the listing).
    pub(crate) fn resolve(&self, id: u64) -> kvhost::Result<Option<String>> {
        if id == 0 {
            return Ok(None);
        }
        self.live
            .iter()
            .find(|(live, _)| *live == id)
            .map(|(_, cursor)| Some(cursor.clone()))
            .ok_or_else(|| {
                Error::other(format!(
                    "invalid cursor: {id} is not a cursor this instance received, or one of \
                     more than {DRAFT_CURSORS} older ones that were forgotten"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draft_cursors_are_bounded_and_resolve_only_known_ids() {
        let mut cursors = DraftCursors::default();
        let first = cursors.remember("a".into());
        assert_eq!(cursors.resolve(first).unwrap().as_deref(), Some("a"));
        assert_eq!(cursors.resolve(0).unwrap(), None);
        assert!(cursors.resolve(first + 1).is_err());
        for n in 0..DRAFT_CURSORS {
            cursors.remember(n.to_string());
        }
        assert_eq!(cursors.live.len(), DRAFT_CURSORS);
        let err = cursors.resolve(first).unwrap_err().to_string();
        assert!(err.starts_with("invalid cursor"), "{err}");
    }

    #[test]
    fn handle_caps_count_and_release() {
        let limits = kvhost::Limits {
            max_open_buckets: 2,
            ..kvhost::Limits::default()
        };
        let mut registry = Registry::new(limits);
        registry.insert(
            "default",
            Arc::new(kvhost::backend::memory::MemoryBucket::new()),
        );
        let mut ctx = KvCtx::new(Arc::new(registry), Grants::All);
        ctx.open("default").unwrap();
        ctx.open("default").unwrap();
        match ctx.open("default") {
            Err(HostError::TableFull(err)) => {
                assert!(err.contains("limits.max_open_buckets"), "{err}");
            }
            _ => panic!("a third open must hit the cap"),
        }
        ctx.release_bucket();
        ctx.open("default").unwrap();
        assert!(matches!(
            ctx.open("nope"),
            Err(HostError::Store(Error::NoSuchStore))
        ));
        assert_eq!(ctx.open_buckets(), 2);
    }
}
