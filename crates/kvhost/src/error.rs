//! The one error type of every bucket operation.
//!
//! `wasi:keyvalue` knows exactly three errors, so this crate does too. Everything that is not
//! "no such store" or "access denied" (an I/O failure, a limit, a bad cursor, an increment of a
//! value that is not a number) is [`Error::Other`] with a message a person can act on.

/// An error from a bucket operation, shaped like `wasi:keyvalue/store.error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The bucket name is not configured on this host.
    #[error("no such store")]
    NoSuchStore,
    /// The bucket exists but the caller was not granted it.
    #[error("access denied")]
    AccessDenied,
    /// Anything else; the message says what happened and, where it can, what to do.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// Shorthand for [`Error::Other`] from anything printable.
    pub fn other(message: impl Into<String>) -> Self {
        Error::Other(message.into())
    }
}

/// The result of a bucket operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
