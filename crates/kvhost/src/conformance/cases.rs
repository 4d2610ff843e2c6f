//! The example-based cases of the conformance suite, one `pub async fn` per behaviour.
//!
//! Each takes a [`Fresh`] bucket and panics (with a message saying what the spec wanted) on
//! the first divergence. They are written against [`crate::BucketHandle`], the API callers use,
//! so limits and cursors are exercised too.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::Fresh;
use crate::cursor::encode_cursor;
use crate::{Error, Limits, Swap};

fn small_pages(keys: usize, bytes: usize) -> Limits {
    Limits {
        list_page_keys: keys,
        list_page_bytes: bytes,
        ..Limits::default()
    }
}

async fn all_keys(bucket: &crate::BucketHandle) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = bucket
            .list_keys(cursor.as_deref())
            .await
            .expect("list-keys");
        keys.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return keys,
        }
    }
}

fn is_other(result: &Error, fragment: &str) -> bool {
    matches!(result, Error::Other(message) if message.contains(fragment))
}

/// get / set / delete / exists exactly as the spec text says.
pub async fn get_set_delete_exists(fresh: Fresh) {
    let b = fresh.client(Limits::default());
    assert_eq!(
        b.get("k").await.unwrap(),
        None,
        "a missing key reads as none"
    );
    assert!(!b.exists("k").await.unwrap());
    b.delete("k".into())
        .await
        .expect("delete of a missing key is a no-op");

    b.set("k".into(), b"one".to_vec()).await.unwrap();
    assert_eq!(b.get("k").await.unwrap(), Some(b"one".to_vec()));
    assert!(b.exists("k").await.unwrap());
    b.set("k".into(), b"two".to_vec()).await.unwrap();
    assert_eq!(
        b.get("k").await.unwrap(),
        Some(b"two".to_vec()),
        "set overwrites"
    );

    b.delete("k".into()).await.unwrap();
    assert_eq!(b.get("k").await.unwrap(), None);
    assert!(!b.exists("k").await.unwrap());
    b.delete("k".into()).await.unwrap();
}

/// Empty values are values; NULs and every byte survive; keys may be any UTF-8.
pub async fn values_are_arbitrary_bytes(fresh: Fresh) {
    let b = fresh.client(Limits::default());
    b.set("empty".into(), Vec::new()).await.unwrap();
    assert_eq!(
        b.get("empty").await.unwrap(),
        Some(Vec::new()),
        "empty is not missing"
    );
    assert!(b.exists("empty").await.unwrap());

    let every_byte: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();
    b.set("bytes".into(), every_byte.clone()).await.unwrap();
    assert_eq!(b.get("bytes").await.unwrap(), Some(every_byte));

    for key in ["", "with space", "ключ", "emoji 🗝", "a:b/c\\d", "\u{0}nul"] {
        b.set(key.into(), key.as_bytes().to_vec()).await.unwrap();
        assert_eq!(
            b.get(key).await.unwrap(),
            Some(key.as_bytes().to_vec()),
            "{key:?}"
        );
    }
    let listed: BTreeSet<String> = all_keys(&b).await.into_iter().collect();
    assert!(listed.contains("ключ") && listed.contains(""), "{listed:?}");
}

/// A listing over many pages returns every key exactly once, then a `none` cursor.
pub async fn list_keys_returns_every_key_once(fresh: Fresh) {
    let b = fresh.client(small_pages(97, 256 * 1024));
    let empty = b.list_keys(None).await.unwrap();
    assert!(
        empty.keys.is_empty() && empty.cursor.is_none(),
        "empty store: {empty:?}"
    );

    let expected: BTreeSet<String> = (0..2500).map(|i| format!("key-{i:05}")).collect();
    let entries: Vec<_> = expected
        .iter()
        .map(|k| (k.clone(), b"v".to_vec()))
        .collect();
    for chunk in entries.chunks(500) {
        b.set_many(chunk.to_vec()).await.unwrap();
    }
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let page = b.list_keys(cursor.as_deref()).await.unwrap();
        assert!(
            page.keys.len() <= 97,
            "page of {} keys exceeds 97",
            page.keys.len()
        );
        pages += 1;
        seen.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert!(pages >= 2500 / 97, "only {pages} pages");
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a key was listed twice");
    assert_eq!(unique, expected);
}

/// Pages also respect the byte budget, and a page always makes progress.
pub async fn list_keys_respects_the_byte_budget(fresh: Fresh) {
    let b = fresh.client(small_pages(1000, 1024));
    for i in 0..50 {
        b.set(format!("{i:03}{}", "x".repeat(197)), Vec::new())
            .await
            .unwrap();
    }
    let mut cursor: Option<String> = None;
    let mut total = 0;
    loop {
        let page = b.list_keys(cursor.as_deref()).await.unwrap();
        let bytes: usize = page.keys.iter().map(String::len).sum();
        assert!(
            !page.keys.is_empty() || page.cursor.is_none(),
            "an empty page with a cursor"
        );
        assert!(bytes <= 1024, "page holds {bytes} key bytes, budget 1024");
        total += page.keys.len();
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(total, 50);
}

/// Keys present for the whole listing appear exactly once while the other client writes.
pub async fn list_keys_while_another_client_writes(fresh: Fresh) {
    let b = fresh.client(small_pages(40, 256 * 1024));
    let writer = fresh.other(Limits::default());
    let stable: BTreeSet<String> = (0..1000).map(|i| format!("stable-{i:04}")).collect();
    for key in &stable {
        b.set(key.clone(), b"s".to_vec()).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut round = 0;
    loop {
        let page = b.list_keys(cursor.as_deref()).await.unwrap();
        seen.extend(page.keys);
        // Between pages: add keys before and after the position, churn volatile keys and
        // overwrite stable ones.
        for prefix in ["a-new", "stable-0500-new", "z-new"] {
            writer
                .set(format!("{prefix}-{round}"), b"n".to_vec())
                .await
                .unwrap();
        }
        writer
            .delete(format!("a-new-{}", round.max(1) - 1))
            .await
            .unwrap();
        writer
            .set(
                format!("stable-{:04}", (round * 37) % 1000),
                b"rewritten".to_vec(),
            )
            .await
            .unwrap();
        round += 1;
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a key was listed twice");
    for key in &stable {
        assert!(unique.contains(key), "stable key {key} was missed");
    }
}

/// Every key with the prefix, the prefix itself included, appears exactly once over small
/// pages while the other client writes inside and outside the prefix's range; nothing else
/// appears.
pub async fn list_keys_with_prefix_is_exact(fresh: Fresh) {
    let b = fresh.client(small_pages(3, 256 * 1024));
    let writer = fresh.other(Limits::default());
    let mut wanted: BTreeSet<String> = (0..40).map(|i| format!("user/{i:03}")).collect();
    wanted.insert("user/".to_string());
    for key in wanted
        .iter()
        .chain(&["user".to_string(), "usez".to_string(), "a".to_string()])
    {
        b.set(key.clone(), b"v".to_vec()).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut round = 0;
    loop {
        let page = b
            .list_keys_with_prefix("user/", cursor.as_deref())
            .await
            .unwrap();
        assert!(
            page.keys.len() <= 3,
            "page over the budget: {:?}",
            page.keys
        );
        seen.extend(page.keys);
        for key in [
            format!("user/new-{round}"),
            format!("usey-{round}"),
            format!("v-{round}"),
        ] {
            writer.set(key, b"n".to_vec()).await.unwrap();
        }
        round += 1;
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a key was listed twice: {seen:?}");
    for key in &seen {
        assert!(key.starts_with("user/"), "{key:?} does not have the prefix");
    }
    for key in &wanted {
        assert!(unique.contains(key), "{key:?} was missed: {seen:?}");
    }
    let none = b.list_keys_with_prefix("nothing/", None).await.unwrap();
    assert_eq!(none, crate::KeyResponse::default());
    // A cursor of another prefix's walk, before this range, starts at its front.
    let early = b.list_keys_with_prefix("a", None).await.unwrap();
    assert_eq!(early.keys, vec!["a".to_string()]);
    let from_elsewhere = encode_cursor(b"a");
    let page = b
        .list_keys_with_prefix("user/", Some(&from_elsewhere))
        .await
        .unwrap();
    assert_eq!(page.keys.first().map(String::as_str), Some("user/"));
}

/// A cursor that is not ours is `other("invalid cursor ...")`, never a panic or a wrong page.
pub async fn list_keys_rejects_foreign_cursors(fresh: Fresh) {
    let b = fresh.client(Limits::default());
    b.set("k".into(), b"v".to_vec()).await.unwrap();
    let garbage = [
        "not a cursor".to_string(),
        "".to_string(),
        "%%%".to_string(),
        "Ag".to_string(),
        encode_cursor(&[0xff, 0xfe, 0xfd]),
    ];
    for cursor in garbage {
        let err = b.list_keys(Some(&cursor)).await.unwrap_err();
        assert!(is_other(&err, "invalid cursor"), "{cursor:?}: {err:?}");
    }
}

/// increment: decimal ASCII, missing starts at the delta, bad values and overflow are `other`.
pub async fn increment_follows_redis_rules(fresh: Fresh) {
    let b = fresh.client(Limits::default());
    assert_eq!(b.increment("n".into(), 5).await.unwrap(), 5);
    assert_eq!(b.get("n").await.unwrap(), Some(b"5".to_vec()));
    assert_eq!(b.increment("n".into(), -8).await.unwrap(), -3);
    assert_eq!(b.get("n").await.unwrap(), Some(b"-3".to_vec()));
    assert_eq!(b.increment("zero".into(), 0).await.unwrap(), 0);
    assert_eq!(b.get("zero").await.unwrap(), Some(b"0".to_vec()));

    b.set("ten".into(), b"10".to_vec()).await.unwrap();
    assert_eq!(b.increment("ten".into(), 1).await.unwrap(), 11);

    for bad in [&b"abc"[..], b"", b"1.5", b" 1", b"+1", b"01"] {
        b.set("bad".into(), bad.to_vec()).await.unwrap();
        let err = b.increment("bad".into(), 1).await.unwrap_err();
        assert!(is_other(&err, "not a decimal"), "{bad:?}: {err:?}");
        assert_eq!(
            b.get("bad").await.unwrap(),
            Some(bad.to_vec()),
            "value changed"
        );
    }

    b.set("big".into(), i64::MAX.to_string().into_bytes())
        .await
        .unwrap();
    let err = b.increment("big".into(), 1).await.unwrap_err();
    assert!(is_other(&err, "overflow"), "{err:?}");
    assert_eq!(
        b.get("big").await.unwrap(),
        Some(i64::MAX.to_string().into_bytes())
    );
    assert!(b.increment("big".into(), i64::MIN).await.is_ok());
}

/// CAS fails after any write since `cas_begin`: change, A -> B -> A, create+delete, delete.
pub async fn cas_detects_every_intervening_write(fresh: Fresh) {
    let b = fresh.client(Limits::default());
    let other = fresh.other(Limits::default());

    let token = b.cas_begin("k".into()).await.unwrap();
    assert_eq!(token.current(), None);
    assert_eq!(
        b.cas_swap(token, b"A".to_vec()).await.unwrap(),
        Swap::Swapped
    );
    assert_eq!(b.get("k").await.unwrap(), Some(b"A".to_vec()));

    // Plain conflict: the fresh token carries the latest value and works.
    let token = b.cas_begin("k".into()).await.unwrap();
    assert_eq!(token.current(), Some(&b"A"[..]));
    other.set("k".into(), b"B".to_vec()).await.unwrap();
    let Swap::Stale(fresh_token) = b.cas_swap(token, b"C".to_vec()).await.unwrap() else {
        panic!("a swap after another client's write must fail");
    };
    assert_eq!(
        fresh_token.current(),
        Some(&b"B"[..]),
        "fresh token holds the latest value"
    );
    assert_eq!(
        b.get("k").await.unwrap(),
        Some(b"B".to_vec()),
        "failed swap wrote"
    );
    assert_eq!(
        b.cas_swap(fresh_token, b"C".to_vec()).await.unwrap(),
        Swap::Swapped
    );

    // A -> B -> A.
    let token = b.cas_begin("k".into()).await.unwrap();
    other.set("k".into(), b"D".to_vec()).await.unwrap();
    other.set("k".into(), b"C".to_vec()).await.unwrap();
    assert!(
        matches!(
            b.cas_swap(token, b"E".to_vec()).await.unwrap(),
            Swap::Stale(_)
        ),
        "A -> B -> A must be detected"
    );

    // Absent, then created and deleted by the other client.
    let token = b.cas_begin("ghost".into()).await.unwrap();
    other.set("ghost".into(), b"boo".to_vec()).await.unwrap();
    other.delete("ghost".into()).await.unwrap();
    assert!(matches!(
        b.cas_swap(token, b"x".to_vec()).await.unwrap(),
        Swap::Stale(_)
    ));

    // Present, then deleted: the fresh token says absent and succeeds.
    let token = b.cas_begin("k".into()).await.unwrap();
    other.delete("k".into()).await.unwrap();
    let Swap::Stale(fresh_token) = b.cas_swap(token, b"F".to_vec()).await.unwrap() else {
        panic!("a swap after a delete must fail");
    };
    assert_eq!(fresh_token.current(), None);
    assert_eq!(
        b.cas_swap(fresh_token, b"F".to_vec()).await.unwrap(),
        Swap::Swapped
    );
    assert_eq!(b.get("k").await.unwrap(), Some(b"F".to_vec()));
}

/// Concurrent CAS retry loops lose no update.
pub async fn cas_retry_loop_counts_exactly(fresh: Fresh) {
    let clients = [
        fresh.client(Limits::default()),
        fresh.other(Limits::default()),
    ];
    let mut tasks = Vec::new();
    for task in 0..4 {
        let b = clients[task % 2].clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                let mut token = b.cas_begin("counter".into()).await.unwrap();
                loop {
                    let now: u64 = token
                        .current()
                        .map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                    match b
                        .cas_swap(token, (now + 1).to_string().into_bytes())
                        .await
                        .unwrap()
                    {
                        Swap::Swapped => break,
                        Swap::Stale(fresh_token) => token = fresh_token,
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        clients[0].get("counter").await.unwrap(),
        Some(b"100".to_vec())
    );
}

/// get-many keeps order and reports missing keys; set-many and delete-many apply every pair.
pub async fn batch_operations(fresh: Fresh) {
    let b = fresh.client(Limits::default());
    b.set_many(vec![
        ("a".into(), b"1".to_vec()),
        ("b".into(), b"2".to_vec()),
        ("c".into(), Vec::new()),
    ])
    .await
    .unwrap();
    let got = b
        .get_many(vec!["c".into(), "missing".into(), "a".into()])
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            ("c".into(), Some(Vec::new())),
            ("missing".into(), None),
            ("a".into(), Some(b"1".to_vec())),
        ]
    );
    b.set_many(vec![
        ("d".into(), b"first".to_vec()),
        ("d".into(), b"last".to_vec()),
    ])
    .await
    .unwrap();
    assert_eq!(
        b.get("d").await.unwrap(),
        Some(b"last".to_vec()),
        "the last pair wins"
    );
    b.delete_many(vec!["a".into(), "nope".into(), "c".into()])
        .await
        .unwrap();
    let left: BTreeSet<String> = all_keys(&b).await.into_iter().collect();
    assert_eq!(left, BTreeSet::from(["b".to_string(), "d".to_string()]));
    assert_eq!(b.get_many(Vec::new()).await.unwrap(), Vec::new());
    b.set_many(Vec::new()).await.unwrap();
    b.delete_many(Vec::new()).await.unwrap();
}

/// Limits reject before any I/O, name the config key, and reject a whole batch.
pub async fn limits_are_checked_before_io(fresh: Fresh) {
    let limits = Limits {
        max_key_bytes: 8,
        max_value_bytes: 16,
        list_page_bytes: 64,
        ..Limits::default()
    };
    let b = fresh.client(limits);
    let long_key = "k".repeat(9);
    for err in [
        b.set(long_key.clone(), Vec::new()).await.unwrap_err(),
        b.get(&long_key).await.unwrap_err(),
        b.increment(long_key.clone(), 1).await.unwrap_err(),
    ] {
        assert!(is_other(&err, "limits.max_key_bytes"), "{err:?}");
    }
    let err = b.set("k".into(), vec![0; 17]).await.unwrap_err();
    assert!(is_other(&err, "limits.max_value_bytes"), "{err:?}");

    let err = b
        .set_many(vec![
            ("ok".into(), b"v".to_vec()),
            ("big".into(), vec![0; 17]),
        ])
        .await
        .unwrap_err();
    assert!(is_other(&err, "limits.max_value_bytes"), "{err:?}");
    assert_eq!(
        b.get("ok").await.unwrap(),
        None,
        "a rejected batch wrote a pair"
    );

    let token = b.cas_begin("k".into()).await.unwrap();
    let err = b.cas_swap(token, vec![0; 17]).await.unwrap_err();
    assert!(is_other(&err, "limits.max_value_bytes"), "{err:?}");
}

/// Many tasks incrementing one key lose nothing.
pub async fn concurrent_increments_are_atomic(fresh: Fresh) {
    let clients = [
        fresh.client(Limits::default()),
        fresh.other(Limits::default()),
    ];
    let mut tasks = Vec::new();
    for task in 0..8 {
        let b = clients[task % 2].clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                b.increment("hits".into(), 1).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(clients[0].increment("hits".into(), 0).await.unwrap(), 400);
}

/// Each client reads its own writes while others write other keys.
pub async fn read_your_writes_under_concurrency(fresh: Fresh) {
    let clients = [
        Arc::new(fresh.client(Limits::default())),
        Arc::new(fresh.other(Limits::default())),
    ];
    let mut tasks = Vec::new();
    for task in 0..8 {
        let b = Arc::clone(&clients[task % 2]);
        tasks.push(tokio::spawn(async move {
            for i in 0..40 {
                let key = format!("t{task}");
                let value = format!("{i}").into_bytes();
                b.set(key.clone(), value.clone()).await.unwrap();
                assert_eq!(
                    b.get(&key).await.unwrap(),
                    Some(value),
                    "stale read of own write"
                );
                assert!(b.exists(&key).await.unwrap());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}
