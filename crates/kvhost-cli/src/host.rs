//! What `kvhost run` and `kvhost serve` share: the state of one component instance
//! ([`HostState`]), the memory cap, and the set-up from [`HostArgs`] to buckets plus a compiled
//! component ([`Prepared`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Result;
use kvhost::observe::Observer;
use kvhost::{Grants, Registry};
use kvhost_wasi::{KvCtx, KvCtxView, KvView};
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::cli::HostArgs;
use crate::{engine, setup};

/// Buckets and a compiled component, ready to instantiate.
pub struct Prepared {
    /// The configuration the buckets were opened from (after `--bucket` flags).
    pub config: kvhost::Config,
    /// What the config's `allow` list (after `--bucket` flags) grants every instance,
    /// derived once and cloned per instance.
    pub grants: Grants,
    /// The buckets.
    pub registry: Arc<Registry>,
    /// The compiled component.
    pub component: Component,
}

impl Prepared {
    /// Opens the buckets of `config` (reporting to `observer`, if any) and loads the
    /// component at `path` on `engine`, through the compile cache unless `--no-cache`.
    pub fn new(
        config: kvhost::Config,
        args: &HostArgs,
        engine: &Engine,
        path: &std::path::Path,
        observer: Option<Arc<dyn Observer>>,
    ) -> Result<Prepared> {
        let mut registry = setup::open_registry(&config)?;
        if let Some(observer) = observer {
            registry.set_observer(observer);
        }
        let cache = engine::cache_dir(args.no_cache, args.cache_dir.as_deref());
        let component = engine::load_component(engine, path, cache.as_deref())?;
        engine::prepare_memory_images(&component);
        Ok(Prepared {
            grants: Grants::from_config(&config),
            config,
            registry: Arc::new(registry),
            component,
        })
    }

    /// The store of a fresh instance of the component on `engine` (see [`new_store`]).
    pub fn store(
        &self,
        engine: &Engine,
        wasi: WasiCtx,
        max_memory: usize,
        budget: Option<Arc<MemoryBudget>>,
    ) -> Store<HostState> {
        new_store(
            engine,
            &self.registry,
            &self.grants,
            wasi,
            (max_memory, budget),
        )
    }
}

/// The store of a fresh instance on `engine`: `wasi` as built by the caller, the buckets of
/// `registry` as `grants` allow, memory capped at `max_memory` bytes and, with a `budget`, at
/// what is left of the budget all instances share; and room for the largest call the limits
/// allow (so a call over a limit gets `other`, not a trap).
pub fn new_store(
    engine: &Engine,
    registry: &Arc<Registry>,
    grants: &Grants,
    wasi: WasiCtx,
    (max_memory, budget): (usize, Option<Arc<MemoryBudget>>),
) -> Store<HostState> {
    let state = HostState {
        table: ResourceTable::new(),
        wasi,
        http: WasiHttpCtx::new(),
        kv: KvCtx::new(Arc::clone(registry), grants.clone()),
        memory_cap: MemoryCap {
            max_bytes: max_memory,
            hit: None,
            budget,
            reserved: 0,
        },
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.memory_cap);
    store.set_hostcall_fuel(hostcall_fuel(registry.limits()));
    store
}

/// wasmtime's per-call copy budget for `limits`: four times the largest call they allow, and
/// never less than wasmtime's default (128 MiB). A call over a limit but within this gets `other`
/// from the limit check; one past it traps (exit 134 from `run`, 500 from `serve`).
fn hostcall_fuel(limits: &kvhost::Limits) -> usize {
    limits.largest_call_bytes().saturating_mul(4).max(128 << 20)
}

/// The state of one component instance (one `Store`).
pub struct HostState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    kv: KvCtx,
    /// The memory cap (install with `store.limiter(|state| &mut state.memory_cap)`).
    pub memory_cap: MemoryCap,
}

impl HostState {
    /// The bucket handles the guest holds open.
    pub fn open_buckets(&self) -> usize {
        self.kv.open_buckets()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: crate::outgoing_http::outgoing_http_hooks(),
        }
    }
}

impl KvView for HostState {
    fn kv(&mut self) -> KvCtxView<'_> {
        KvCtxView {
            ctx: &mut self.kv,
            table: &mut self.table,
        }
    }
}

/// Which memory limit a growth ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryLimit {
    /// `--max-memory`, of this instance (the limit in bytes).
    Instance(usize),
    /// `--max-total-memory`, of all instances together (the limit in bytes).
    Total(usize),
}

/// The memory caps of one instance. A growth past one traps (so the guest stops where it
/// asked, instead of carrying on with a failed `memory.grow`) and is remembered for the error
/// message.
///
/// Invariant: `reserved` is what this instance holds of `budget`; it is returned when the
/// instance (its store, and so this value) is dropped.
pub struct MemoryCap {
    /// The cap of each of the instance's memories in bytes.
    pub max_bytes: usize,
    /// The limit a growth ran into, if one did.
    pub hit: Option<MemoryLimit>,
    budget: Option<Arc<MemoryBudget>>,
    reserved: usize,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = Some(MemoryLimit::Instance(self.max_bytes));
            return Err(wasmtime::Error::msg(format!(
                "growing memory to {desired} bytes exceeds --max-memory ({} bytes)",
                self.max_bytes
            )));
        }
        if let Some(budget) = &self.budget {
            let more = desired.saturating_sub(current);
            if !budget.try_reserve(more) {
                self.hit = Some(MemoryLimit::Total(budget.limit));
                return Err(wasmtime::Error::msg(format!(
                    "growing memory by {more} bytes would pass --max-total-memory ({} bytes)",
                    budget.limit
                )));
            }
            self.reserved += more;
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

impl Drop for MemoryCap {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.release(self.reserved);
        }
    }
}

/// Linear memory all instances together may hold (`--max-total-memory`).
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        MemoryBudget {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// The default: three quarters of the machine's memory (unbounded if unknown).
    pub fn default_limit() -> usize {
        // SAFETY: sysconf only reads system configuration.
        let (pages, page_size) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        match (usize::try_from(pages), usize::try_from(page_size)) {
            (Ok(pages), Ok(page_size)) if pages > 0 => pages.saturating_mul(page_size) / 4 * 3,
            _ => usize::MAX,
        }
    }

    /// Takes `bytes` of the budget, if that many are left.
    fn try_reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    /// Gives back `bytes` taken by [`MemoryBudget::try_reserve`].
    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// A wasmtime set-up error (linker, instantiation) as an `anyhow` error with its causes.
pub fn wasm_error(context: &str, err: &wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{context}: {err:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(max_bytes: usize, budget: &Arc<MemoryBudget>) -> MemoryCap {
        MemoryCap {
            max_bytes,
            hit: None,
            budget: Some(Arc::clone(budget)),
            reserved: 0,
        }
    }

    #[test]
    fn instances_share_the_budget_and_return_it_when_dropped() {
        let budget = Arc::new(MemoryBudget::new(100));
        let mut first = cap(80, &budget);
        assert!(first.memory_growing(0, 60, None).unwrap());
        let mut second = cap(80, &budget);
        assert!(second.memory_growing(0, 40, None).unwrap());
        assert!(second.memory_growing(40, 41, None).is_err());
        assert_eq!(second.hit, Some(MemoryLimit::Total(100)));
        assert!(first.memory_growing(60, 81, None).is_err());
        assert_eq!(first.hit, Some(MemoryLimit::Instance(80)));
        drop(first);
        let mut third = cap(80, &budget);
        assert!(third.memory_growing(0, 60, None).unwrap());
        drop((second, third));
        assert_eq!(budget.used.load(Ordering::Acquire), 0);
    }
}
