//! Stubs for the interfaces kvhost does not provide.
//!
//! A Spin app built with the Spin SDK imports every interface Spin offers (`fermyon:spin/*`,
//! `spin:*`, `wasi:config/store`, ...) even if it uses only key-value storage. Instead of
//! refusing such a component, [`define_stubs`] links each of those interfaces as functions
//! that fail with [`Unprovided`], so the component loads and only a request that calls one
//! fails, with an error naming it.
//!
//! Only whole interfaces outside [`PROVIDED`] are stubbed. An import inside a provided
//! package that kvhost lacks (another version, say) still fails at start-up, with wasmtime's
//! message saying what did not match: linking a stub there would shadow the real definitions.

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, ResourceType};
use wasmtime::Engine;

/// The interfaces kvhost links for real: whole packages (`package/`, any interface and
/// version) and Spin's key-value interface (kvhost-wasi serves it on the same buckets).
pub const PROVIDED: [&str; 9] = [
    "fermyon:spin/key-value@2.",
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:http/",
    "wasi:io/",
    "wasi:keyvalue/",
    "wasi:random/",
    "wasi:sockets/",
];

/// The error of a call into a stub: the component called `import`
/// (`interface#function`), which kvhost does not provide.
#[derive(Debug)]
pub struct Unprovided {
    /// The full name of the import called, e.g. `fermyon:spin/variables@2.0.0#get`.
    pub import: String,
}

impl Unprovided {
    /// The interface part of the import's name.
    pub fn interface(&self) -> &str {
        self.import.split('#').next().unwrap_or(&self.import)
    }
}

impl std::fmt::Display for Unprovided {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the component called `{}`, but kvhost does not provide the interface {} (it \
             provides wasi:keyvalue, fermyon:spin/key-value, wasi:http and the WASI 0.2 \
             interfaces)",
            self.import,
            self.interface()
        )
    }
}

impl std::error::Error for Unprovided {}

/// The host type behind every stubbed resource; no value of it is ever created.
struct StubResource;

/// Links a failing stub for every import of `component` outside [`PROVIDED`]; returns the
/// names of the stubbed interfaces.
pub fn define_stubs<T: 'static>(
    linker: &mut Linker<T>,
    component: &Component,
    engine: &Engine,
) -> wasmtime::Result<Vec<String>> {
    let mut stubbed = Vec::new();
    for (name, item) in component.component_type().imports(engine) {
        if PROVIDED.iter().any(|family| name.starts_with(family)) {
            continue;
        }
        match item.ty {
            ComponentItem::ComponentInstance(instance) => {
                let mut linked = linker.instance(name)?;
                for (export, item) in instance.exports(engine) {
                    match item.ty {
                        ComponentItem::ComponentFunc(_) => {
                            let import = format!("{name}#{export}");
                            linked.func_new(export, move |_, _, _, _| {
                                Err(Unprovided {
                                    import: import.clone(),
                                }
                                .into())
                            })?;
                        }
                        ComponentItem::Resource(_) => {
                            linked.resource(
                                export,
                                ResourceType::host::<StubResource>(),
                                |_, _| Ok(()),
                            )?;
                        }
                        _ => {}
                    }
                }
            }
            ComponentItem::ComponentFunc(_) => {
                let import = name.to_string();
                linker.root().func_new(name, move |_, _, _, _| {
                    Err(Unprovided {
                        import: import.clone(),
                    }
                    .into())
                })?;
            }
            _ => continue,
        }
        stubbed.push(name.to_string());
    }
    Ok(stubbed)
}
