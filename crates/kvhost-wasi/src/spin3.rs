//! `spin:key-value/key-value@3.0.0`: Spin's async key-value interface (what `spin_sdk.key_value`
//! calls in spin-sdk 4.x and 5.x), served on the same buckets as `wasi:keyvalue`.
//!
//! Every function is a WIT `async func`: the host side runs concurrently with the instance's
//! other tasks (a p3 HTTP handler may serve several requests in one instance), so the methods
//! take an [`Accessor`] and borrow the [`KvCtxView`] only between awaits, never across one.
//!
//! `get-keys` returns a `stream<string>` and a `future<result<_, error>>`. The stream is fed
//! from the bucket's own cursor (`KeyPages`): one page (at most `limits.list_page_keys` keys
//! and `limits.list_page_bytes` bytes) is held at a time, and the next page is read only when
//! the guest has taken every key of the current one, so host memory is bounded whatever the
//! bucket holds and a slow reader holds the listing back. An error while listing ends the
//! stream and is delivered through the future; a guest that drops the stream early stops the
//! listing (the future then reports success: nothing failed).
//!
//! `open` past `limits.max_open_buckets` is `store-table-full`, this interface's own variant.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use kvhost::{BucketHandle, KeyResponse};
use tokio::sync::oneshot;
use wasmtime::component::{
    Access, Accessor, Destination, FutureReader, Resource, StreamProducer, StreamReader,
    StreamResult,
};
use wasmtime::StoreContextMut;

use crate::ctx::{BucketResource, KvCtxView};
use crate::error::HostError;

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit/spin-key-value-3.0.0",
        world: "spin:key-value/key-value-imports",
        imports: { default: store | trappable },
        with: {
            "spin:key-value/key-value.store": crate::ctx::BucketResource,
        },
        trappable_error_type: {
            "spin:key-value/key-value.error" => crate::error::HostError,
        },
    });
}

use generated::spin::key_value::key_value;

type Result<T, E = HostError> = std::result::Result<T, E>;

/// Adds `spin:key-value/key-value@3.0.0` to `linker`. Its functions are async: a guest can
/// only call them when the engine has the component-model async features enabled
/// (`Config::wasm_component_model_async`).
pub fn add_to_linker<T: crate::KvView + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    key_value::add_to_linker::<T, crate::HasKv>(linker, crate::view::<T>)
}

crate::shared::store_error_fn!(key_value);

/// A [`HostError`] as this interface's `error` variant (or a trap).
fn guest_error(err: HostError) -> wasmtime::Result<key_value::Error> {
    match err {
        HostError::TableFull(_) => Ok(key_value::Error::StoreTableFull),
        err => err.into_guest(store_error),
    }
}

impl key_value::Host for KvCtxView<'_> {
    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<key_value::Error> {
        guest_error(err)
    }
}

impl key_value::HostStore for KvCtxView<'_> {}

/// The bucket behind a guest's `store` handle, looked up without holding the store across an
/// await.
fn bucket<T>(
    accessor: &Accessor<T, crate::HasKv>,
    store: &Resource<BucketResource>,
) -> Result<BucketHandle> {
    accessor.with(|mut access| access.get().bucket(store))
}

impl<T> key_value::HostStoreWithStore<T> for crate::HasKv {
    fn drop(
        mut access: Access<'_, T, Self>,
        store: Resource<BucketResource>,
    ) -> wasmtime::Result<()> {
        access.get().drop_bucket(store)
    }

    async fn open(accessor: &Accessor<T, Self>, label: String) -> Result<Resource<BucketResource>> {
        accessor.with(|mut access| access.get().open_bucket(&label))
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<BucketResource>,
        key: String,
    ) -> Result<Option<Vec<u8>>> {
        Ok(bucket(accessor, &store)?.get(&key).await?)
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<BucketResource>,
        key: String,
        value: Vec<u8>,
    ) -> Result<()> {
        Ok(bucket(accessor, &store)?.set(key, value).await?)
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<BucketResource>,
        key: String,
    ) -> Result<()> {
        Ok(bucket(accessor, &store)?.delete(key).await?)
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<BucketResource>,
        key: String,
    ) -> Result<bool> {
        Ok(bucket(accessor, &store)?.exists(&key).await?)
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<BucketResource>,
    ) -> wasmtime::Result<(
        StreamReader<String>,
        FutureReader<Result<(), key_value::Error>>,
    )> {
        let (done, outcome) = oneshot::channel();
        let pages = match bucket(accessor, &store) {
            Ok(bucket) => KeyPages::new(bucket, done),
            Err(err) => {
                let _ = done.send(Err(guest_error(err)?));
                KeyPages::finished()
            }
        };
        accessor.with(|mut access| {
            let keys = StreamReader::new(&mut access, pages)?;
            let outcome = FutureReader::new(&mut access, outcome)?;
            Ok((keys, outcome))
        })
    }
}

/// A page of keys being read from the bucket.
type PageRead = Pin<Box<dyn Future<Output = kvhost::Result<KeyResponse>> + Send>>;

/// The producer behind a `get-keys` stream: walks the bucket page by page from its cursor.
///
/// Invariant: at most one page is held (`keys`) or being read (`reading`) at a time, and a
/// page is read only when `keys` is empty and the guest asks for more.
struct KeyPages {
    /// `None` once the listing is over (or never started because of an error).
    bucket: Option<BucketHandle>,
    /// Where the next page starts; `None` before the first page.
    cursor: Option<String>,
    /// Keys of the current page not yet delivered.
    keys: VecDeque<String>,
    /// The page read in progress.
    reading: Option<PageRead>,
    /// Where the listing's outcome goes; taken when it is sent.
    done: Option<oneshot::Sender<Result<(), key_value::Error>>>,
}

impl KeyPages {
    fn new(bucket: BucketHandle, done: oneshot::Sender<Result<(), key_value::Error>>) -> Self {
        KeyPages {
            bucket: Some(bucket),
            cursor: None,
            keys: VecDeque::new(),
            reading: None,
            done: Some(done),
        }
    }

    /// An empty stream whose outcome was already sent.
    fn finished() -> Self {
        KeyPages {
            bucket: None,
            cursor: None,
            keys: VecDeque::new(),
            reading: None,
            done: None,
        }
    }

    fn finish(&mut self, outcome: Result<(), key_value::Error>) {
        self.bucket = None;
        self.reading = None;
        if let Some(done) = self.done.take() {
            // The guest may have dropped the future: nobody to tell.
            let _ = done.send(outcome);
        }
    }

    /// Polls the read of the next page, starting it if needed.
    fn poll_page(&mut self, cx: &mut Context<'_>) -> Poll<kvhost::Result<KeyResponse>> {
        let Some(bucket) = &self.bucket else {
            return Poll::Ready(Ok(KeyResponse::default()));
        };
        let reading = self.reading.get_or_insert_with(|| {
            let (bucket, cursor) = (bucket.clone(), self.cursor.clone());
            Box::pin(async move { bucket.list_keys(cursor.as_deref()).await })
        });
        let page = std::task::ready!(reading.as_mut().poll(cx));
        self.reading = None;
        Poll::Ready(page)
    }
}

impl<D> StreamProducer<D> for KeyPages {
    type Item = String;
    type Buffer = wasmtime::component::VecBuffer<String>;

    fn poll_produce<'a>(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<'a, D>,
        mut destination: Destination<'a, Self::Item, Self::Buffer>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        // How many keys the reader takes now (a host reader gives no count: one page).
        let wanted = destination.remaining(&mut store).unwrap_or(usize::MAX);
        if wanted == 0 {
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let this = &mut *self;
        while this.keys.is_empty() {
            if this.bucket.is_none() {
                this.finish(Ok(()));
                return Poll::Ready(Ok(StreamResult::Dropped));
            }
            match this.poll_page(cx) {
                Poll::Ready(Ok(page)) => {
                    this.keys.extend(page.keys);
                    this.cursor = page.cursor;
                    if this.cursor.is_none() {
                        // Last page: deliver what it holds, then end.
                        this.bucket = None;
                    }
                }
                Poll::Ready(Err(err)) => {
                    this.finish(Err(store_error(err)));
                    return Poll::Ready(Ok(StreamResult::Dropped));
                }
                Poll::Pending if finish => return Poll::Ready(Ok(StreamResult::Cancelled)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let take = wanted.min(this.keys.len());
        let batch: Vec<String> = this.keys.drain(..take).collect();
        destination.set_buffer(batch.into());
        Poll::Ready(Ok(StreamResult::Completed))
    }
}

impl Drop for KeyPages {
    fn drop(&mut self) {
        // The guest dropped the stream before its end: the listing stopped, nothing failed.
        self.finish(Ok(()));
    }
}
