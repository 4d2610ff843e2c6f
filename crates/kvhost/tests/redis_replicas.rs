//! Read-your-writes with a lagging replica.
//!
//! A primary and a replica whose replication link runs through a proxy delaying every chunk
//! by 300 ms. A client that reads from the replica must never read older than its own writes
//! (zero stale reads), while the replica still serves its reads of keys it did not write. A
//! second client (another kvhost process in real life) does see the lag, which proves the lag
//! is real and the first client's result is the routing's doing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kvhost::backend::redis::{RedisBucket, RedisTarget};
use kvhost::{Bucket, BucketHandle, Limits};
use kvhost_testkit::{Proxy, ProxyMode, RedisServer};

const LAG: Duration = Duration::from_millis(300);

fn gets_served(server: &RedisServer) -> u64 {
    let stats = server.cli(&["INFO", "commandstats"]);
    let calls = |command: &str| -> u64 {
        stats
            .lines()
            .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .and_then(|calls| calls.parse().ok())
            .unwrap_or(0)
    };
    calls("get") + calls("mget") + calls("exists") + calls("zrangebylex")
}

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reads_its_own_writes_while_the_replica_lags_300_ms() {
    let primary = RedisServer::start();
    let link = Proxy::start(SocketAddr::from(([127, 0, 0, 1], primary.port())));
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &link.port().to_string()]);
    wait_for("the replication link", Duration::from_secs(20), || {
        replica
            .cli(&["INFO", "replication"])
            .contains("master_link_status:up")
    });
    link.set_mode(ProxyMode::Delay(LAG));

    let with_replica = RedisTarget::Standalone {
        url: primary.url(),
        replicas: vec![replica.url()],
    };
    let timeout = Duration::from_secs(2);
    let bucket = |name| -> std::sync::Arc<dyn Bucket> {
        std::sync::Arc::new(RedisBucket::new(name, &with_replica, timeout, "test").unwrap())
    };
    let handle = |bucket: &std::sync::Arc<dyn Bucket>| {
        BucketHandle::new("shared", bucket.clone(), Limits::default().into())
    };
    let client = handle(&bucket("shared"));
    let other_process = handle(&bucket("shared"));

    // Keys the client never writes, already on the replica.
    let seeder = handle(&bucket("shared"));
    for i in 0..20 {
        seeder
            .set(format!("seed-{i}"), format!("s{i}").into_bytes())
            .await
            .unwrap();
    }
    wait_for(
        "the seed keys on the replica",
        Duration::from_secs(10),
        || replica.cli(&["GET", "kvhost:{shared/0}:k:seed-19"]) == "s19",
    );

    // Let both clients' samplers learn where the replica stands.
    client.get("warm-up").await.unwrap();
    other_process.get("warm-up").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut stale_reads = 0;
    let mut other_saw_stale = 0;
    let mut own_reads = 0;
    let mut foreign_reads = 0;
    let replica_before = gets_served(&replica);
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < Duration::from_secs(3) || round < 100 {
        round += 1;
        let key = format!("k{}", round % 10);
        let value = format!("v{round}").into_bytes();
        client.set(key.clone(), value.clone()).await.unwrap();
        // Every read form, straight after the write.
        own_reads += 4;
        if client.get(&key).await.unwrap().as_deref() != Some(&value[..]) {
            stale_reads += 1;
        }
        if !client.exists(&key).await.unwrap() {
            stale_reads += 1;
        }
        let many = client.get_many(vec![key.clone()]).await.unwrap();
        if many[0].1.as_deref() != Some(&value[..]) {
            stale_reads += 1;
        }
        if !client.list_keys(None).await.unwrap().keys.contains(&key) {
            stale_reads += 1;
        }
        // Another process reading the same key straight away sees the replica's lag.
        if other_process.get(&key).await.unwrap().as_deref() != Some(&value[..]) {
            other_saw_stale += 1;
        }
        // Keys the client did not write are served by the replica.
        let seed = round % 20;
        let seeded = client.get(&format!("seed-{seed}")).await.unwrap();
        assert_eq!(seeded, Some(format!("s{seed}").into_bytes()));
        foreign_reads += 1;
    }
    let served_by_replica = gets_served(&replica) - replica_before;

    assert_eq!(
        stale_reads, 0,
        "stale reads of own writes out of {own_reads}"
    );
    assert!(
        other_saw_stale > round / 2,
        "the lag was not real: another process saw only {other_saw_stale} stale reads in {round}"
    );
    // The other process never writes, so all its reads go to the replica; the client's reads
    // of keys it did not write must have gone there too.
    assert!(
        served_by_replica >= foreign_reads + round,
        "the replica served {served_by_replica} reads; expected the client's {foreign_reads} \
         reads of keys it did not write plus the other process's {round}"
    );
}
