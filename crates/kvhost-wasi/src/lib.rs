//! `wasi:keyvalue` for any wasmtime host, backed by kvhost buckets.
//!
//! This crate is the boundary between WebAssembly components and [`kvhost`]'s buckets. It
//! serves both `wasi:keyvalue` versions guests are built against, and Spin's own key-value
//! interfaces (`fermyon:spin/key-value@2.0.0`, what spin-sdk 3.x's `key_value` calls, and the
//! async `spin:key-value/key-value@3.0.0` of spin-sdk 4.x and 5.x), on the same buckets:
//!
//! | package | cursor | `increment` | `get-many` result | CAS |
//! |---|---|---|---|---|
//! | `wasi:keyvalue@0.2.0-draft2` | `option<string>` | `s64` | `list<tuple<key, option<value>>>` (Spin SDKs') or `list<option<tuple<key, value>>>` (upstream `main`'s): see [`GetManyShape`] | yes |
//! | `wasi:keyvalue@0.2.0-draft` | `option<u64>` | `u64` | `list<option<tuple<key, value>>>` | no |
//! | `fermyon:spin/key-value@2.0.0` | none: `get-keys` returns all (at most 100,000) | - | - | no |
//! | `spin:key-value/key-value@3.0.0` (async) | none: `get-keys` streams every key, page by page | - | - | no |
//!
//! [`watch`] calls the handlers of a `watch-service` component (`wasi:keyvalue/watcher`),
//! handing it the changed bucket as a real `bucket` resource.
//!
//! # Semantics at the boundary
//! - A client is one component instance (one wasmtime `Store`, one [`KvCtx`]). It always reads
//!   its own writes.
//! - `open` of a name the registry does not know is `no-such-store`; of a known name that the
//!   [`kvhost::Grants`] do not cover, `access-denied`.
//! - Limits ([`kvhost::Limits`]) are checked before any I/O; a violation, a backend failure or
//!   a bad cursor is `other(message)`. Nothing a guest passes panics the host.
//! - Open bucket and CAS handles per instance are capped (`limits.max_open_buckets`,
//!   `limits.max_open_cas_handles`); past the cap, `open` / `cas.new` return `other`
//!   (`store-table-full` for Spin's `spin:key-value@3.0.0`, which has that variant).
//! - `swap` consumes its CAS handle; a failed swap returns a fresh handle holding the latest
//!   value, ready for a retry.
//!
//! # Embedding
//! Keep a [`KvCtx`] and a [`ResourceTable`](wasmtime::component::ResourceTable) in your store
//! data, implement [`KvView`], and call [`add_to_linker_for`] (every interface, `get-many` in
//! the shape the component imports) or [`add_to_linker`] (every interface, the SDKs'
//! `get-many`). Host calls are async, so instantiate and call with the `*_async` methods.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use kvhost::{Grants, Registry};
//! use kvhost_wasi::{KvCtx, KvCtxView, KvView};
//! use wasmtime::component::{Component, Linker, ResourceTable};
//! use wasmtime::{Config, Engine, Store};
//!
//! /// The embedder's per-instance state.
//! struct Host {
//!     table: ResourceTable,
//!     kv: KvCtx,
//! }
//!
//! impl KvView for Host {
//!     fn kv(&mut self) -> KvCtxView<'_> {
//!         KvCtxView { ctx: &mut self.kv, table: &mut self.table }
//!     }
//! }
//!
//! # fn main() -> wasmtime::Result<()> {
//! # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # runtime.block_on(async {
//! // One registry for the process: an in-memory bucket named "default" here; usually
//! // `Registry::from_config(&kvhost::Config::load(path)?)`.
//! let mut registry = Registry::new(kvhost::Limits::default());
//! registry.insert("default", Arc::new(kvhost::backend::memory::MemoryBucket::new()));
//! let registry = Arc::new(registry);
//!
//! let config = Config::new();
//! let engine = Engine::new(&config)?;
//! let mut linker = Linker::<Host>::new(&engine);
//! kvhost_wasi::add_to_linker(&mut linker)?;
//!
//! // A component importing wasi:keyvalue that exports `greet`, which stores "greeting".
//! let component = Component::from_file(&engine, "greeter.wasm")?;
//! let mut store = Store::new(
//!     &engine,
//!     Host { table: ResourceTable::new(), kv: KvCtx::new(registry.clone(), Grants::All) },
//! );
//! let instance = linker.instantiate_async(&mut store, &component).await?;
//! let greet = instance.get_typed_func::<(), ()>(&mut store, "greet")?;
//! greet.call_async(&mut store, ()).await?;
//!
//! // The host sees what the guest wrote.
//! let bucket = registry.open("default", &Grants::All)?;
//! assert_eq!(bucket.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
//! # Ok::<_, wasmtime::Error>(())
//! # })
//! # }
//! ```
//!
//! # Linking one interface
//! Each package has a module of its own whose `add_to_linker` adds just that package, for a
//! host that offers, say, only `wasi:keyvalue@0.2.0-draft2` (and leaves a component importing
//! anything else to fail to link):
//!
//! ```
//! # use kvhost_wasi::{KvCtxView, KvView};
//! # struct Host { table: wasmtime::component::ResourceTable, kv: kvhost_wasi::KvCtx }
//! # impl KvView for Host {
//! #     fn kv(&mut self) -> KvCtxView<'_> {
//! #         KvCtxView { ctx: &mut self.kv, table: &mut self.table }
//! #     }
//! # }
//! # fn main() -> wasmtime::Result<()> {
//! let engine = wasmtime::Engine::default();
//! let mut linker = wasmtime::component::Linker::<Host>::new(&engine);
//! kvhost_wasi::draft2::add_to_linker(&mut linker, kvhost_wasi::GetManyShape::Sdk)?;
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//! - [`draft2`], [`draft`], [`spin`], [`spin3`]: one package each, its host traits and its
//!   `add_to_linker`.
//! - `ctx`: [`KvCtx`] (a client's open handles and caps), [`KvCtxView`] and [`KvView`].
//! - `get_many`: [`GetManyShape`], the two `get-many` types of draft2.
//! - `error`: how a failed call becomes the interface's `error` or a trap.
//! - `shared`: the host methods written once for several packages.

#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod ctx;
pub mod draft;
pub mod draft2;
mod error;
mod get_many;
mod shared;
pub mod spin;
pub mod spin3;
pub mod watch;

pub use ctx::{KvCtx, KvCtxView, KvView, DRAFT_CURSORS};
pub use get_many::GetManyShape;

/// Adds `wasi:keyvalue/{store,atomics,batch}` at both `@0.2.0-draft2` and `@0.2.0-draft`,
/// `fermyon:spin/key-value@2.0.0` and `spin:key-value/key-value@3.0.0` to `linker`, with
/// draft2's `get-many` in the SDKs' shape ([`GetManyShape::Sdk`]). Components import
/// whichever they were built against; [`add_to_linker_for`] also serves upstream's
/// `get-many` to a component that imports it.
///
/// Spin's `@3.0.0` interface is asynchronous: its functions can only be called by a guest
/// when the engine has the component-model async features enabled
/// (`Config::wasm_component_model_async`).
pub fn add_to_linker<T: KvView + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    link_all(linker, GetManyShape::Sdk)
}

/// As [`add_to_linker`], with draft2's `get-many` in the shape `component` imports
/// ([`GetManyShape::imported_by`]): link a linker made this way with `component` only.
pub fn add_to_linker_for<T: KvView + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    component: &wasmtime::component::Component,
) -> wasmtime::Result<()> {
    link_all(linker, GetManyShape::imported_by(component))
}

fn link_all<T: KvView + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    shape: GetManyShape,
) -> wasmtime::Result<()> {
    draft2::add_to_linker(linker, shape)?;
    draft::add_to_linker(linker)?;
    spin::add_to_linker(linker)?;
    spin3::add_to_linker(linker)?;
    Ok(())
}

/// Marks the data the generated bindings borrow from a store: a [`KvCtxView`].
struct HasKv;

impl wasmtime::component::HasData for HasKv {
    type Data<'a> = KvCtxView<'a>;
}

fn view<T: KvView>(data: &mut T) -> KvCtxView<'_> {
    data.kv()
}
