//! `wasi:keyvalue@0.2.0-draft`: the earlier draft, served by the same buckets.
//!
//! It differs from draft2 in three places, each adapted here:
//! - `list-keys` cursors are `u64`: each stands for one of our cursor strings, remembered per
//!   client (in its [`KvCtx`](crate::KvCtx)); `Some(0)` starts from the beginning;
//! - `increment` takes and returns `u64`: a delta above `i64::MAX` or a result below zero is
//!   `other(...)` (counters are signed 64-bit decimals, as in Redis);
//! - `get-many` returns `option<tuple<key, value>>` per key, `none` for a missing key.
//!   There is no CAS in this draft.

use wasmtime::component::Resource;

use crate::ctx::{BucketResource, KvCtxView};
use crate::error::HostError;

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit/keyvalue-0.2.0-draft",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::ctx::BucketResource,
        },
        trappable_error_type: {
            "wasi:keyvalue/store.error" => crate::error::HostError,
        },
    });
}

use generated::wasi::keyvalue::{atomics, batch, store};

type Result<T, E = HostError> = std::result::Result<T, E>;

/// Adds the three draft interfaces to `linker`.
pub fn add_to_linker<T: crate::KvView + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, crate::HasKv>(linker, crate::view::<T>)?;
    atomics::add_to_linker::<T, crate::HasKv>(linker, crate::view::<T>)?;
    batch::add_to_linker::<T, crate::HasKv>(linker, crate::view::<T>)?;
    Ok(())
}

crate::shared::store_error_fn!(store);

impl store::Host for KvCtxView<'_> {
    async fn open(&mut self, identifier: String) -> Result<Resource<BucketResource>> {
        self.open_bucket(&identifier)
    }

    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<store::Error> {
        err.into_guest(store_error)
    }
}

impl store::HostBucket for KvCtxView<'_> {
    crate::shared::bucket_methods!();

    async fn list_keys(
        &mut self,
        bucket: Resource<BucketResource>,
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse> {
        let handle = self.bucket(&bucket)?;
        let cursor = match cursor {
            Some(id) => self.ctx.draft_cursors().resolve(id)?,
            None => None,
        };
        let page = handle.list_keys(cursor.as_deref()).await?;
        let cursor = page
            .cursor
            .map(|next| self.ctx.draft_cursors().remember(next));
        Ok(store::KeyResponse {
            keys: page.keys,
            cursor,
        })
    }
}

impl atomics::Host for KvCtxView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<BucketResource>,
        key: String,
        delta: u64,
    ) -> Result<u64> {
        let delta = i64::try_from(delta).map_err(|_| {
            kvhost::Error::other(format!(
                "increment by {delta} is out of range: counters are signed 64-bit, so the \
                 largest delta is {}",
                i64::MAX
            ))
        })?;
        let value = self.bucket(&bucket)?.increment(key, delta).await?;
        u64::try_from(value).map_err(|_| {
            HostError::Store(kvhost::Error::other(format!(
                "the counter is now {value}, which the 0.2.0-draft interface cannot return \
                 (it returns u64); use wasi:keyvalue@0.2.0-draft2 for signed counters"
            )))
        })
    }
}

impl batch::Host for KvCtxView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<BucketResource>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>> {
        crate::shared::get_many_present(self, &bucket, keys).await
    }

    crate::shared::batch_write_methods!();
}
