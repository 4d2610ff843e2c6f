//! Reading a whole bucket that may be damaged: `kvhost kv check` (is everything readable?)
//! and `kvhost kv export --salvage` (export what is).
//!
//! [`walk`] lists a bucket page by page and reads each page's values at once; when a page
//! cannot be read whole, it reads that page's keys one by one, so one damaged value costs
//! only itself. A listing that fails ends the walk: the keys after that point cannot be found.

use kvhost::{BucketHandle, Registry};

/// What a walk over one bucket found.
#[derive(Default)]
pub struct Walk {
    /// Entries read.
    pub read: usize,
    /// Keys listed whose value could not be read, with the first error.
    pub unreadable: Vec<String>,
    /// The error that ended the listing early, if one did.
    pub listing_failed: Option<String>,
    /// The first error a value read gave.
    pub first_read_error: Option<String>,
}

impl Walk {
    /// Whether every key was listed and every value read.
    pub fn complete(&self) -> bool {
        self.unreadable.is_empty() && self.listing_failed.is_none()
    }
}

/// Reads every entry of `bucket` that can be read, handing each to `entry` in key order.
pub async fn walk(bucket: &BucketHandle, mut entry: impl FnMut(String, Vec<u8>)) -> Walk {
    let mut walk = Walk::default();
    let mut cursor: Option<String> = None;
    loop {
        let page = match bucket.list_keys(cursor.as_deref()).await {
            Ok(page) => page,
            Err(err) => {
                walk.listing_failed = Some(err.to_string());
                return walk;
            }
        };
        match bucket.get_many(page.keys.clone()).await {
            Ok(entries) => {
                for (key, value) in entries {
                    // A key deleted between listing and reading is not an entry.
                    if let Some(value) = value {
                        walk.read += 1;
                        entry(key, value);
                    }
                }
            }
            Err(_) => {
                for key in page.keys {
                    match bucket.get(&key).await {
                        Ok(Some(value)) => {
                            walk.read += 1;
                            entry(key, value);
                        }
                        Ok(None) => {}
                        Err(err) => {
                            walk.first_read_error.get_or_insert_with(|| err.to_string());
                            walk.unreadable.push(key);
                        }
                    }
                }
            }
        }
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return walk,
        }
    }
}

/// `kvhost kv check`: walks `buckets` (every configured one if empty), printing one line per
/// bucket to stdout; returns whether all were complete.
pub async fn check(registry: &Registry, buckets: &[String]) -> anyhow::Result<bool> {
    let names: Vec<String> = if buckets.is_empty() {
        registry.names().map(str::to_string).collect()
    } else {
        buckets.to_vec()
    };
    let mut all_complete = true;
    for name in names {
        let bucket = crate::setup::open_bucket(registry, &name)?;
        let walk = walk(&bucket, |_, _| {}).await;
        all_complete &= walk.complete();
        println!("{}", describe(&name, &walk));
    }
    Ok(all_complete)
}

/// One line about a walk: `NAME: N entries, all readable`, or what was not.
pub fn describe(name: &str, walk: &Walk) -> String {
    if walk.complete() {
        return format!("{name}: {} entries, all readable", walk.read);
    }
    let mut line = format!("{name}: DAMAGED: {} entries readable", walk.read);
    if !walk.unreadable.is_empty() {
        line += &format!(
            ", {} keys unreadable (first: {:?}: {})",
            walk.unreadable.len(),
            walk.unreadable[0],
            walk.first_read_error.as_deref().unwrap_or("?")
        );
    }
    if let Some(err) = &walk.listing_failed {
        line += &format!(", the listing stopped early: {err}");
    }
    line
}
