//! Both `get-many` shapes published as `wasi:keyvalue/batch@0.2.0-draft2`: a WAT guest
//! (tests/get_many/) made once with the SDKs' WIT and once with upstream's, each served the
//! shape it imports, with the same values.

use std::sync::Arc;

use kvhost::backend::memory::MemoryBucket;
use kvhost::{Bucket, Grants, Limits, Registry};
use kvhost_wasi::{GetManyShape, KvCtx};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};

mod support;
use support::Host;

/// The SDKs' result: one pair per key, `None` for a missing value.
type SdkPairs = Vec<(String, Option<Vec<u8>>)>;
/// Upstream's result: `None` for a missing key.
type UpstreamPairs = Vec<Option<(String, Vec<u8>)>>;

/// The pass-through guest made with the world in `tests/get_many/{shape}.wit`; the upstream
/// world resolves against the upstream batch WIT.
fn guest(engine: &Engine, shape: GetManyShape) -> Component {
    let (package, wit, world) = match shape {
        GetManyShape::Sdk => ("../../wit/keyvalue-0.2.0-draft2", "sdk.wit", "sdk"),
        GetManyShape::Upstream => (
            "../../wit/keyvalue-0.2.0-draft2-upstream-batch",
            "upstream.wit",
            "upstream",
        ),
    };
    let bytes = support::wat_component(
        package,
        &format!("tests/get_many/{wit}"),
        world,
        "tests/get_many/get-many.wat",
    );
    Component::new(engine, bytes).unwrap()
}

/// A registry whose bucket "default" holds "a" = "1" and "b" = [0, 255] (not UTF-8).
async fn registry() -> Arc<Registry> {
    let bucket = MemoryBucket::new();
    bucket.set("a".into(), b"1".to_vec()).await.unwrap();
    bucket.set("b".into(), vec![0, 255]).await.unwrap();
    let mut registry = Registry::new(Limits::default());
    registry.insert("default", Arc::new(bucket));
    Arc::new(registry)
}

fn store(engine: &Engine, registry: Arc<Registry>) -> Store<Host> {
    let kv = KvCtx::new(registry, Grants::All);
    Store::new(
        engine,
        Host {
            table: ResourceTable::new(),
            kv,
        },
    )
}

/// The keys every test asks for: present, missing, present.
fn keys() -> Vec<String> {
    ["a", "missing", "b"].map(String::from).to_vec()
}

/// What the guest's `get-many` export returns for [`keys`], linked by `linker`.
async fn call_get_many<R>(engine: &Engine, linker: &Linker<Host>, component: &Component) -> R
where
    R: wasmtime::component::ComponentType + wasmtime::component::Lift + Send + Sync + 'static,
{
    let mut store = store(engine, registry().await);
    let instance = linker
        .instantiate_async(&mut store, component)
        .await
        .unwrap();
    let get_many = instance
        .get_typed_func::<(Vec<String>,), (R,)>(&mut store, "get-many")
        .unwrap();
    let (found,) = get_many.call_async(&mut store, (keys(),)).await.unwrap();
    found
}

#[test]
fn the_shape_is_read_from_the_components_import() {
    let engine = Engine::default();
    let sdk = guest(&engine, GetManyShape::Sdk);
    let upstream = guest(&engine, GetManyShape::Upstream);
    assert_eq!(GetManyShape::imported_by(&sdk), GetManyShape::Sdk);
    assert_eq!(GetManyShape::imported_by(&upstream), GetManyShape::Upstream);
}

#[tokio::test]
async fn the_sdk_shape_gets_a_pair_per_key() {
    let engine = Engine::default();
    let component = guest(&engine, GetManyShape::Sdk);
    let mut linker = Linker::new(&engine);
    kvhost_wasi::add_to_linker_for(&mut linker, &component).unwrap();
    let found: SdkPairs = call_get_many(&engine, &linker, &component).await;
    let expected: SdkPairs = vec![
        ("a".into(), Some(b"1".to_vec())),
        ("missing".into(), None),
        ("b".into(), Some(vec![0, 255])),
    ];
    assert_eq!(found, expected);
}

#[tokio::test]
async fn the_upstream_shape_gets_none_for_a_missing_key() {
    let engine = Engine::default();
    let component = guest(&engine, GetManyShape::Upstream);
    // Linking draft2 alone (partial linking) is enough for a guest that imports only it.
    let mut linker = Linker::new(&engine);
    let shape = GetManyShape::imported_by(&component);
    kvhost_wasi::draft2::add_to_linker(&mut linker, shape).unwrap();
    let found: UpstreamPairs = call_get_many(&engine, &linker, &component).await;
    let expected: UpstreamPairs = vec![
        Some(("a".into(), b"1".to_vec())),
        None,
        Some(("b".into(), vec![0, 255])),
    ];
    assert_eq!(found, expected);
}

#[tokio::test]
async fn a_linker_with_one_shape_refuses_a_component_with_the_other() {
    let engine = Engine::default();
    for (linked, component) in [
        (GetManyShape::Sdk, guest(&engine, GetManyShape::Upstream)),
        (GetManyShape::Upstream, guest(&engine, GetManyShape::Sdk)),
    ] {
        let mut linker = Linker::new(&engine);
        kvhost_wasi::draft2::add_to_linker(&mut linker, linked).unwrap();
        let mut store = store(&engine, registry().await);
        match linker.instantiate_async(&mut store, &component).await {
            Ok(_) => panic!("a get-many of the other shape ({linked:?} linked) must not link"),
            Err(err) => assert!(format!("{err:?}").contains("get-many"), "{err:?}"),
        }
    }
}
