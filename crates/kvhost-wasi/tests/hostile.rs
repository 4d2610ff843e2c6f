//! Hostile guests: a small WAT component (tests/hostile/) that misuses `wasi:keyvalue` on
//! purpose. Each misuse must come back as `other` or trap only the offending instance, and
//! the host must go on serving every other instance.

use std::sync::Arc;

use kvhost::backend::memory::MemoryBucket;
use kvhost::{Grants, Limits, Registry};
use kvhost_wasi::KvCtx;
use wasmtime::component::{Component, Instance, Linker, ResourceTable};
use wasmtime::{Engine, Store};

mod support;
use support::Host;

/// Outcome codes returned by the guest's exports (see hostile.wit).
const OK: u32 = 0;
const OTHER: u32 = 3;

/// The hostile component: the WAT module plus its WIT world.
fn component_bytes() -> Vec<u8> {
    support::wat_component(
        "../../wit/keyvalue-0.2.0-draft2",
        "tests/hostile/hostile.wit",
        "hostile",
        "tests/hostile/hostile.wat",
    )
}

struct Fixture {
    engine: Engine,
    component: Component,
    linker: Linker<Host>,
    registry: Arc<Registry>,
}

impl Fixture {
    fn new() -> Fixture {
        let engine = Engine::default();
        let component = Component::new(&engine, component_bytes()).unwrap();
        let mut linker = Linker::new(&engine);
        kvhost_wasi::add_to_linker(&mut linker).unwrap();
        let mut registry = Registry::new(Limits::default());
        registry.insert("default", Arc::new(MemoryBucket::new()));
        Fixture {
            engine,
            component,
            linker,
            registry: Arc::new(registry),
        }
    }

    async fn instance(&self) -> (Store<Host>, Instance) {
        let host = Host {
            table: ResourceTable::new(),
            kv: KvCtx::new(self.registry.clone(), Grants::All),
        };
        let mut store = Store::new(&self.engine, host);
        let instance = self
            .linker
            .instantiate_async(&mut store, &self.component)
            .await
            .unwrap();
        (store, instance)
    }
}

async fn call(store: &mut Store<Host>, instance: &Instance, export: &str) -> wasmtime::Result<u32> {
    let func = instance
        .get_typed_func::<(), (u32,)>(&mut *store, export)
        .unwrap();
    let (outcome,) = func.call_async(&mut *store, ()).await?;
    Ok(outcome)
}

#[tokio::test]
async fn a_10_mb_key_is_other_and_the_instance_goes_on() {
    let fixture = Fixture::new();
    let (mut store, instance) = fixture.instance().await;
    assert_eq!(
        call(&mut store, &instance, "huge-key").await.unwrap(),
        OTHER
    );
    assert_eq!(call(&mut store, &instance, "ping").await.unwrap(), OK);
}

#[tokio::test]
async fn a_cursor_that_is_not_ours_is_other() {
    let fixture = Fixture::new();
    let (mut store, instance) = fixture.instance().await;
    let outcome = call(&mut store, &instance, "foreign-cursor").await.unwrap();
    assert_eq!(outcome, OTHER);
    assert_eq!(call(&mut store, &instance, "ping").await.unwrap(), OK);
}

#[tokio::test]
async fn a_dropped_bucket_handle_traps_only_its_instance() {
    let fixture = Fixture::new();
    let (mut bystander, bystander_instance) = fixture.instance().await;
    let (mut store, instance) = fixture.instance().await;
    let trap = call(&mut store, &instance, "use-after-drop")
        .await
        .expect_err("using a dropped handle must trap");
    assert!(format!("{trap:?}").contains("handle"), "{trap:?}");
    // Another instance created before, and one created after, still work.
    let ping = call(&mut bystander, &bystander_instance, "ping").await;
    assert_eq!(ping.unwrap(), OK);
    let (mut fresh, fresh_instance) = fixture.instance().await;
    assert_eq!(call(&mut fresh, &fresh_instance, "ping").await.unwrap(), OK);
}

#[tokio::test]
async fn a_hundred_thousand_opens_hit_the_handle_cap() {
    let fixture = Fixture::new();
    let (mut store, instance) = fixture.instance().await;
    let opened = call(&mut store, &instance, "many-opens").await.unwrap();
    assert_eq!(u64::from(opened), Limits::default().max_open_buckets as u64);
    assert_eq!(
        store.data().kv.open_buckets(),
        0,
        "the guest dropped them all"
    );
    // The cap is per instance and released handles make room again.
    assert_eq!(call(&mut store, &instance, "ping").await.unwrap(), OK);
    let (mut other, other_instance) = fixture.instance().await;
    assert_eq!(call(&mut other, &other_instance, "ping").await.unwrap(), OK);
}

#[tokio::test]
async fn a_huge_set_many_is_other_and_writes_nothing() {
    let fixture = Fixture::new();
    let (mut store, instance) = fixture.instance().await;
    let outcome = call(&mut store, &instance, "huge-set-many").await.unwrap();
    assert_eq!(outcome, OTHER);
    let bucket = fixture.registry.open("default", &Grants::All).unwrap();
    assert_eq!(bucket.get("k").await.unwrap(), None);
    assert_eq!(call(&mut store, &instance, "ping").await.unwrap(), OK);
}
