//! The `Store` of one served component instance: its WASI, HTTP and key-value state, the
//! memory cap and the epoch callback that keeps instances fair and enforces deadlines.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::{Engine, Store};
use wasmtime_wasi::WasiCtx;

use crate::host::{HostState, MemoryBudget, Prepared};
use crate::metrics::Metrics;

/// Makes the stores of served instances; shared by every request and worker.
pub struct Instances {
    /// Buckets, grants and the compiled component.
    pub prepared: Prepared,
    /// `--max-memory`, per instance.
    pub max_memory: usize,
    /// `--env` entries.
    pub env: Vec<(String, String)>,
    /// Counts the instances started.
    pub metrics: Arc<Metrics>,
    /// `--max-total-memory`, shared by every instance.
    pub budget: Arc<MemoryBudget>,
}

impl Instances {
    /// A store for one instance on `engine`. It yields to other instances at every epoch
    /// tick; with a `deadline` (an instance that serves one request) it traps once the
    /// deadline has passed. A reused instance has none: its requests' deadlines are enforced
    /// by the worker that runs it (see `p3`).
    pub fn store(&self, engine: &Engine, deadline: Option<Instant>) -> Store<HostState> {
        self.metrics.instances.fetch_add(1, Ordering::Relaxed);
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout().inherit_stderr();
        for (name, value) in &self.env {
            wasi.env(name, value);
        }
        let mut store = self.prepared.store(
            engine,
            wasi.build(),
            self.max_memory,
            Some(Arc::clone(&self.budget)),
        );
        crate::engine::yield_each_tick(&mut store, deadline);
        store
    }
}
