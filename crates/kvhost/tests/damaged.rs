//! A damaged store file never panics kvhost: a corpus of damaged copies of a cleanly closed
//! `kvhost.redb` (bit flips, zeroed pages, truncations at many offsets), each opened and
//! walked (every key listed and read, one key written per bucket) through the public API.
//! Each must give answers or errors; a panic escaping the library, on the caller's thread or
//! the writer's, fails the test. (The fuzz target in fuzz/ does the same with mutations
//! chosen by libFuzzer.)

mod damage;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use damage::{pristine, walk, BUCKETS, KEYS};
use kvhost::backend::embedded::containing_panic;

const PAGE: usize = 4096;

/// Set by the panic hook when a panic is not one kvhost contains (on any thread).
static ESCAPED: AtomicBool = AtomicBool::new(false);

fn watch_for_escaped_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !containing_panic() {
                ESCAPED.store(true, Ordering::SeqCst);
                default(info);
            }
        }));
    });
}

/// Writes `bytes` as the store of a fresh directory, walks it, and fails the test on a
/// panic. Returns the walk's outcome.
fn survives(case: &str, bytes: &[u8]) -> Result<usize, String> {
    match catch_unwind(AssertUnwindSafe(|| walk(bytes))) {
        Ok(_) if ESCAPED.load(Ordering::SeqCst) => panic!("{case}: a panic escaped kvhost"),
        Ok(outcome) => {
            if let Err(message) = &outcome {
                assert!(!message.is_empty(), "{case}: an empty error");
            }
            outcome
        }
        Err(_) => panic!("{case}: a panic escaped kvhost"),
    }
}

#[test]
fn damaged_store_files_give_errors_never_panics() {
    watch_for_escaped_panics();
    let pristine = pristine();
    assert_eq!(survives("pristine", &pristine), Ok(BUCKETS.len() * KEYS));
    let pages = pristine.len() / PAGE;
    let mut damaged = 0;

    // 256 flipped bytes at 24 places, from the header to the end.
    for step in 0..24 {
        let mut bytes = pristine.clone();
        let start = (pristine.len() - 256) * step / 23;
        for byte in &mut bytes[start..start + 256] {
            *byte ^= 0x5a;
        }
        damaged += usize::from(survives(&format!("flip at {start}"), &bytes).is_err());
    }
    // Every page zeroed, one at a time.
    for page in 0..pages {
        let mut bytes = pristine.clone();
        bytes[page * PAGE..(page + 1) * PAGE].fill(0);
        damaged += usize::from(survives(&format!("zeroed page {page}"), &bytes).is_err());
    }
    // Truncated at 24 places.
    for step in 0..24 {
        let length = pristine.len() * step / 24;
        damaged +=
            usize::from(survives(&format!("truncated at {length}"), &pristine[..length]).is_err());
    }
    // The corpus must exercise damage, not only harmless bytes.
    assert!(damaged > 10, "only {damaged} damaged cases were noticed");
}
