//! A Redis bucket's change feed (see [`crate::changes`]): one stream per shard, written by the
//! same script as the value.
//!
//! A bucket configured with a change log sets `log` (the changes kept per shard) in every
//! shard's meta hash when it first opens; from then on every write script, run by any kvhost
//! process, appends its changes to the shard's stream (see `scripts`). A position is the last
//! version read in each shard (8 bytes little-endian per shard, in shard order), so a reader
//! resumes exactly, and a gap between its position and the oldest entry kept means changes
//! were cut: [`ChangeRead::FellBehind`].
//!
//! Order: changes of one shard come in commit order, so a key's changes do (a key lives in one
//! shard); shards interleave. A read takes from the shards in turn, so a busy shard cannot
//! starve the others.

use std::time::Duration;

use futures_util::future::try_join_all;
use redis::Value;

use super::conn::Endpoint;
use super::layout::Layout;
use super::wait::Waiters;
use super::{bad_reply, scripts};
use crate::changes::{Change, ChangeRead};
use crate::{Error, Result};

/// Turns the change log on in every shard of `layout`, keeping `retention` changes in all
/// (split evenly over the shards, rounded up). Writers in every process log from then on.
pub(crate) async fn enable(endpoint: &Endpoint, layout: &Layout, retention: u64) -> Result<()> {
    let per_shard = retention.div_ceil(u64::from(layout.shards())).max(1);
    try_join_all((0..layout.shards()).map(|shard| {
        let meta = layout.shard(shard).meta();
        endpoint.run(move |mut conn| async move {
            redis::cmd("HSET")
                .arg(meta)
                .arg("log")
                .arg(per_shard)
                .query_async::<()>(&mut conn)
                .await
        })
    }))
    .await
    .map(drop)
}

/// The position after every change committed so far (each shard's current version).
pub(crate) async fn head(endpoint: &Endpoint, layout: &Layout) -> Result<Vec<u8>> {
    let versions = try_join_all((0..layout.shards()).map(|shard| {
        let meta = layout.shard(shard).meta();
        endpoint.run(move |mut conn| async move {
            redis::cmd("HGET")
                .arg(meta)
                .arg("seq")
                .query_async::<Option<u64>>(&mut conn)
                .await
        })
    }))
    .await?;
    Ok(encode(versions.into_iter().map(Option::unwrap_or_default)))
}

/// The position watcher `watcher` saved, if any.
pub(crate) async fn saved_position(
    endpoint: &Endpoint,
    layout: &Layout,
    watcher: &str,
) -> Result<Option<Vec<u8>>> {
    let (hash, watcher) = (layout.positions_key(), watcher.to_string());
    endpoint
        .run(move |mut conn| async move {
            redis::cmd("HGET")
                .arg(hash)
                .arg(watcher)
                .query_async(&mut conn)
                .await
        })
        .await
}

/// Saves watcher `watcher`'s position (as durable as the server's persistence makes it).
pub(crate) async fn save_position(
    endpoint: &Endpoint,
    layout: &Layout,
    watcher: String,
    position: Vec<u8>,
) -> Result<()> {
    let hash = layout.positions_key();
    endpoint
        .run(move |mut conn| async move {
            redis::cmd("HSET")
                .arg(hash)
                .arg(watcher)
                .arg(position)
                .query_async(&mut conn)
                .await
        })
        .await
}

/// As [`read`], waiting up to `wait` (with `waiters`' blocking reads) while there is nothing.
pub(crate) async fn read_or_wait(
    endpoint: &Endpoint,
    layout: &Layout,
    waiters: &Waiters,
    mut after: Option<Vec<u8>>,
    max: usize,
    wait: Duration,
) -> Result<ChangeRead> {
    let deadline = crate::changes::deadline_after(wait);
    if layout.shards() == 1 {
        return read_only_shard(endpoint, layout, waiters, after, max, deadline).await;
    }
    loop {
        let mut signal = waiters.subscribe();
        let answer = read(endpoint, layout, after.as_deref(), max).await?;
        let next = match &answer {
            ChangeRead::Changes { changes, next }
                if changes.is_empty() && tokio::time::Instant::now() < deadline =>
            {
                next
            }
            _ => return Ok(answer),
        };
        let _armed = waiters.arm(&decode(next, layout.shards())?);
        if tokio::time::timeout_at(deadline, signal.changed())
            .await
            .is_err()
        {
            return Ok(answer);
        }
        after = Some(next.clone());
    }
}

/// [`read_or_wait`] for a bucket of one shard: one blocking read straight from the reader's
/// version answers (see `wait`); the script reads only when that read ends with nothing, or
/// with something it cannot vouch for.
async fn read_only_shard(
    endpoint: &Endpoint,
    layout: &Layout,
    waiters: &Waiters,
    mut after: Option<Vec<u8>>,
    max: usize,
    deadline: tokio::time::Instant,
) -> Result<ChangeRead> {
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if let (Some(position), false) = (&after, remaining.is_zero()) {
            let version = decode(position, 1)?[0];
            if let Some(entries) = waiters.next_in_only_shard(version, max, remaining).await? {
                let last = entries.last().map_or(version, |(version, _)| *version);
                return Ok(ChangeRead::Changes {
                    changes: entries.into_iter().map(|(_, change)| change).collect(),
                    next: encode([last]),
                });
            }
        }
        let answer = read(endpoint, layout, after.as_deref(), max).await?;
        match &answer {
            ChangeRead::Changes { changes, next }
                if changes.is_empty() && tokio::time::Instant::now() < deadline =>
            {
                after = Some(next.clone());
            }
            _ => return Ok(answer),
        }
    }
}

/// One shard's part of a read: where the reader stands before its entries, and the entries
/// (version, change) in order.
struct ShardRead {
    base: u64,
    entries: std::vec::IntoIter<(u64, Change)>,
}

/// At most `max` changes after `after` (`None`: from the oldest kept), without waiting.
pub(crate) async fn read(
    endpoint: &Endpoint,
    layout: &Layout,
    after: Option<&[u8]>,
    max: usize,
) -> Result<ChangeRead> {
    let after = match after {
        Some(position) => Some(decode(position, layout.shards())?),
        None => None,
    };
    let max = max.max(1);
    let shards = try_join_all((0..layout.shards()).map(|shard| {
        let keys = [layout.shard(shard).meta(), layout.shard(shard).changes()];
        let from = after
            .as_ref()
            .and_then(|versions| versions.get(shard as usize))
            .map_or_else(|| "-".to_string(), u64::to_string);
        endpoint.run(move |mut conn| async move {
            scripts::CHANGES
                .key(&keys[..])
                .arg(from)
                .arg(max)
                .invoke_async::<Vec<Value>>(&mut conn)
                .await
        })
    }))
    .await?;
    let mut reads = Vec::with_capacity(shards.len());
    for reply in shards {
        match parse(&reply)? {
            Some(read) => reads.push(read),
            None => return Ok(ChangeRead::FellBehind),
        }
    }
    Ok(take_in_turn(reads, max))
}

/// Takes one change from each shard in turn until `max` are taken or none is left.
fn take_in_turn(mut reads: Vec<ShardRead>, max: usize) -> ChangeRead {
    let mut changes = Vec::new();
    let mut progress = true;
    while changes.len() < max && progress {
        progress = false;
        for read in &mut reads {
            if changes.len() == max {
                break;
            }
            if let Some((version, change)) = read.entries.next() {
                read.base = version;
                changes.push(change);
                progress = true;
            }
        }
    }
    ChangeRead::Changes {
        changes,
        next: encode(reads.iter().map(|read| read.base)),
    }
}

/// Reads a [`scripts::CHANGES`] reply; `None`: the shard's changes after the position were cut.
fn parse(reply: &[Value]) -> Result<Option<ShardRead>> {
    let bad = || bad_reply("a change-stream read");
    let text = |value: &Value| -> Result<Option<Vec<u8>>> {
        redis::from_redis_value_ref(value).map_err(|_| bad())
    };
    let number = |value: &Value| -> Result<u64> {
        let bytes = text(value)?.ok_or_else(bad)?;
        super::version_of(&bytes)
    };
    let (head, entries) = reply.split_at_checked(2).ok_or_else(bad)?;
    if number(&head[1])? != 0 {
        return Ok(None);
    }
    let base = number(&head[0])?;
    if entries.len() % 3 != 0 {
        return Err(bad());
    }
    let entries = entries
        .chunks_exact(3)
        .map(|entry| {
            let key = text(&entry[1])?.ok_or_else(bad)?;
            let key = String::from_utf8(key).map_err(|_| bad())?;
            Ok((
                number(&entry[0])?,
                Change {
                    key,
                    value: text(&entry[2])?,
                },
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(ShardRead {
        base,
        entries: entries.into_iter(),
    }))
}

/// A position: each shard's last version read.
pub(crate) fn encode(versions: impl IntoIterator<Item = u64>) -> Vec<u8> {
    versions.into_iter().flat_map(u64::to_le_bytes).collect()
}

/// Reads a position made by [`encode`] for a bucket of `shards` shards.
pub(crate) fn decode(position: &[u8], shards: u32) -> Result<Vec<u64>> {
    let invalid = || Error::other("invalid change position: it was not made by this bucket");
    if position.len() != shards as usize * 8 {
        return Err(invalid());
    }
    position
        .chunks_exact(8)
        .map(|chunk| {
            <[u8; 8]>::try_from(chunk)
                .map(u64::from_le_bytes)
                .map_err(|_| invalid())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(base: u64, entries: &[(u64, &str)]) -> ShardRead {
        ShardRead {
            base,
            entries: entries
                .iter()
                .map(|(version, key)| {
                    let change = Change {
                        key: (*key).to_string(),
                        value: None,
                    };
                    (*version, change)
                })
                .collect::<Vec<_>>()
                .into_iter(),
        }
    }

    #[test]
    fn shards_are_read_in_turn_and_positions_follow_what_was_taken() {
        let reads = vec![
            shard(4, &[(5, "a"), (6, "b"), (7, "c")]),
            shard(9, &[]),
            shard(1, &[(2, "x")]),
        ];
        let ChangeRead::Changes { changes, next } = take_in_turn(reads, 3) else {
            panic!("changes");
        };
        let keys: Vec<_> = changes.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["a", "x", "b"]);
        assert_eq!(decode(&next, 3).unwrap(), [6, 9, 2]);
        assert!(decode(&next, 2).is_err());
        assert!(decode(b"junk", 1).is_err());
    }
}
