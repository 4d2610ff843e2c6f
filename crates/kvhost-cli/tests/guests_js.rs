//! The wasi:keyvalue@0.2.0-draft2 conformance checks as a JavaScript component
//! (`guests/js/draft2.js`, built by `scripts/build-guests.sh` with the pinned componentize-js
//! and its default features), run by `kvhost run` on memory, embedded, Redis and Redis
//! Cluster buckets. It reports the same checks as the Python guest, in the same order, through
//! bindings that differ from Python's (thrown errors with a `payload`, `undefined` options,
//! BigInt results, Uint8Arrays of another realm).

mod support;

use support::conformance::{assert_guest_passes, DRAFT2_CHECKS};

const PERSISTED: (&str, &str) = ("persisted", "from-js-draft2");

#[test]
fn js_guest_on_memory_buckets() {
    assert_guest_passes("memory", "draft2js", DRAFT2_CHECKS, PERSISTED);
}

#[test]
fn js_guest_on_embedded_buckets() {
    assert_guest_passes("embedded", "draft2js", DRAFT2_CHECKS, PERSISTED);
}

#[test]
fn js_guest_on_redis_buckets() {
    let server = kvhost_testkit::RedisServer::start();
    let backend = format!("redis {}/0", server.url());
    assert_guest_passes(&backend, "draft2js", DRAFT2_CHECKS, PERSISTED);
}

#[test]
fn js_guest_on_redis_cluster_buckets() {
    let cluster = kvhost_testkit::RedisCluster::start(3, 0);
    let backend = format!("redis-cluster {}", cluster.urls().join(","));
    assert_guest_passes(&backend, "draft2js", DRAFT2_CHECKS, PERSISTED);
}
