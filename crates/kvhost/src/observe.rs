//! Watching bucket operations from outside: the [`Observer`] seam.
//!
//! A host that wants metrics or logs of key-value traffic (how many `get`s on `cache` failed,
//! which guest was denied which bucket) installs one [`Observer`] on the [`crate::Registry`].
//! Every [`crate::BucketHandle`] opened from it then reports each operation once, after the
//! backend answered, with the bucket's name, the [`Op`] and the result; a failed `open` is
//! reported as [`Op::Open`].
//!
//! Invariant: an observer only watches. It is called synchronously on the caller's task, so
//! it must be cheap (a few atomic increments, a log line) and must not call back into the
//! registry. Without an observer nothing is recorded and nothing is paid.

use crate::Error;

/// A bucket operation, as reported to an [`Observer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `open(identifier)`.
    Open,
    /// `get`.
    Get,
    /// `set`.
    Set,
    /// `delete`.
    Delete,
    /// `exists`.
    Exists,
    /// `list-keys` (one page).
    ListKeys,
    /// `atomics.increment`.
    Increment,
    /// Taking a compare-and-swap handle (`cas.new`).
    CasBegin,
    /// `atomics.swap`.
    CasSwap,
    /// `batch.get-many`.
    GetMany,
    /// `batch.set-many`.
    SetMany,
    /// `batch.delete-many`.
    DeleteMany,
}

impl Op {
    /// Every operation, in a fixed order (for tables indexed by operation).
    pub const ALL: [Op; 12] = [
        Op::Open,
        Op::Get,
        Op::Set,
        Op::Delete,
        Op::Exists,
        Op::ListKeys,
        Op::Increment,
        Op::CasBegin,
        Op::CasSwap,
        Op::GetMany,
        Op::SetMany,
        Op::DeleteMany,
    ];

    /// The operation's name as the interfaces spell it (`list-keys`, `get-many`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Op::Open => "open",
            Op::Get => "get",
            Op::Set => "set",
            Op::Delete => "delete",
            Op::Exists => "exists",
            Op::ListKeys => "list-keys",
            Op::Increment => "increment",
            Op::CasBegin => "cas-begin",
            Op::CasSwap => "swap",
            Op::GetMany => "get-many",
            Op::SetMany => "set-many",
            Op::DeleteMany => "delete-many",
        }
    }

    /// This operation's position in [`Op::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How an operation ended, coarsely: the three error variants of the interface plus success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The operation succeeded (a `get` of an absent key and a stale `swap` are successes).
    Ok,
    /// [`Error::NoSuchStore`].
    NoSuchStore,
    /// [`Error::AccessDenied`].
    AccessDenied,
    /// [`Error::Other`].
    Other,
}

impl Outcome {
    /// Every outcome, in a fixed order.
    pub const ALL: [Outcome; 4] = [
        Outcome::Ok,
        Outcome::NoSuchStore,
        Outcome::AccessDenied,
        Outcome::Other,
    ];

    /// The outcome of `result`.
    pub fn of<T>(result: &Result<T, Error>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(Error::NoSuchStore) => Outcome::NoSuchStore,
            Err(Error::AccessDenied) => Outcome::AccessDenied,
            Err(Error::Other(_)) => Outcome::Other,
        }
    }

    /// A short label: `ok`, `no-such-store`, `access-denied`, `other`.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NoSuchStore => "no-such-store",
            Outcome::AccessDenied => "access-denied",
            Outcome::Other => "other",
        }
    }

    /// This outcome's position in [`Outcome::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Receives one call per bucket operation. See the module docs for the rules.
pub trait Observer: Send + Sync + 'static {
    /// `op` on bucket `bucket` ended with `error` (`None`: it succeeded).
    fn observe(&self, bucket: &str, op: Op, error: Option<&Error>);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_match_the_tables() {
        for (i, op) in Op::ALL.iter().enumerate() {
            assert_eq!(op.index(), i, "{op:?}");
        }
        for (i, outcome) in Outcome::ALL.iter().enumerate() {
            assert_eq!(outcome.index(), i, "{outcome:?}");
        }
        assert_eq!(Outcome::of::<()>(&Err(Error::other("x"))), Outcome::Other);
    }
}
