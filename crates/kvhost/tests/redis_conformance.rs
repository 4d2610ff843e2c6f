//! The backend conformance suite against real Redis servers: a standalone `redis-server` and
//! a 3-master Redis Cluster, started by the test on loopback ephemeral ports (one of each per
//! test process; every fresh bucket gets its own name, so buckets are independent).
//!
//! The two clients of each fresh bucket are separate `RedisBucket`s with their own
//! connections, as two kvhost processes configured with the same bucket would be.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kvhost::backend::redis::{RedisBucket, RedisTarget};
use kvhost::conformance::{Fresh, Harness};
use kvhost::Bucket;

fn fresh(target: &RedisTarget) -> Fresh {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!("conformance-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let bucket = || -> Arc<dyn Bucket> {
        Arc::new(
            RedisBucket::new(&name, target, Duration::from_secs(5), "test")
                .expect("a valid target"),
        )
    };
    Fresh {
        client: bucket(),
        other: bucket(),
        guard: Box::new(()),
    }
}

struct Standalone;

#[async_trait]
impl Harness for Standalone {
    async fn fresh(&self) -> Fresh {
        fresh(&RedisTarget::Standalone {
            url: kvhost_testkit::shared_server().url(),
            replicas: Vec::new(),
        })
    }
}

struct Cluster;

#[async_trait]
impl Harness for Cluster {
    async fn fresh(&self) -> Fresh {
        fresh(&RedisTarget::Cluster {
            nodes: kvhost_testkit::shared_cluster().urls(),
        })
    }
}

mod standalone {
    kvhost::conformance_tests!(super::Standalone);
}

mod cluster {
    kvhost::conformance_tests!(super::Cluster);
}
