//! Listing a sharded bucket: an exact merge of the shards' sorted key indexes.
//!
//! Each shard keeps its keys in a sorted set (all scores 0, so `ZRANGEBYLEX` walks them in
//! byte order). A page asks every shard for up to `per_shard` keys after the cursor and merges
//! them. A shard that returned a full run may hold more keys beyond its last one, so only keys
//! up to the smallest such "last key" are certain to be the next ones in order; the page takes
//! those (within the budget) and the cursor is the last key it returned.
//!
//! This is why a listing returns every key that exists for its whole duration exactly once:
//! pages are consecutive ranges of one total order, each resumes strictly after the previous
//! page's last key, and a range is only handed out once every shard has been read past it.
//! (`SCAN` cannot promise "never twice": it may repeat keys across calls while a table is
//! resized, and a cursor cannot carry the set of keys already seen.)

use futures_util::future::try_join_all;

use super::conn::Endpoint;
use super::layout::Layout;
use crate::{KeyPage, PageBudget, Result};

/// Reads up to `per_shard` keys after `after` (a `ZRANGEBYLEX` bound: `-` or `(KEY`) from every
/// shard's index on `endpoint`, concurrently.
pub(crate) async fn fetch(
    endpoint: &Endpoint,
    layout: &Layout,
    after: &str,
    per_shard: usize,
) -> Result<Vec<Vec<String>>> {
    try_join_all((0..layout.shards()).map(|shard| {
        let index = layout.shard(shard).index();
        endpoint.run(move |mut conn| async move {
            redis::cmd("ZRANGEBYLEX")
                .arg(index)
                .arg(after)
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(per_shard)
                .query_async::<Vec<String>>(&mut conn)
                .await
        })
    }))
    .await
}

/// How many keys to ask each of `shards` shards for, to fill a page of `budget`.
pub(crate) fn per_shard(shards: u32, budget: PageBudget) -> usize {
    let page = budget.max_keys.max(1);
    if shards <= 1 {
        return page + 1;
    }
    let even_share = (2 * page).div_ceil(shards as usize) + 1;
    even_share.max(16).min(page + 1)
}

/// Merges `runs` (one per shard, each ascending, each at most `per_shard` keys, no key in two
/// runs) into the next page.
pub(crate) fn merge(runs: Vec<Vec<String>>, per_shard: usize, budget: PageBudget) -> KeyPage {
    let bound = runs
        .iter()
        .filter(|run| run.len() >= per_shard)
        .filter_map(|run| run.last())
        .min()
        .cloned();
    let mut keys: Vec<String> = runs.into_iter().flatten().collect();
    keys.sort_unstable();
    if let Some(bound) = &bound {
        keys.retain(|key| key <= bound);
    }
    let candidates = keys.len();
    let mut page = KeyPage::default();
    let mut bytes = 0;
    for key in keys {
        if !budget.fits(page.keys.len(), bytes, key.len()) {
            break;
        }
        bytes += key.len();
        page.keys.push(key);
    }
    if page.keys.len() < candidates || bound.is_some() {
        page.next = page.keys.last().map(|last| last.as_bytes().to_vec());
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max_keys: usize) -> PageBudget {
        PageBudget {
            max_keys,
            max_bytes: usize::MAX,
        }
    }

    fn run(keys: &[&str]) -> Vec<String> {
        keys.iter().map(std::string::ToString::to_string).collect()
    }

    #[test]
    fn only_keys_below_every_full_run_are_handed_out() {
        // Shard 0 is full at "c": it may hold "ca" next, so "d" must wait.
        let page = merge(vec![run(&["a", "c"]), run(&["b", "d"])], 2, budget(10));
        assert_eq!(page.keys, ["a", "b", "c"]);
        assert_eq!(page.next.as_deref(), Some(&b"c"[..]));
    }

    #[test]
    fn a_listing_ends_when_no_run_is_full_and_all_fit() {
        let page = merge(vec![run(&["a"]), run(&["b"]), vec![]], 2, budget(10));
        assert_eq!(page.keys, ["a", "b"]);
        assert_eq!(page.next, None);
    }

    #[test]
    fn the_budget_cuts_a_page_and_the_cursor_resumes_there() {
        let page = merge(vec![run(&["a", "c"]), run(&["b"])], 5, budget(2));
        assert_eq!(page.keys, ["a", "b"]);
        assert_eq!(page.next.as_deref(), Some(&b"b"[..]));
    }

    #[test]
    fn one_shard_asks_for_one_more_than_a_page() {
        assert_eq!(per_shard(1, budget(1000)), 1001);
        assert_eq!(per_shard(64, budget(1000)), 33);
        assert_eq!(per_shard(64, budget(10)), 11);
    }
}
