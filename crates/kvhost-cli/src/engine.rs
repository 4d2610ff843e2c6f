//! The wasmtime engine kvhost runs components on, and the cache of compiled components.
//!
//! Compiling a 20 MB Python component takes seconds; loading its compiled form takes
//! milliseconds. [`load_component`] keeps compiled components in a cache directory under a
//! name derived from the component's content (SHA-256) and the engine's compatibility hash,
//! so a changed component or a different kvhost/wasmtime build never picks up a stale
//! artifact.
//!
//! Invariant: a cache file is only ever written whole (temp file + rename), so a reader sees
//! either nothing or a complete artifact written by `Component::serialize`.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
    UpdateDeadline,
};

/// How often the epoch ticks: deadlines are checked, and guests yield, this often.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine for running components: async host calls, epoch interruption for deadlines.
pub fn engine() -> Result<Engine> {
    Engine::new(&base_config()).map_err(|err| anyhow::anyhow!("cannot set up wasmtime: {err}"))
}

/// Bytes of each pooled memory kept mapped between instances where `PAGEMAP_SCAN` finds the
/// dirty pages (covers a Python component's whole heap), and where it does not (then every
/// kept byte is rewritten per instance, so little is kept). See `serving_engine`.
const KEEP_RESIDENT_SCANNED: usize = 512 << 20;
const KEEP_RESIDENT_UNSCANNED: usize = 1 << 20;

/// The engine for serving: as [`engine`], with instances taken from a pool sized for
/// `instances` concurrent component instances of at most `max_memory` bytes of memory each.
/// Where the pool cannot be reserved (little virtual address space), falls back to
/// allocating on demand, with a warning.
pub fn serving_engine(instances: u32, max_memory: usize) -> Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    // A component is many core instances (a Python component: a dozen or so), each with at
    // most one memory and a few tables; these totals leave room for that at full load.
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(32))
        .total_memories(instances.saturating_mul(8))
        .total_tables(instances.saturating_mul(32))
        .total_stacks(instances)
        .max_memory_size(max_memory)
        .table_elements(100_000)
        .max_core_instance_size(8 << 20)
        .max_component_instance_size(8 << 20)
        // Reset a recycled memory by rewriting only the pages the last instance dirtied
        // (found with Linux's PAGEMAP_SCAN, 6.7+) instead of unmapping them: an unmap costs
        // page faults on the next request and TLB shootdowns across cores, which dominated
        // the Spin app's per-request profile (docs/benchmarks.md).
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(if PoolingAllocationConfig::is_pagemap_scan_available() {
            KEEP_RESIDENT_SCANNED
        } else {
            KEEP_RESIDENT_UNSCANNED
        })
        .table_keep_resident(1 << 20);
    let mut config = base_config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    match Engine::new(&config) {
        Ok(engine) => Ok(engine),
        Err(err) => {
            tracing::warn!(
                "cannot reserve the instance pool ({err}); allocating instances on demand"
            );
            engine()
        }
    }
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    // WASIp3 components (Spin SDK 4+): async functions, streams and futures, and the
    // builtins componentize-py's async runtime uses.
    config.wasm_component_model_async(true);
    config.wasm_component_model_more_async_builtins(true);
    config.wasm_component_model_async_stackful(true);
    config.wasm_component_model_error_context(true);
    config
}

/// Starts a thread that advances `engine`'s epoch every [`EPOCH_TICK`], for deadlines.
pub fn start_epoch_ticker(engine: &Engine) {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("kvhost-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map_or_else(
            |err| eprintln!("warning: --timeout will not work: {err}"),
            drop,
        );
}

/// Makes `store`'s guest yield to the async executor at every epoch tick (so other instances,
/// and signals, get their turn) and, once `deadline` has passed, trap with
/// [`Trap::Interrupt`](wasmtime::Trap::Interrupt). Needs [`start_epoch_ticker`].
pub fn yield_each_tick<T>(store: &mut Store<T>, deadline: Option<Instant>) {
    store.epoch_deadline_callback(move |_| {
        Ok(match deadline {
            Some(deadline) if Instant::now() >= deadline => UpdateDeadline::Interrupt,
            _ => UpdateDeadline::Yield(1),
        })
    });
    store.set_epoch_deadline(1);
}

/// The cache directory the flags select: none with `--no-cache`, else `--cache-dir`, else the
/// default ([`default_cache_dir`]).
pub fn cache_dir(no_cache: bool, flag: Option<&Path>) -> Option<PathBuf> {
    if no_cache {
        return None;
    }
    flag.map(Path::to_path_buf).or_else(default_cache_dir)
}

/// The default cache directory: `$KVHOST_CACHE_DIR`, else `$XDG_CACHE_HOME/kvhost`, else
/// `~/.cache/kvhost`; `None` if none of them is set.
fn default_cache_dir() -> Option<PathBuf> {
    let env = |name| std::env::var_os(name).filter(|value| !value.is_empty());
    env("KVHOST_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| env("XDG_CACHE_HOME").map(|dir| PathBuf::from(dir).join("kvhost")))
        .or_else(|| env("HOME").map(|home| PathBuf::from(home).join(".cache/kvhost")))
}

/// Compiles the component at `path`, or loads its compiled form from `cache` if present.
/// A cache that cannot be read or written is skipped with a warning, never an error.
pub fn load_component(engine: &Engine, path: &Path, cache: Option<&Path>) -> Result<Component> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the component {}", path.display()))?;
    // Done before hashing, so a cached artifact always holds the renamed component.
    let bytes = match crate::wit_versions::alias_release_candidates(&bytes) {
        Ok(Some(aliased)) => {
            tracing::debug!(
                "serving {} as WASI {}",
                aliased.renamed.join(", "),
                crate::wit_versions::WASI_P3
            );
            aliased.bytes
        }
        // Nothing to rename, or not a component kvhost can walk: compiling says what is wrong.
        Ok(None) | Err(crate::wit_versions::Malformed) => bytes,
    };
    let Some(cache) = cache else {
        return compile(engine, path, &bytes);
    };
    let artifact = cache.join(artifact_name(engine, &bytes));
    if artifact.is_file() {
        // SAFETY: the file was written by `Component::serialize` of an engine with the same
        // compatibility hash (it is part of the name), into a directory only this user writes,
        // and only ever whole (see the module invariant). wasmtime also checks the header.
        match unsafe { Component::deserialize_file(engine, &artifact) } {
            Ok(component) => return Ok(component),
            Err(err) => eprintln!(
                "warning: ignoring the cached compilation {} ({err}); recompiling",
                artifact.display()
            ),
        }
    }
    let component = compile(engine, path, &bytes)?;
    if let Err(err) = store_artifact(&component, cache, &artifact) {
        eprintln!(
            "warning: cannot cache the compiled component in {}: {err:#}",
            cache.display()
        );
    }
    Ok(component)
}

/// Builds the component's copy-on-write memory images now, once, instead of inside the first
/// instantiation. On Linux an image is a sealed memfd, and sealing can fail for a moment with
/// EBUSY while the kernel still holds references to the freshly written pages (seen under
/// load); done lazily, that failure would fail a guest's run or a served request. Retried a
/// few times; if it still fails, instantiation tries again later, as wasmtime does by itself.
pub fn prepare_memory_images(component: &Component) {
    let mut last = None;
    for attempt in 0..5 {
        match component.initialize_copy_on_write_image() {
            Ok(()) => return,
            Err(err) => last = Some(err),
        }
        std::thread::sleep(std::time::Duration::from_millis(10 << attempt));
    }
    if let Some(err) = last {
        tracing::warn!(
            "cannot prepare the component's memory images yet ({err:#}); retrying at instantiation"
        );
    }
}

fn compile(engine: &Engine, path: &Path, bytes: &[u8]) -> Result<Component> {
    Component::new(engine, bytes).map_err(|err| {
        anyhow::anyhow!(
            "{} is not a component kvhost can run: {err:#}\n(kvhost runs WebAssembly \
             components, e.g. built with componentize-py or cargo component; a core module \
             must be turned into a component first)",
            path.display()
        )
    })
}

fn artifact_name(engine: &Engine, bytes: &[u8]) -> String {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let content: String = Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("{content}-{:016x}.cwasm", engine_hash.finish())
}

fn store_artifact(component: &Component, cache: &Path, artifact: &Path) -> Result<()> {
    std::fs::create_dir_all(cache)?;
    let serialized = component
        .serialize()
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let mut temp = tempfile::NamedTempFile::new_in(cache)?;
    std::io::Write::write_all(&mut temp, &serialized)?;
    temp.persist(artifact)?;
    Ok(())
}
