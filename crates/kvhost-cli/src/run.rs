//! `kvhost run`: run a `wasi:cli/run` component once, with buckets, and exit with its status.
//!
//! Both generations run: `wasi:cli/run@0.2.x` (called as a plain async call) and
//! `wasi:cli/run@0.3.x` (WASIp3, called inside the store's concurrent event loop). The
//! component gets stdio, its arguments (argv[0] is the component's file name), this process's
//! environment plus `--env` entries, and every key-value interface of `kvhost-wasi` over the
//! configured buckets. It runs under a memory cap (a `ResourceLimiter`) and, with `--timeout`, an
//! execution deadline (epoch interruption). What the guest hit is said in plain words.
//!
//! Invariant: whatever ends the guest (its return, a trap, `--timeout`, SIGINT or SIGTERM),
//! the buckets are flushed before kvhost exits, so every write acknowledged to the guest is
//! durable, relaxed buckets included. The guest yields to the async executor at every epoch
//! tick, so a signal stops even a guest that computes without calling the host.

use std::time::Instant;

use anyhow::{Context, Result};
use wasmtime::component::Linker;
use wasmtime::Trap;
use wasmtime_wasi::p2::bindings::Command;
use wasmtime_wasi::{p3, I32Exit, WasiCtx};

use crate::cli::RunArgs;
use crate::host::{wasm_error, HostState, Prepared};
use crate::signals::{self, Stop};
use crate::{engine, Outcome};

/// Exit status when the guest traps (as `wasmtime run`: 128 + SIGABRT).
const EXIT_TRAP: u8 = 134;
/// Exit status when the guest runs past `--timeout` (as `timeout(1)`).
const EXIT_TIMEOUT: u8 = 124;
/// Exit status when the buckets cannot be flushed after the guest ended: writes the guest was
/// told had succeeded may be lost (`EX_IOERR` of sysexits.h).
const EXIT_NOT_DURABLE: u8 = 74;

/// Runs `kvhost run`.
pub async fn run(args: RunArgs) -> Result<Outcome> {
    let engine = engine::engine()?;
    let config = crate::setup::configure_host(&args.host, &[])?;
    let prepared = Prepared::new(config, &args.host, &engine, &args.component, None)?;

    let mut linker = Linker::<HostState>::new(&engine);
    let linker_error =
        |err: wasmtime::Error| wasm_error("cannot set up the component linker", &err);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(linker_error)?;
    // wasi:http 0.2 too, outgoing requests refused: a componentize-js build imports it for
    // `fetch` unless built with `--disable http`.
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(linker_error)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker).map_err(linker_error)?;
    kvhost_wasi::add_to_linker_for(&mut linker, &prepared.component).map_err(linker_error)?;

    let mut wasi = WasiCtx::builder();
    wasi.inherit_stdio().inherit_env();
    for (name, value) in &args.host.env {
        wasi.env(name, value);
    }
    let program = args.component.file_name().map_or_else(
        || "component".into(),
        |name| name.to_string_lossy().into_owned(),
    );
    wasi.arg(&program).args(&args.args);

    let mut store = prepared.store(&engine, wasi.build(), args.host.max_memory, None);
    // Every tick the guest yields (so a signal is heard) or, past --timeout, is interrupted.
    engine::start_epoch_ticker(&engine);
    let deadline = args
        .timeout
        .and_then(|timeout| Instant::now().checked_add(timeout));
    engine::yield_each_tick(&mut store, deadline);

    // Whether the guest got to run: a failure after that is the guest's (134), before it
    // kvhost's (2).
    let mut started = false;
    let guest = async {
        let instance = linker
            .instantiate_async(&mut store, &prepared.component)
            .await?;
        started = true;
        if let Ok(command) = p3::bindings::Command::new(&mut store, &instance) {
            return store
                .run_concurrent(async |store| command.wasi_cli_run().call_run(store).await)
                .await?;
        }
        Command::new(&mut store, &instance)?
            .wasi_cli_run()
            .call_run(&mut store)
            .await
    };
    let ended = tokio::select! {
        outcome = guest => Ok(outcome),
        stop = signals::stop_requested() => Err(stop),
    };
    // Whatever ended the guest, what it wrote is flushed before we exit.
    let flushed = prepared.registry.flush().await;
    let outcome = match ended {
        Ok(outcome) => explain(
            outcome,
            store.data().memory_cap.hit.is_some(),
            started,
            &args,
        ),
        Err(stop) => Ok(stopped(stop, &args)),
    };
    if let Err(err) = flushed {
        if let Err(failure) = &outcome {
            eprintln!("error: {failure:#}");
        }
        eprintln!(
            "error: {} ended, but the buckets could not be flushed, so writes it was told had \
             succeeded may be lost: {err:#}",
            args.component.display()
        );
        return Ok(Outcome::Exit(EXIT_NOT_DURABLE));
    }
    outcome
}

/// Says that `stop` ended the guest; the exit status is the signal's (74 instead if the flush
/// that follows fails).
fn stopped(stop: Stop, args: &RunArgs) -> Outcome {
    eprintln!(
        "kvhost: {}: stopped {}",
        stop.name(),
        args.component.display()
    );
    Outcome::Exit(stop.exit_status())
}

/// Turns the guest's ending into an exit status, explaining traps, limits and deadlines.
fn explain(
    outcome: wasmtime::Result<Result<(), ()>>,
    memory_cap_hit: bool,
    started: bool,
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
            args.host.max_memory
        );
        return Ok(Outcome::Exit(EXIT_TRAP));
    }
    if trap.is_some() {
        eprintln!("error: {component} trapped: {err:?}");
        return Ok(Outcome::Exit(EXIT_TRAP));
    }
    if started {
        // Not a `Trap` value, but the guest's doing all the same, e.g. a call copying more
        // than wasmtime's per-call budget (sized from [limits], see host.rs).
        eprintln!("error: {component} failed: {err:?}");
        return Ok(Outcome::Exit(EXIT_TRAP));
    }
    Err(anyhow::anyhow!("{err:?}")).with_context(|| format!("cannot run {component}"))
}
