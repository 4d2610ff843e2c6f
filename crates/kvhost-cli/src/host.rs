//! What `kvhost run` and `kvhost serve` share: the state of one component instance
//! ([`HostState`]), the memory cap, and the set-up from [`HostArgs`] to buckets plus a compiled
//! component ([`Prepared`]).

use std::sync::Arc;

use anyhow::Result;
use kvhost::observe::Observer;
use kvhost::{Grants, Registry};
use kvhost_wasi::{KvCtx, KvCtxView, KvView};
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Engine, ResourceLimiter};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::cli::HostArgs;
use crate::setup::BucketSpec;
use crate::{engine, setup};

/// Buckets and a compiled component, ready to instantiate.
pub struct Prepared {
    /// What the config's `allow` list (after `--bucket` flags) grants every instance,
    /// derived once and cloned per instance.
    pub grants: Grants,
    /// The buckets.
    pub registry: Arc<Registry>,
    /// The compiled component.
    pub component: Component,
}

impl Prepared {
    /// Opens the buckets the flags select (reporting to `observer`, if any) and loads the
    /// component at `path` on `engine`, through the compile cache unless `--no-cache`.
    pub fn new(
        args: &HostArgs,
        engine: &Engine,
        path: &std::path::Path,
        observer: Option<Arc<dyn Observer>>,
    ) -> Result<Prepared> {
        let buckets = args
            .buckets
            .iter()
            .map(|spec| spec.parse::<BucketSpec>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| anyhow::anyhow!("--bucket: {message}"))?;
        let (config, mut registry) = setup::open_registry_with(&args.config, &buckets)?;
        if let Some(observer) = observer {
            registry.set_observer(observer);
        }
        let cache = if args.no_cache {
            None
        } else {
            args.cache_dir.clone().or_else(engine::default_cache_dir)
        };
        let component = engine::load_component(engine, path, cache.as_deref())?;
        engine::prepare_memory_images(&component);
        Ok(Prepared {
            grants: Grants::from_config(&config),
            registry: Arc::new(registry),
            component,
        })
    }

    /// The state of a fresh instance: `wasi` as built by the caller, the buckets as granted
    /// by the config, memory capped at `max_memory` bytes.
    pub fn instance_state(&self, wasi: WasiCtx, max_memory: usize) -> HostState {
        HostState {
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            kv: KvCtx::new(self.registry.clone(), self.grants.clone()),
            memory_cap: MemoryCap {
                max_bytes: max_memory,
                hit: false,
            },
        }
    }
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
            hooks: crate::serve::outgoing_http_hooks(),
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

/// The `--max-memory` cap. A growth past it traps (so the guest stops where it asked, instead
/// of carrying on with a failed `memory.grow`) and is remembered for the error message.
pub struct MemoryCap {
    /// The cap in bytes.
    pub max_bytes: usize,
    /// Whether a growth past the cap was refused.
    pub hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            return Err(wasmtime::Error::msg(format!(
                "growing memory to {desired} bytes exceeds --max-memory ({} bytes)",
                self.max_bytes
            )));
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

/// A wasmtime set-up error (linker, instantiation) as an `anyhow` error with its causes.
pub fn wasm_error(context: &str, err: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{context}: {err:?}")
}
