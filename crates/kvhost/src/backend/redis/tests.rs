//! Tests of `RedisBucket`'s internals against a real `redis-server`.

use super::*;

/// What the cluster client does after a lost reply: send the same script again. The
/// operation id makes the second run return the first result instead of applying again.
#[tokio::test]
async fn a_resent_increment_or_swap_applies_once() {
    let server = kvhost_testkit::shared_server();
    let target = RedisTarget::Standalone {
        url: server.url(),
        replicas: Vec::new(),
    };
    let bucket = RedisBucket::new("resend", &target, DEFAULT_TIMEOUT, "test").unwrap();
    let shard = bucket.layout().await.unwrap().shard_for("n");
    let resend = |op: String| {
        let extra = vec![shard.data("n"), shard.op(&op)];
        let args = vec![b"n".to_vec(), b"5".to_vec(), b"60".to_vec()];
        let shard = shard.clone();
        let bucket = &bucket;
        async move {
            bucket
                .write::<(String, String)>(&scripts::INCREMENT, &shard, extra, args)
                .await
                .unwrap()
        }
    };
    let op = layout::op_id();
    assert_eq!(resend(op.clone()).await, ("ok".into(), "5".into()));
    assert_eq!(resend(op).await, ("ok".into(), "5".into()));
    assert_eq!(bucket.get("n").await.unwrap(), Some(b"5".to_vec()));
    assert_eq!(resend(layout::op_id()).await, ("ok".into(), "10".into()));

    let token = bucket.cas_begin("n".into()).await.unwrap();
    let op = layout::op_id();
    let swap = |value: &'static [u8]| {
        let extra = vec![shard.data("n"), shard.op(&op)];
        let args = vec![
            b"n".to_vec(),
            value.to_vec(),
            b"1".to_vec(),
            token.version().to_string().into_bytes(),
            b"60".to_vec(),
        ];
        let shard = shard.clone();
        let bucket = &bucket;
        async move {
            bucket
                .write::<Vec<Value>>(&scripts::CAS_SWAP, &shard, extra, args)
                .await
                .unwrap()
        }
    };
    assert_eq!(swap(b"first").await.len(), 1, "swapped");
    // Re-sent: reported swapped again, and nothing is written a second time.
    assert_eq!(swap(b"second").await.len(), 1, "swapped (remembered)");
    assert_eq!(bucket.get("n").await.unwrap(), Some(b"first".to_vec()));
}

#[tokio::test]
async fn operators_find_values_where_the_layout_says() {
    let server = kvhost_testkit::shared_server();
    let target = RedisTarget::Standalone {
        url: server.url(),
        replicas: Vec::new(),
    };
    let a = RedisBucket::new("a", &target, DEFAULT_TIMEOUT, "test").unwrap();
    let ab = RedisBucket::new("a:b", &target, DEFAULT_TIMEOUT, "test").unwrap();
    a.set("b:c".into(), b"from a".to_vec()).await.unwrap();
    ab.set("c".into(), b"from a:b".to_vec()).await.unwrap();
    assert_eq!(server.cli(&["GET", "kvhost:{a/0}:k:b:c"]), "from a");
    assert_eq!(server.cli(&["GET", "kvhost:{a%3Ab/0}:k:c"]), "from a:b");
    assert_eq!(server.cli(&["HGET", "kvhost:{a}:layout", "shards"]), "1");
    assert_eq!(a.get("c").await.unwrap(), None);
    assert_eq!(ab.get("b:c").await.unwrap(), None);
}
