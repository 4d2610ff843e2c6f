//! How a failed host call reaches the guest: as a `wasi:keyvalue` error value, or as a trap.
//!
//! Everything a guest can cause with its arguments (unknown bucket, limits, bad cursors,
//! backend failures) is a [`kvhost::Error`] and becomes the interface's `error` variant. A trap
//! is reserved for what cannot be expressed as an error value: a resource handle the host
//! cannot find, which means the host's own bookkeeping is wrong. Misuse of a handle by the guest
//! (using a dropped bucket) is caught by wasmtime before the host sees it, and traps only that
//! instance.

use wasmtime::component::ResourceTableError;

/// The error type of the generated host traits (`trappable_error_type`).
#[doc(hidden)]
#[derive(Debug)]
pub enum HostError {
    /// Returned to the guest as the interface's `error` variant.
    Store(kvhost::Error),
    /// The instance already holds `limits.max_open_buckets` open buckets: Spin's async
    /// interface has its own `store-table-full` variant for this; the other interfaces report
    /// it as `other` with the message.
    TableFull(String),
    /// Traps the calling instance.
    Trap(wasmtime::Error),
}

impl From<kvhost::Error> for HostError {
    fn from(err: kvhost::Error) -> Self {
        HostError::Store(err)
    }
}

impl From<ResourceTableError> for HostError {
    fn from(err: ResourceTableError) -> Self {
        HostError::Trap(err.into())
    }
}

impl HostError {
    /// Splits into the guest-visible error or the trap, mapping the former with `store`.
    pub(crate) fn into_guest<E>(
        self,
        store: impl FnOnce(kvhost::Error) -> E,
    ) -> wasmtime::Result<E> {
        match self {
            HostError::Store(err) => Ok(store(err)),
            HostError::TableFull(message) => Ok(store(kvhost::Error::Other(message))),
            HostError::Trap(trap) => Err(trap),
        }
    }
}
