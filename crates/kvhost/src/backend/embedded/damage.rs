//! A damaged store file must never bring kvhost down.
//!
//! redb trusts a cleanly closed file: where a page was damaged after the fact (a bit flip on
//! disk, a zeroed block, a truncation), its B-tree code can panic (`unreachable!`, an index
//! out of bounds) instead of returning an error. Every call into redb made on behalf of a
//! bucket runs inside [`contain`], which turns such a panic into an `other` error that says
//! the store is damaged and what to do, so a guest sees an error and the host goes on.
//!
//! Invariant: the thread-local depth counter is raised exactly while a contained call runs,
//! so a panic hook can tell a contained panic (reported as an error, better kept quiet) from
//! a real bug (see [`containing_panic`]).

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::{Error, Result};

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Whether this thread is inside a contained call into the store: a panic now is turned into
/// a "store damaged" error by kvhost, so a panic hook may leave it unprinted.
pub fn containing_panic() -> bool {
    DEPTH.with(Cell::get) > 0
}

/// Runs `call`, turning a panic inside it into an error naming `label` (the store).
pub(crate) fn contain<T>(label: &str, call: impl FnOnce() -> Result<T>) -> Result<T> {
    contain_as(call, |damaged| {
        Error::other(format!(
            "{label}: {damaged}; run `kvhost kv check`, and see docs/durability.md (\"Damaged \
             store files\") to salvage what can be read"
        ))
    })
}

/// Runs `call`, turning a panic inside it into the error `damaged` makes of its description
/// ("store damaged (CAUSE)").
pub(crate) fn contain_as<T, E>(
    call: impl FnOnce() -> std::result::Result<T, E>,
    damaged: impl FnOnce(String) -> E,
) -> std::result::Result<T, E> {
    DEPTH.with(|depth| depth.set(depth.get() + 1));
    let outcome = catch_unwind(AssertUnwindSafe(call));
    DEPTH.with(|depth| depth.set(depth.get() - 1));
    outcome.unwrap_or_else(|payload| {
        let cause = payload
            .downcast_ref::<&str>()
            .map(|text| (*text).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "an inconsistent page".to_string());
        Err(damaged(format!("store damaged ({cause})")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_and_the_depth_is_restored() {
        assert!(!containing_panic());
        let outcome: Result<()> = contain("store x", || {
            assert!(containing_panic());
            panic!("entered unreachable code")
        });
        let message = outcome.unwrap_err().to_string();
        assert!(message.contains("store x: store damaged (entered unreachable code); run"));
        assert!(message.contains("kvhost kv check"));
        assert!(!containing_panic());
        assert_eq!(contain("store x", || Ok(7)).unwrap(), 7);
    }
}
