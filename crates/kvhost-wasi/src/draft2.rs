//! `wasi:keyvalue@0.2.0-draft2`: `store`, `atomics` (increment, CAS resources) and `batch`,
//! whose `get-many` comes in two shapes ([`GetManyShape`]).
//!
//! Every function is a thin adapter: find the resource, call the [`kvhost::BucketHandle`]
//! (which checks limits before any I/O), and keep the client's handle counts in step with the
//! resource table.

use kvhost::Swap;
use wasmtime::component::Resource;

use crate::ctx::{BucketResource, CasResource, KvCtxView};
use crate::error::HostError;
use crate::GetManyShape;

pub(crate) mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit/keyvalue-0.2.0-draft2",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::ctx::BucketResource,
            "wasi:keyvalue/atomics.cas": crate::ctx::CasResource,
        },
        trappable_error_type: {
            "wasi:keyvalue/store.error" => crate::error::HostError,
        },
    });
}

/// `batch` with upstream's `get-many` (see [`GetManyShape`]); `store` is the one above.
mod upstream {
    wasmtime::component::bindgen!({
        path: "../../wit/keyvalue-0.2.0-draft2-upstream-batch",
        world: "wasi:keyvalue/upstream-batch",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store": super::generated::wasi::keyvalue::store,
        },
        trappable_error_type: {
            "wasi:keyvalue/store.error" => crate::error::HostError,
        },
    });
}

use generated::wasi::keyvalue::{atomics, batch, store};
use upstream::wasi::keyvalue::batch as upstream_batch;

type Result<T, E = HostError> = std::result::Result<T, E>;

/// Adds `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2` to `linker`, with `batch`'s
/// `get-many` in `shape` ([`GetManyShape::imported_by`] tells a component's).
pub fn add_to_linker<T: crate::KvView + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    shape: GetManyShape,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, crate::HasKv>(linker, crate::view::<T>)?;
    atomics::add_to_linker::<T, crate::HasKv>(linker, crate::view::<T>)?;
    match shape {
        GetManyShape::Sdk => batch::add_to_linker::<T, crate::HasKv>(linker, crate::view::<T>),
        GetManyShape::Upstream => {
            upstream_batch::add_to_linker::<T, crate::HasKv>(linker, crate::view::<T>)
        }
    }
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
        cursor: Option<String>,
    ) -> Result<store::KeyResponse> {
        let page = self.bucket(&bucket)?.list_keys(cursor.as_deref()).await?;
        Ok(store::KeyResponse {
            keys: page.keys,
            cursor: page.cursor,
        })
    }
}

impl atomics::Host for KvCtxView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<BucketResource>,
        key: String,
        delta: i64,
    ) -> Result<i64> {
        Ok(self.bucket(&bucket)?.increment(key, delta).await?)
    }

    async fn swap(
        &mut self,
        cas: Resource<CasResource>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        // `swap` consumes the handle: whatever happens next, this one is gone.
        let CasResource { bucket, token } = self.take_cas(cas)?;
        let failed = match bucket.cas_swap(token, value).await {
            Ok(Swap::Swapped) => return Ok(Ok(())),
            // Cannot exceed the cap: the handle taken just above made room.
            Ok(Swap::Stale(fresh)) => match self.push_cas(CasResource {
                bucket,
                token: fresh,
            }) {
                Ok(fresh) => atomics::CasError::CasFailed(fresh),
                Err(err) => atomics::CasError::StoreError(err.into_guest(store_error)?),
            },
            Err(err) => atomics::CasError::StoreError(store_error(err)),
        };
        Ok(Err(failed))
    }
}

impl atomics::HostCas for KvCtxView<'_> {
    async fn new(
        &mut self,
        bucket: Resource<BucketResource>,
        key: String,
    ) -> Result<Resource<CasResource>> {
        let bucket = self.bucket(&bucket)?;
        let token = bucket.cas_begin(key).await?;
        self.push_cas(CasResource { bucket, token })
    }

    async fn current(&mut self, cas: Resource<CasResource>) -> Result<Option<Vec<u8>>> {
        Ok(self.table.get(&cas)?.token.current().map(<[u8]>::to_vec))
    }

    async fn drop(&mut self, cas: Resource<CasResource>) -> wasmtime::Result<()> {
        self.take_cas(cas).map(drop)
    }
}

impl batch::Host for KvCtxView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<BucketResource>,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        Ok(self.bucket(&bucket)?.get_many(keys).await?)
    }

    crate::shared::batch_write_methods!();
}

impl upstream_batch::Host for KvCtxView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<BucketResource>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>> {
        crate::shared::get_many_present(self, &bucket, keys).await
    }

    crate::shared::batch_write_methods!();
}
