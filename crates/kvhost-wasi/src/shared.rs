//! Host methods whose signatures and bodies are identical in `wasi:keyvalue@0.2.0-draft2`,
//! `@0.2.0-draft` and Spin's `fermyon:spin/key-value@2.0.0` (`get`, `set`, `delete`,
//! `exists`, dropping a handle). Each interface generates distinct traits, so the shared
//! bodies are written once here as macros and expanded inside each trait impl (where
//! `Result`, `Resource` and `BucketResource` resolve to that module's names).

use wasmtime::component::Resource;

use crate::ctx::{BucketResource, KvCtxView};
use crate::error::HostError;

/// `fn store_error`: a [`kvhost::Error`] as the `Error` variant of the interface module
/// `$module` (`store` for the drafts, `key_value` for Spin's interface).
macro_rules! store_error_fn {
    ($module:ident) => {
        fn store_error(err: kvhost::Error) -> $module::Error {
            match err {
                kvhost::Error::NoSuchStore => $module::Error::NoSuchStore,
                kvhost::Error::AccessDenied => $module::Error::AccessDenied,
                kvhost::Error::Other(message) => $module::Error::Other(message),
            }
        }
    };
}

/// `[method]bucket.{get,set,delete,exists}` and `[resource-drop]bucket`.
macro_rules! bucket_methods {
    () => {
        async fn get(
            &mut self,
            bucket: Resource<BucketResource>,
            key: String,
        ) -> Result<Option<Vec<u8>>> {
            Ok(self.bucket(&bucket)?.get(&key).await?)
        }

        async fn set(
            &mut self,
            bucket: Resource<BucketResource>,
            key: String,
            value: Vec<u8>,
        ) -> Result<()> {
            Ok(self.bucket(&bucket)?.set(key, value).await?)
        }

        async fn delete(&mut self, bucket: Resource<BucketResource>, key: String) -> Result<()> {
            Ok(self.bucket(&bucket)?.delete(key).await?)
        }

        async fn exists(&mut self, bucket: Resource<BucketResource>, key: String) -> Result<bool> {
            Ok(self.bucket(&bucket)?.exists(&key).await?)
        }

        async fn drop(&mut self, bucket: Resource<BucketResource>) -> wasmtime::Result<()> {
            self.drop_bucket(bucket)
        }
    };
}

/// `batch.{set-many,delete-many}`.
macro_rules! batch_write_methods {
    () => {
        async fn set_many(
            &mut self,
            bucket: Resource<BucketResource>,
            key_values: Vec<(String, Vec<u8>)>,
        ) -> Result<()> {
            Ok(self.bucket(&bucket)?.set_many(key_values).await?)
        }

        async fn delete_many(
            &mut self,
            bucket: Resource<BucketResource>,
            keys: Vec<String>,
        ) -> Result<()> {
            Ok(self.bucket(&bucket)?.delete_many(keys).await?)
        }
    };
}

/// `batch.get-many` in the shape `list<option<tuple<key, value>>>` (`0.2.0-draft`, and
/// upstream's `0.2.0-draft2`): `none` for a missing key.
pub(crate) async fn get_many_present(
    view: &mut KvCtxView<'_>,
    bucket: &Resource<BucketResource>,
    keys: Vec<String>,
) -> Result<Vec<Option<(String, Vec<u8>)>>, HostError> {
    let found = view.bucket(bucket)?.get_many(keys).await?;
    Ok(found
        .into_iter()
        .map(|(key, value)| value.map(|value| (key, value)))
        .collect())
}

pub(crate) use {batch_write_methods, bucket_methods, store_error_fn};
