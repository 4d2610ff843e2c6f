//! The two `get-many` result types published under one version,
//! `wasi:keyvalue/batch@0.2.0-draft2`, and how to tell which one a component imports.
//!
//! The Spin SDKs and componentize-py bind `list<tuple<key, option<value>>>`;
//! WebAssembly/wasi-keyvalue's own `main` branch declares `list<option<tuple<key, value>>>`.
//! A linker can hold one definition of the interface, so the shape is chosen per component,
//! from its import's type, before linking (see [`crate::add_to_linker_for`]).

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Type};

/// The import name both shapes share.
const BATCH_DRAFT2: &str = "wasi:keyvalue/batch@0.2.0-draft2";

/// Which `get-many` a linker serves for `wasi:keyvalue/batch@0.2.0-draft2`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GetManyShape {
    /// `result<list<tuple<string, option<list<u8>>>>, error>`: one pair per key, `none` for a
    /// missing value; what the Spin SDKs, componentize-py and most guests bind.
    #[default]
    Sdk,
    /// `result<list<option<tuple<string, list<u8>>>>, error>`: `none` for a missing key;
    /// WebAssembly/wasi-keyvalue's `main` WIT.
    Upstream,
}

impl GetManyShape {
    /// The shape `component` imports; [`GetManyShape::Sdk`] when it does not import
    /// `wasi:keyvalue/batch@0.2.0-draft2` or its `get-many` matches neither shape (linking
    /// then reports the mismatch).
    pub fn imported_by(component: &Component) -> Self {
        let engine = component.engine();
        let ty = component.component_type();
        let Some(batch) = ty.get_import(engine, BATCH_DRAFT2) else {
            return Self::default();
        };
        let ComponentItem::ComponentInstance(batch) = batch.ty else {
            return Self::default();
        };
        let Some(get_many) = batch.get_export(engine, "get-many") else {
            return Self::default();
        };
        let ComponentItem::ComponentFunc(get_many) = get_many.ty else {
            return Self::default();
        };
        let result = get_many.results().next();
        match result {
            Some(Type::Result(result)) => match result.ok() {
                Some(Type::List(list)) if matches!(list.ty(), Type::Option(_)) => Self::Upstream,
                _ => Self::default(),
            },
            _ => Self::default(),
        }
    }
}
