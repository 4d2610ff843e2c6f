//! The backend conformance suite: one set of tests every backend must pass.
//!
//! A backend proves itself by implementing [`Harness`] (how to make a fresh, empty bucket and
//! a second client of it) and adding one line to a test file:
//!
//! ```ignore
//! kvhost::conformance_tests!(MyHarness::new());
//! ```
//!
//! That expands to one `#[test]` per case in [`cases`] plus [`model::check`], a model-based
//! property test that runs random sequences of every operation, with paged listings
//! interleaved with writes from the second client, against a `BTreeMap` model.
//!
//! Enabled by the cargo feature `conformance`.
// A test suite: a failed step panics with its message, as in any test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod cases;
pub mod model;

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{Bucket, BucketHandle, Limits};

/// A fresh, empty bucket as two clients see it.
pub struct Fresh {
    /// The client under test.
    pub client: Arc<dyn Bucket>,
    /// A second client of the same bucket (another connection where the backend has them;
    /// the same object for in-process backends).
    pub other: Arc<dyn Bucket>,
    /// Whatever must live as long as the bucket (a temporary directory, a server).
    pub guard: Box<dyn Any + Send>,
}

impl Fresh {
    /// The client under test, behind a handle with `limits`.
    pub fn client(&self, limits: Limits) -> BucketHandle {
        BucketHandle::new("conformance", Arc::clone(&self.client), Arc::new(limits))
    }

    /// The second client, behind a handle with `limits`.
    pub fn other(&self, limits: Limits) -> BucketHandle {
        BucketHandle::new("conformance", Arc::clone(&self.other), Arc::new(limits))
    }
}

/// Makes fresh buckets of one backend for the suite.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A new, empty bucket; each call must be independent of every other.
    async fn fresh(&self) -> Fresh;
}

/// Runs one async case on a fresh bucket, on a multi-threaded runtime.
pub fn run<H, F, Fut>(harness: &H, case: F)
where
    H: Harness,
    F: FnOnce(Fresh) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = runtime();
    runtime.block_on(async {
        let fresh = harness.fresh().await;
        case(fresh).await;
    });
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the test runtime starts")
}

/// Expands to the whole conformance suite for a harness expression.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::conformance_tests!(@cases $harness;
            get_set_delete_exists,
            values_are_arbitrary_bytes,
            list_keys_returns_every_key_once,
            list_keys_respects_the_byte_budget,
            list_keys_while_another_client_writes,
            list_keys_rejects_foreign_cursors,
            list_keys_with_prefix_is_exact,
            increment_follows_redis_rules,
            cas_detects_every_intervening_write,
            cas_retry_loop_counts_exactly,
            batch_operations,
            limits_are_checked_before_io,
            concurrent_increments_are_atomic,
            read_your_writes_under_concurrency
        );
        #[test]
        fn model_based() {
            $crate::conformance::model::check(&$harness);
        }
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::run(&$harness, $crate::conformance::cases::$case);
            }
        )*
    };
}
