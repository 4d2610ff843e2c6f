//! The model-based property test: random operation sequences checked against a `BTreeMap`.
//!
//! Each case makes a fresh bucket and runs up to 60 operations drawn from every method of the
//! API, each issued by the client under test or by the second client. A paged listing may be
//! in progress throughout (small pages, both a key and a byte budget); every page is checked
//! as it arrives: no key twice, no key that never existed during the listing, and at the end
//! every key that existed for the whole listing. Cases default to 48; set `PROPTEST_CASES`
//! for more.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::{runtime, Harness};
use crate::{counter, BucketHandle, Limits, Swap};

/// One step of a generated sequence. `by_other` picks the second client.
#[derive(Debug, Clone)]
enum Step {
    Set(String, Vec<u8>, bool),
    SetNumber(String, i64, bool),
    Delete(String, bool),
    Get(String),
    Exists(String),
    Increment(String, i64, bool),
    CasSwap(String, Vec<u8>),
    CasConflict(String, Vec<u8>, Vec<u8>),
    GetMany(Vec<String>),
    SetMany(Vec<(String, Vec<u8>)>, bool),
    DeleteMany(Vec<String>, bool),
    ListPage,
}

fn key() -> impl Strategy<Value = String> {
    "[a-d]{0,3}"
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..6)
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (key(), value(), any::<bool>()).prop_map(|(k, v, o)| Step::Set(k, v, o)),
        1 => (key(), -5i64..5, any::<bool>()).prop_map(|(k, n, o)| Step::SetNumber(k, n, o)),
        2 => (key(), any::<bool>()).prop_map(|(k, o)| Step::Delete(k, o)),
        2 => key().prop_map(Step::Get),
        1 => key().prop_map(Step::Exists),
        2 => (key(), prop_oneof![-3i64..3, Just(i64::MAX), Just(i64::MIN)], any::<bool>())
            .prop_map(|(k, d, o)| Step::Increment(k, d, o)),
        1 => (key(), value()).prop_map(|(k, v)| Step::CasSwap(k, v)),
        1 => (key(), value(), value()).prop_map(|(k, a, b)| Step::CasConflict(k, a, b)),
        1 => prop::collection::vec(key(), 0..4).prop_map(Step::GetMany),
        1 => (prop::collection::vec((key(), value()), 0..4), any::<bool>())
            .prop_map(|(e, o)| Step::SetMany(e, o)),
        1 => (prop::collection::vec(key(), 0..4), any::<bool>())
            .prop_map(|(k, o)| Step::DeleteMany(k, o)),
        4 => Just(Step::ListPage),
    ]
}

/// A listing in progress and what the model knows about it.
#[derive(Default)]
struct Listing {
    cursor: Option<String>,
    seen: BTreeSet<String>,
    /// Keys present at the start and never deleted since.
    throughout: BTreeSet<String>,
    /// Keys present at any moment since the start.
    ever: BTreeSet<String>,
}

struct Model {
    map: BTreeMap<String, Vec<u8>>,
    listing: Option<Listing>,
}

impl Model {
    fn put(&mut self, key: &str, value: Vec<u8>) {
        if let Some(listing) = &mut self.listing {
            listing.ever.insert(key.to_string());
        }
        self.map.insert(key.to_string(), value);
    }

    fn remove(&mut self, key: &str) {
        if let Some(listing) = &mut self.listing {
            listing.throughout.remove(key);
        }
        self.map.remove(key);
    }
}

/// The page limits of the test: 3 keys or 5 key bytes, whichever comes first.
fn limits() -> Limits {
    Limits {
        max_key_bytes: 4,
        list_page_keys: 3,
        list_page_bytes: 5,
        ..Limits::default()
    }
}

/// Runs the property test against fresh buckets from `harness`.
pub fn check<H: Harness>(harness: &H) {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(48);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let rt = runtime();
    let strategy = prop::collection::vec(step(), 1..60);
    let result = runner.run(&strategy, |steps| {
        rt.block_on(async {
            let fresh = harness.fresh().await;
            let (mine, theirs) = (fresh.client(limits()), fresh.other(limits()));
            let mut model = Model {
                map: BTreeMap::new(),
                listing: None,
            };
            for step in steps {
                apply(&mine, &theirs, &mut model, step).await;
            }
        });
        Ok(())
    });
    if let Err(failure) = result {
        panic!("model-based test failed: {failure}");
    }
}

async fn apply(mine: &BucketHandle, theirs: &BucketHandle, model: &mut Model, step: Step) {
    let pick = |other: bool| if other { theirs } else { mine };
    match step {
        Step::Set(k, v, o) => {
            pick(o).set(k.clone(), v.clone()).await.unwrap();
            model.put(&k, v);
        }
        Step::SetNumber(k, n, o) => {
            pick(o).set(k.clone(), counter::format(n)).await.unwrap();
            model.put(&k, counter::format(n));
        }
        Step::Delete(k, o) => {
            pick(o).delete(k.clone()).await.unwrap();
            model.remove(&k);
        }
        Step::Get(k) => assert_eq!(
            mine.get(&k).await.unwrap(),
            model.map.get(&k).cloned(),
            "get {k:?}"
        ),
        Step::Exists(k) => assert_eq!(mine.exists(&k).await.unwrap(), model.map.contains_key(&k)),
        Step::Increment(k, d, o) => {
            let expected = counter::add(&k, model.map.get(&k).map(Vec::as_slice), d);
            let got = pick(o).increment(k.clone(), d).await;
            assert_eq!(got, expected, "increment {k:?} by {d}");
            if let Ok(new) = expected {
                model.put(&k, counter::format(new));
            }
        }
        Step::CasSwap(k, v) => {
            let token = mine.cas_begin(k.clone()).await.unwrap();
            assert_eq!(token.current(), model.map.get(&k).map(Vec::as_slice));
            assert_eq!(
                mine.cas_swap(token, v.clone()).await.unwrap(),
                Swap::Swapped
            );
            model.put(&k, v);
        }
        Step::CasConflict(k, theirs_value, mine_value) => {
            let token = mine.cas_begin(k.clone()).await.unwrap();
            theirs.set(k.clone(), theirs_value.clone()).await.unwrap();
            model.put(&k, theirs_value.clone());
            let Swap::Stale(fresh) = mine.cas_swap(token, mine_value.clone()).await.unwrap() else {
                panic!("swap after the other client's write succeeded");
            };
            assert_eq!(fresh.current(), Some(theirs_value.as_slice()));
            assert_eq!(
                mine.cas_swap(fresh, mine_value.clone()).await.unwrap(),
                Swap::Swapped
            );
            model.put(&k, mine_value);
        }
        Step::GetMany(keys) => {
            let expected: Vec<_> = keys
                .iter()
                .map(|k| (k.clone(), model.map.get(k).cloned()))
                .collect();
            assert_eq!(mine.get_many(keys).await.unwrap(), expected);
        }
        Step::SetMany(entries, o) => {
            pick(o).set_many(entries.clone()).await.unwrap();
            for (k, v) in entries {
                model.put(&k, v);
            }
        }
        Step::DeleteMany(keys, o) => {
            pick(o).delete_many(keys.clone()).await.unwrap();
            for k in keys {
                model.remove(&k);
            }
        }
        Step::ListPage => list_page(mine, model).await,
    }
}

async fn list_page(mine: &BucketHandle, model: &mut Model) {
    let listing = model.listing.get_or_insert_with(|| Listing {
        throughout: model.map.keys().cloned().collect(),
        ever: model.map.keys().cloned().collect(),
        ..Listing::default()
    });
    let page = mine.list_keys(listing.cursor.as_deref()).await.unwrap();
    assert!(
        page.keys.len() <= 3,
        "page over the key budget: {:?}",
        page.keys
    );
    let bytes: usize = page.keys.iter().map(String::len).sum();
    assert!(
        page.keys.len() <= 1 || bytes <= 5,
        "page over the byte budget: {:?}",
        page.keys
    );
    for key in page.keys {
        assert!(
            listing.ever.contains(&key),
            "listed {key:?}, which never existed"
        );
        assert!(listing.seen.insert(key.clone()), "listed {key:?} twice");
    }
    match page.cursor {
        Some(cursor) => listing.cursor = Some(cursor),
        None => {
            let missed: Vec<_> = listing.throughout.difference(&listing.seen).collect();
            assert!(
                missed.is_empty(),
                "listing missed keys present throughout: {missed:?}"
            );
            model.listing = None;
        }
    }
}
