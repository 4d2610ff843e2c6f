//! The minimal HTTP guest, guests/hello/hello.wat, made into a component with wit-component
//! against guests/hello/wit (which vendors wasi:http 0.2.12).

use std::path::PathBuf;

/// Builds the hello component into target/guests/hello.wasm and returns its path.
pub fn hello_component() -> PathBuf {
    let root = super::repo_root();
    let guest = root.join("guests/hello");
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_dir(guest.join("wit"))
        .expect("guests/hello/wit parses");
    let world = resolve
        .select_world(&[package], Some("hello"))
        .expect("world hello");
    let mut module = wat::parse_file(guest.join("hello.wat")).expect("hello.wat parses");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("metadata embeds");
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("hello.wat matches its world")
        .validate(true)
        .encode()
        .expect("the component encodes");
    let dir = root.join("target/guests");
    std::fs::create_dir_all(&dir).expect("target/guests");
    let path = dir.join("hello.wasm");
    // Written whole under a temporary name: tests in other processes may read it meanwhile.
    let temp = dir.join(format!("hello.wasm.{}", std::process::id()));
    std::fs::write(&temp, component).expect("hello.wasm written");
    std::fs::rename(&temp, &path).expect("hello.wasm in place");
    path
}
