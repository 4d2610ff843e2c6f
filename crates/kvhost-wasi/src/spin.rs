//! `fermyon:spin/key-value@2.0.0`: Spin's own key-value interface (what the Spin SDKs' `key_value`
//! modules call), served on the same buckets as `wasi:keyvalue`.
//!
//! A Spin `store` is a bucket handle: `open(label)` opens the bucket named `label` with the
//! same grants and handle cap as `wasi:keyvalue`'s `open`. `get-keys` has no cursor, so it
//! walks the bucket's pages and returns every key, up to [`GET_KEYS_MAX`] (beyond that it
//! fails with `other`, pointing at `wasi:keyvalue`'s paged `list-keys`).

use wasmtime::component::Resource;

use crate::ctx::{BucketResource, KvCtxView};
use crate::error::HostError;

/// Most keys one `get-keys` returns; a bucket with more is an error, not a huge allocation.
pub const GET_KEYS_MAX: usize = 100_000;

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit/fermyon-spin-2.0.0",
        world: "fermyon:spin/key-value-imports",
        imports: { default: async | trappable },
        with: {
            "fermyon:spin/key-value.store": crate::ctx::BucketResource,
        },
        trappable_error_type: {
            "fermyon:spin/key-value.error" => crate::error::HostError,
        },
    });
}

use generated::fermyon::spin::key_value;

type Result<T, E = HostError> = std::result::Result<T, E>;

/// Adds `fermyon:spin/key-value@2.0.0` to `linker`.
pub fn add_to_linker<T: crate::KvView + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    key_value::add_to_linker::<T, crate::HasKv>(linker, crate::view::<T>)
}

crate::shared::store_error_fn!(key_value);

impl key_value::Host for KvCtxView<'_> {
    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<key_value::Error> {
        err.into_guest(store_error)
    }
}

impl key_value::HostStore for KvCtxView<'_> {
    crate::shared::bucket_methods!();

    async fn open(&mut self, label: String) -> Result<Resource<BucketResource>> {
        self.open_bucket(&label)
    }

    async fn get_keys(&mut self, bucket: Resource<BucketResource>) -> Result<Vec<String>> {
        let bucket = self.bucket(&bucket)?;
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = bucket.list_keys(cursor.as_deref()).await?;
            keys.extend(page.keys);
            if keys.len() > GET_KEYS_MAX {
                return Err(kvhost::Error::other(format!(
                    "bucket {:?} has more than {GET_KEYS_MAX} keys, too many for get-keys; \
                     page through them with wasi:keyvalue's list-keys",
                    bucket.name()
                ))
                .into());
            }
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(keys),
            }
        }
    }
}
