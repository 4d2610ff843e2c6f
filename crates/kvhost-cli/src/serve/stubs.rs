//! Stubs for the interfaces kvhost does not provide.
//!
//! A Spin app built with the Spin SDK imports every interface Spin offers (`fermyon:spin/*`,
//! `spin:*`, `wasi:config/store`, ...) even if it uses only key-value storage. Instead of
//! refusing such a component, [`define_stubs`] links each of those interfaces as functions
//! that fail with [`Unprovided`], so the component loads and only a request that calls one
//! fails, with an error naming it.
//!
//! Only whole interfaces that kvhost does not link for real ([`is_provided`]) are stubbed,
//! matched by name and version: a WASI 0.3 release-candidate interface that a component
//! imports beside its 0.3.0 twin (spin-sdk 5.x apps import both) is stubbed, the 0.3.0 one is
//! real. Stubbing a provided interface would shadow the real definitions.

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, LinkerInstance, ResourceType};
use wasmtime::Engine;

/// The WASI packages kvhost links for real (wasmtime's implementations), at 0.2.x and 0.3.x.
const WASI_PACKAGES: [&str; 7] = [
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:http/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
];

/// The key-value interfaces kvhost-wasi serves (every version it has, by prefix).
const KEY_VALUE: [&str; 3] = [
    "wasi:keyvalue/",
    "fermyon:spin/key-value@2.",
    "spin:key-value/key-value@3.",
];

/// Whether kvhost links the import `name` for real: the key-value interfaces, and WASI at a
/// released 0.2.x or 0.3.x version (wasmtime matches those by semver; a pre-release version
/// matches only itself, and kvhost has none).
pub fn is_provided(name: &str) -> bool {
    if KEY_VALUE.iter().any(|prefix| name.starts_with(prefix)) {
        return true;
    }
    let Some((interface, version)) = name.rsplit_once('@') else {
        return false;
    };
    WASI_PACKAGES
        .iter()
        .any(|package| interface.starts_with(package))
        && (version.starts_with("0.2.") || version.starts_with("0.3."))
        && !version.contains('-')
}

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
             provides wasi:keyvalue, Spin's key-value interfaces, wasi:http and the WASI 0.2 \
             and 0.3 interfaces)",
            self.import,
            self.interface()
        )
    }
}

impl std::error::Error for Unprovided {}

/// The host type behind every stubbed resource; no value of it is ever created.
struct StubResource;

/// Links a failing stub for every import of `component` that is not [`is_provided`]; returns
/// the names of the stubbed interfaces.
pub fn define_stubs<T: 'static>(
    linker: &mut Linker<T>,
    component: &Component,
    engine: &Engine,
) -> wasmtime::Result<Vec<String>> {
    let mut stubbed = Vec::new();
    for (name, item) in component.component_type().imports(engine) {
        if is_provided(name) {
            continue;
        }
        match item.ty {
            ComponentItem::ComponentInstance(instance) => {
                let mut linked = linker.instance(name)?;
                for (export, item) in instance.exports(engine) {
                    match item.ty {
                        ComponentItem::ComponentFunc(func) => {
                            let import = format!("{name}#{export}");
                            define_stub(&mut linked, export, func.async_(), import)?;
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
            ComponentItem::ComponentFunc(func) => {
                define_stub(&mut linker.root(), name, func.async_(), name.to_string())?;
            }
            _ => continue,
        }
        stubbed.push(name.to_string());
    }
    Ok(stubbed)
}

/// Defines `name` in `instance` as a function failing with [`Unprovided`] (`import`): a
/// concurrent host function for a WIT `async func`, a plain one otherwise.
fn define_stub<T: 'static>(
    instance: &mut LinkerInstance<'_, T>,
    name: &str,
    is_async: bool,
    import: String,
) -> wasmtime::Result<()> {
    let fail = move || -> wasmtime::Result<()> {
        Err(Unprovided {
            import: import.clone(),
        }
        .into())
    };
    if is_async {
        instance.func_new_concurrent(name, move |_, _, _, _| {
            let failed = fail();
            Box::pin(async move { failed })
        })
    } else {
        instance.func_new(name, move |_, _, _, _| fail())
    }
}

#[cfg(test)]
mod tests {
    use super::is_provided;

    #[test]
    fn provided_is_matched_by_name_and_version() {
        for name in [
            "wasi:cli/environment@0.2.6",
            "wasi:http/types@0.3.0",
            "wasi:keyvalue/store@0.2.0-draft2",
            "fermyon:spin/key-value@2.0.0",
            "spin:key-value/key-value@3.0.0",
        ] {
            assert!(is_provided(name), "{name}");
        }
        for name in [
            "wasi:cli/environment@0.3.0-rc-2026-03-15",
            "wasi:http/types@0.2.0-rc-2023-11-10",
            "wasi:config/store@0.2.0-draft-2024-09-27",
            "wasi:otel/logs@0.2.0-rc.2",
            "spin:variables/variables@3.0.0",
            "fermyon:spin/variables@2.0.0",
            "wasi:cli/environment",
        ] {
            assert!(!is_provided(name), "{name}");
        }
    }
}
