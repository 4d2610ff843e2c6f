//! Runs the backend conformance suite against every backend this crate ships.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kvhost::backend::embedded::EmbeddedStore;
use kvhost::backend::memory::MemoryBucket;
use kvhost::conformance::{Fresh, Harness};
use kvhost::{Bucket, Durability};

struct Memory;

#[async_trait]
impl Harness for Memory {
    async fn fresh(&self) -> Fresh {
        let bucket: Arc<dyn Bucket> = Arc::new(MemoryBucket::new());
        Fresh {
            client: Arc::clone(&bucket),
            other: bucket,
            guard: Box::new(()),
        }
    }
}

struct Embedded(Durability);

#[async_trait]
impl Harness for Embedded {
    async fn fresh(&self) -> Fresh {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(dir.path()).expect("open store");
        let bucket: Arc<dyn Bucket> = Arc::new(
            store
                .bucket("conformance", self.0, Duration::from_millis(20))
                .expect("bucket"),
        );
        Fresh {
            client: Arc::clone(&bucket),
            other: bucket,
            guard: Box::new(dir),
        }
    }
}

mod memory {
    kvhost::conformance_tests!(super::Memory);
}

mod embedded_immediate {
    kvhost::conformance_tests!(super::Embedded(kvhost::Durability::Immediate));
}

mod embedded_relaxed {
    kvhost::conformance_tests!(super::Embedded(kvhost::Durability::Relaxed));
}
