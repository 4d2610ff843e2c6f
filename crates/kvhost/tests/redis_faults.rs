//! Faults with real servers: Redis stopped and restarted mid-run, a slow link (a delaying
//! proxy), replies lost after the server applied a command, and a cluster master failing over.
//! Every failure must be `other("redis unavailable: ...")` within the configured timeout, the
//! bucket must heal on its own, and no command may apply twice.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kvhost::backend::redis::{RedisBucket, RedisTarget};
use kvhost::{Bucket, Error};
use kvhost_testkit::{Proxy, ProxyMode, RedisCluster, RedisServer};

const TIMEOUT: Duration = Duration::from_millis(500);

fn standalone(url: String, name: &str) -> RedisBucket {
    let target = RedisTarget::Standalone {
        url,
        replicas: Vec::new(),
    };
    RedisBucket::new(name, &target, TIMEOUT, "test").expect("a valid target")
}

fn addr(server: &RedisServer) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], server.port()))
}

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, Error>, started: Instant) {
    let elapsed = started.elapsed();
    match result {
        Err(Error::Other(message)) => {
            assert!(message.starts_with("redis unavailable:"), "{message}");
        }
        other => panic!("expected redis unavailable, got {other:?}"),
    }
    assert!(
        elapsed < TIMEOUT + Duration::from_millis(700),
        "took {elapsed:?} with a timeout of {TIMEOUT:?}"
    );
}

/// Retries `op` until it succeeds, for at most `within`.
async fn eventually<T, F, Fut>(within: Duration, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let deadline = Instant::now() + within;
    loop {
        match op().await {
            Ok(value) => return value,
            Err(err) if Instant::now() < deadline => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("still failing after {within:?}: {err}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_fails_fast_and_the_bucket_heals_when_it_returns() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let bucket = standalone(server.url(), "faults");
    bucket.set("kept".into(), b"value".to_vec()).await.unwrap();
    assert_eq!(bucket.increment("n".into(), 1).await.unwrap(), 1);

    server.stop();
    for _ in 0..3 {
        let started = Instant::now();
        assert_unavailable(bucket.get("kept").await, started);
        let started = Instant::now();
        assert_unavailable(bucket.increment("n".into(), 1).await, started);
    }

    server.restart();
    let value = eventually(Duration::from_secs(10), || bucket.get("kept")).await;
    assert_eq!(value, Some(b"value".to_vec()));
    // The increments attempted while the server was down never reached it.
    assert_eq!(bucket.increment("n".into(), 1).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_link_times_out_and_later_replies_never_reach_the_wrong_caller() {
    let server = RedisServer::start();
    let proxy = Proxy::start(addr(&server));
    let bucket = standalone(proxy.url(), "slow");
    for i in 0..20 {
        bucket
            .set(format!("k{i}"), format!("v{i}").into_bytes())
            .await
            .unwrap();
    }

    proxy.set_mode(ProxyMode::Delay(Duration::from_secs(2)));
    for i in 0..5 {
        let started = Instant::now();
        assert_unavailable(bucket.get(&format!("k{i}")).await, started);
    }

    // The late replies arrive while new commands are in flight: each caller must still get
    // its own answer.
    proxy.set_mode(ProxyMode::Pass);
    eventually(Duration::from_secs(10), || bucket.get("k0")).await;
    for i in 0..20 {
        let value = bucket.get(&format!("k{i}")).await.unwrap();
        assert_eq!(value, Some(format!("v{i}").into_bytes()), "k{i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_is_an_error_and_no_command_applies_twice() {
    let server = RedisServer::start();
    let proxy = Proxy::start(addr(&server));
    let bucket = standalone(proxy.url(), "lost");
    assert_eq!(bucket.increment("n".into(), 1).await.unwrap(), 1);

    proxy.set_mode(ProxyMode::CutOnReply);
    let mut calls = 1;
    for _ in 0..10 {
        let started = Instant::now();
        calls += 1;
        assert_unavailable(bucket.increment("n".into(), 1).await, started);
        // Give the client time to reconnect, so the next attempt reaches the server.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.set_mode(ProxyMode::Pass);
    let next = eventually(Duration::from_secs(10), || {
        calls += 1;
        bucket.increment("n".into(), 1)
    })
    .await;
    let stored: i64 = server.cli(&["GET", "kvhost:{lost/0}:k:n"]).parse().unwrap();
    assert_eq!(stored, next);
    // Lost-reply increments did reach Redis (the fault was real) ...
    assert!(
        stored >= 3,
        "no lost-reply increment reached Redis: {stored}"
    );
    // ... and none applied twice: never more applications than calls.
    assert!(stored <= calls, "{stored} applications from {calls} calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_master_failing_over_is_handled_by_the_client() {
    let mut cluster = RedisCluster::start(3, 1);
    let target = RedisTarget::Cluster {
        nodes: cluster.urls(),
    };
    let bucket = RedisBucket::new("failover", &target, Duration::from_secs(2), "test").unwrap();
    for i in 0..300 {
        bucket
            .set(format!("k{i}"), i.to_string().into_bytes())
            .await
            .unwrap();
    }
    // Every write is on a replica before the master dies (Redis replicates asynchronously).
    for port in cluster.master_ports() {
        let node = cluster.nodes().iter().find(|n| n.port() == port).unwrap();
        assert_eq!(node.cli(&["WAIT", "1", "30000"]), "1");
    }
    let victim = cluster
        .nodes()
        .iter()
        .position(|node| node.port() == cluster.master_ports()[0])
        .unwrap();
    cluster.node_mut(victim).stop();

    // Within the failover window some operations fail (bounded); then every key is back.
    for i in 0..300 {
        let key = format!("k{i}");
        let value = eventually(Duration::from_secs(20), || bucket.get(&key)).await;
        assert_eq!(value, Some(i.to_string().into_bytes()), "k{i}");
    }
    assert_eq!(bucket.increment("after".into(), 5).await.unwrap(), 5);
    assert_eq!(cluster.master_ports().len(), 3, "a replica took over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_moving_between_masters_are_followed_by_the_client() {
    let cluster = RedisCluster::start(3, 0);
    let target = RedisTarget::Cluster {
        nodes: cluster.urls(),
    };
    let bucket = std::sync::Arc::new(
        RedisBucket::new("moving", &target, Duration::from_secs(5), "test").unwrap(),
    );
    for i in 0..200 {
        bucket.set(format!("k{i}"), b"0".to_vec()).await.unwrap();
    }
    // One bucket's keys spread over every master (no single hash tag per bucket).
    let nodes = cluster.nodes();
    for node in nodes {
        let keys: u64 = node.cli(&["DBSIZE"]).parse().unwrap();
        assert!(
            keys > 0,
            "master on port {} holds none of the bucket",
            node.port()
        );
    }
    // While a third of all slots (with their keys) moves from one master to another, a
    // client keeps incrementing every key: MOVED and ASK redirects must be followed.
    let from = nodes[0].cli(&["CLUSTER", "MYID"]);
    let to = nodes[1].cli(&["CLUSTER", "MYID"]);
    let moved = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let bucket = std::sync::Arc::clone(&bucket);
        let moved = std::sync::Arc::clone(&moved);
        tokio::spawn(async move {
            let mut rounds = 0;
            let mut errors = Vec::new();
            while !moved.load(std::sync::atomic::Ordering::Acquire) {
                rounds += 1;
                for i in 0..200 {
                    match bucket.increment(format!("k{i}"), 1).await {
                        Ok(value) if value == rounds => {}
                        Ok(value) => errors.push(format!("round {rounds} k{i}: got {value}")),
                        Err(err) => errors.push(format!("round {rounds} k{i}: {err}")),
                    }
                }
            }
            (rounds, errors)
        })
    };
    // Redis 7 turns a master that gives away its last slot into a replica of the node that
    // took it; that replica's full sync would then fill the DBSIZE checked below.
    nodes[0].cli(&["CONFIG", "SET", "cluster-allow-replica-migration", "no"]);
    let port = nodes[0].port().to_string();
    let reshard = tokio::task::spawn_blocking({
        let (from, to) = (from.clone(), to.clone());
        let server = format!("127.0.0.1:{port}");
        move || {
            std::process::Command::new("redis-cli")
                .args(["--cluster", "reshard", &server, "--cluster-from", &from])
                .args([
                    "--cluster-to",
                    &to,
                    "--cluster-slots",
                    "5461",
                    "--cluster-yes",
                ])
                .output()
                .expect("redis-cli --cluster reshard runs")
        }
    });
    let output = reshard.await.unwrap();
    moved.store(true, std::sync::atomic::Ordering::Release);
    assert!(
        output.status.success(),
        "reshard failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (rounds, errors) = writer.await.unwrap();
    assert!(
        errors.is_empty(),
        "operations failed while slots moved: {errors:#?}"
    );
    assert!(
        rounds >= 2,
        "the writer did not overlap the move ({rounds} rounds)"
    );
    assert_eq!(
        nodes[0].cli(&["DBSIZE"]),
        "0",
        "every key left the first master"
    );
    for i in 0..200 {
        let stored = bucket.get(&format!("k{i}")).await.unwrap();
        assert_eq!(stored, Some(rounds.to_string().into_bytes()), "k{i}");
    }
}
