//! `wasi:keyvalue/watcher@0.2.0-draft2`: calling the handlers a `watch-service` component
//! exports (`on-set`, `on-delete`).
//!
//! The host hands the handler the changed bucket as a real `bucket` resource (counted against
//! the instance's handle cap like one from `store.open`; the watched bucket needs no grant,
//! the host chose it); the component owns it from then on. The component's imports are linked as
//! for any other (`add_to_linker_for`), so a handler can read and write that bucket and open
//! others. Link the component with [`crate::add_to_linker_for`] (and WASI), then
//! [`WatcherPre::new`].

use wasmtime::component::{Component, Linker};
use wasmtime::{AsContextMut, Store};

use crate::error::HostError;
use crate::KvView;

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit/keyvalue-0.2.0-draft2",
        world: "wasi:keyvalue/watch-service",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "wasi:keyvalue/store": crate::draft2::generated::wasi::keyvalue::store,
            "wasi:keyvalue/atomics": crate::draft2::generated::wasi::keyvalue::atomics,
            "wasi:keyvalue/batch": crate::draft2::generated::wasi::keyvalue::batch,
        },
        trappable_error_type: {
            "wasi:keyvalue/store.error" => crate::error::HostError,
        },
    });
}

/// The export a `watch-service` component must have.
pub const WATCHER_EXPORT: &str = "wasi:keyvalue/watcher@0.2.0-draft2";

/// A `watch-service` component linked and ready to instantiate.
pub struct WatcherPre<T: 'static> {
    pre: generated::WatchServicePre<T>,
}

/// One instance of a `watch-service` component.
pub struct WatcherInstance {
    instance: generated::WatchService,
}

/// What delivering one change to a handler came to.
#[derive(Debug)]
pub enum Delivered {
    /// The handler returned.
    Done,
    /// The bucket could not be handed over (the instance holds too many handles); the
    /// instance should be replaced.
    NotOpened(String),
}

impl<T: KvView + Send + 'static> WatcherPre<T> {
    /// Links `component` with `linker` (which must hold kvhost-wasi's interfaces and whatever
    /// else the component imports) and checks that it exports [`WATCHER_EXPORT`].
    pub fn new(linker: &Linker<T>, component: &Component) -> wasmtime::Result<Self> {
        let pre = linker.instantiate_pre(component)?;
        Ok(WatcherPre {
            pre: generated::WatchServicePre::new(pre)?,
        })
    }

    /// A new instance in `store`.
    pub async fn instantiate(
        &self,
        store: impl AsContextMut<Data = T>,
    ) -> wasmtime::Result<WatcherInstance>
    where
        T: Send,
    {
        Ok(WatcherInstance {
            instance: self.pre.instantiate_async(store).await?,
        })
    }
}

impl WatcherInstance {
    /// Calls `on-set(bucket, key, value)`, or `on-delete(bucket, key)` when `value` is `None`,
    /// handing `bucket` over in `store`. An `Err` is a trap (or a host failure) of the call.
    pub async fn deliver<T: KvView + Send + 'static>(
        &self,
        store: &mut Store<T>,
        bucket: &kvhost::BucketHandle,
        key: &str,
        value: Option<&[u8]>,
    ) -> wasmtime::Result<Delivered> {
        let resource = match store.data_mut().kv().hand_over_bucket(bucket.clone()) {
            Ok(resource) => resource,
            Err(HostError::Store(err)) => return Ok(Delivered::NotOpened(err.to_string())),
            Err(HostError::TableFull(message)) => return Ok(Delivered::NotOpened(message)),
            Err(HostError::Trap(err)) => return Err(err),
        };
        let watcher = self.instance.wasi_keyvalue_watcher();
        if let Some(value) = value {
            watcher
                .call_on_set(&mut *store, resource, key, value)
                .await?;
        } else {
            watcher.call_on_delete(&mut *store, resource, key).await?;
        }
        Ok(Delivered::Done)
    }
}
