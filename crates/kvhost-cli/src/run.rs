//! `kvhost run`: run a `wasi:cli/run` component once, with buckets, and exit with its status.
//!
//! The component gets stdio, its arguments (argv[0] is the component's file name), this
//! process's environment plus `--env` entries, and `wasi:keyvalue` (both drafts) over the
//! configured buckets. It runs under a memory cap (a `ResourceLimiter`) and, with `--timeout`, an
//! execution deadline (epoch interruption). What the guest hit is said in plain words.

use std::sync::Arc;

use anyhow::{Context, Result};
use kvhost::Grants;
use kvhost_wasi::{KvCtx, KvCtxView, KvView};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::bindings::Command;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxView, WasiView};

use crate::cli::RunArgs;
use crate::setup::BucketSpec;
use crate::{engine, setup, Outcome};

/// Exit status when the guest traps (as `wasmtime run`: 128 + SIGABRT).
const EXIT_TRAP: u8 = 134;
/// Exit status when the guest runs past `--timeout` (as `timeout(1)`).
const EXIT_TIMEOUT: u8 = 124;

/// The state of the one component instance `run` creates.
struct RunState {
    table: ResourceTable,
    wasi: WasiCtx,
    kv: KvCtx,
    memory_cap: MemoryCap,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl KvView for RunState {
    fn kv(&mut self) -> KvCtxView<'_> {
        KvCtxView {
            ctx: &mut self.kv,
            table: &mut self.table,
        }
    }
}

/// Runs `kvhost run`.
pub async fn run(args: RunArgs) -> Result<Outcome> {
    let buckets = args
        .buckets
        .iter()
        .map(|spec| spec.parse::<BucketSpec>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|message| anyhow::anyhow!("--bucket: {message}"))?;
    let (config, registry) = setup::open_registry_with(&args.config, &buckets)?;
    let registry = Arc::new(registry);
    let engine = engine::engine()?;
    let cache = if args.no_cache {
        None
    } else {
        args.cache_dir.clone().or_else(engine::default_cache_dir)
    };
    let component = engine::load_component(&engine, &args.component, cache.as_deref())?;

    let mut linker = Linker::<RunState>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wasm_error)?;
    kvhost_wasi::add_to_linker(&mut linker).map_err(wasm_error)?;

    let mut wasi = WasiCtx::builder();
    wasi.inherit_stdio().inherit_env();
    for (name, value) in &args.env {
        wasi.env(name, value);
    }
    let program = args
        .component
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "component".into());
    wasi.arg(&program).args(&args.args);

    let state = RunState {
        table: ResourceTable::new(),
        wasi: wasi.build(),
        kv: KvCtx::new(registry.clone(), Grants::from_config(&config)),
        memory_cap: MemoryCap {
            max_bytes: args.max_memory,
            hit: false,
        },
    };
    let mut store = Store::new(&engine, state);
    store.limiter(|state| &mut state.memory_cap);
    match args.timeout {
        Some(timeout) => {
            engine::start_epoch_ticker(&engine);
            store.set_epoch_deadline(engine::deadline_ticks(timeout));
            store.epoch_deadline_trap();
        }
        None => store.set_epoch_deadline(u64::MAX),
    }

    let outcome = async {
        let command = Command::instantiate_async(&mut store, &component, &linker).await?;
        command.wasi_cli_run().call_run(&mut store).await
    }
    .await;
    // Whatever the guest did, what it wrote is flushed before we exit.
    let flushed = registry.flush().await;
    let outcome = explain(outcome, store.data().memory_cap.hit, &args);
    flushed.context("cannot flush the buckets after the component finished")?;
    outcome
}

/// Turns the guest's ending into an exit status, explaining traps, limits and deadlines.
fn explain(
    outcome: wasmtime::Result<Result<(), ()>>,
    memory_cap_hit: bool,
    args: &RunArgs,
) -> Result<Outcome> {
    let err = match outcome {
        Ok(Ok(())) => return Ok(Outcome::Done),
        Ok(Err(())) => return Ok(Outcome::Exit(1)),
        Err(err) => err,
    };
    if let Some(exit) = err.downcast_ref::<I32Exit>() {
        return Ok(Outcome::Exit(u8::try_from(exit.0).unwrap_or(1)));
    }
    let component = args.component.display();
    let trap = err.downcast_ref::<Trap>();
    if matches!(trap, Some(Trap::Interrupt)) {
        eprintln!(
            "error: {component} ran past --timeout {} and was stopped",
            crate::units::format_duration(args.timeout.unwrap_or_default())
        );
        return Ok(Outcome::Exit(EXIT_TIMEOUT));
    }
    if memory_cap_hit {
        eprintln!(
            "error: {component} tried to grow its memory past --max-memory ({} bytes) and was \
             stopped; raise --max-memory if it needs more",
            args.max_memory
        );
        return Ok(Outcome::Exit(EXIT_TRAP));
    }
    if trap.is_some() {
        eprintln!("error: {component} trapped: {err:?}");
        return Ok(Outcome::Exit(EXIT_TRAP));
    }
    Err(anyhow::anyhow!("{err:?}")).with_context(|| format!("cannot run {component}"))
}

/// The `--max-memory` cap. A growth past it traps (so the guest stops where it asked, instead
/// of carrying on with a failed `memory.grow`) and is remembered for the exit message.
struct MemoryCap {
    max_bytes: usize,
    hit: bool,
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

fn wasm_error(err: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("cannot set up the component linker: {err:?}")
}
