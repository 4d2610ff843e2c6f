//! What the WAT-guest tests share: the host state they link against and how a WAT module
//! plus a WIT world becomes a component.

use std::path::Path;

use kvhost_wasi::{KvCtx, KvCtxView, KvView};
use wasmtime::component::ResourceTable;

/// A test host's per-instance state.
pub struct Host {
    pub table: ResourceTable,
    pub kv: KvCtx,
}

impl KvView for Host {
    fn kv(&mut self) -> KvCtxView<'_> {
        KvCtxView {
            ctx: &mut self.kv,
            table: &mut self.table,
        }
    }
}

/// The component made by wit-component from the WAT module `wat` and the world `world` of
/// the WIT file `wit`, whose imports resolve against the WIT package in `package_dir`
/// (paths relative to this crate).
pub fn wat_component(package_dir: &str, wit: &str, world: &str, wat: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut resolve = wit_parser::Resolve::default();
    resolve
        .push_dir(dir.join(package_dir))
        .expect("the vendored WIT package parses");
    let text = std::fs::read_to_string(dir.join(wit)).unwrap();
    let package = resolve.push_str(wit, &text).unwrap();
    let world = resolve.select_world(&[package], Some(world)).unwrap();
    let mut module = wat::parse_file(dir.join(wat)).unwrap();
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap()
}
