//! The embedded store's change logs and watcher positions (see [`crate::changes`]).
//!
//! Layout (additions to `layout`'s, in the same database file):
//! * Table `log:<bucket table>` (`u128 -> &[u8]`) for a bucket with a change log: position ->
//!   change. A position is the commit's version (high 64 bits) and the change's index within
//!   that commit (low 64 bits), so positions grow in commit order. A change is a kind byte
//!   (1 set, 0 delete), the key's length (u32 little-endian), the key, then the value.
//! * Table `kvhost_changes_dropped` (`&str -> u128`): per bucket table, the position of the
//!   newest change dropped to keep the log at its retention.
//! * Table `kvhost_watch_positions` (`&str -> &[u8]`): `<bucket table>\n<watcher>` -> the
//!   watcher's position.
//!
//! Invariants: a change is appended by the writer in the same transaction as the write it
//! records, so the log holds exactly the committed changes, in commit order; the log is cut
//! to its retention in that transaction too; a reader whose position is older than the
//! newest dropped change is told it fell behind.

use redb::{
    ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};

use super::writer::Fatal;
use crate::changes::{Change, ChangeRead};
use crate::{Error, Result};

pub(crate) const DROPPED: TableDefinition<'static, &str, u128> =
    TableDefinition::new("kvhost_changes_dropped");
pub(crate) const POSITIONS: TableDefinition<'static, &str, &[u8]> =
    TableDefinition::new("kvhost_watch_positions");

const SET: u8 = 1;
const DELETE: u8 = 0;

/// The name of the change log of bucket table `table`.
pub(crate) fn log_name(table: &str) -> String {
    format!("log:{table}")
}

fn log_table(name: &str) -> TableDefinition<'_, u128, &'static [u8]> {
    TableDefinition::new(name)
}

/// The key of a watcher's position.
pub(crate) fn position_key(table: &str, watcher: &str) -> String {
    format!("{table}\n{watcher}")
}

/// A position from a commit's version and a change's index in it.
fn position(version: u64, index: u64) -> u128 {
    (u128::from(version) << 64) | u128::from(index)
}

fn encode(key: &str, value: Option<&[u8]>) -> Result<Vec<u8>, Fatal> {
    let length = u32::try_from(key.len()).map_err(|_| Fatal("a key over 4 GiB".into()))?;
    let mut record = Vec::with_capacity(5 + key.len() + value.map_or(0, <[u8]>::len));
    record.push(if value.is_some() { SET } else { DELETE });
    record.extend_from_slice(&length.to_le_bytes());
    record.extend_from_slice(key.as_bytes());
    record.extend_from_slice(value.unwrap_or_default());
    Ok(record)
}

fn decode(record: &[u8]) -> Result<Change> {
    let damaged = || Error::other("embedded store: a change-log record is damaged");
    let (&kind, rest) = record.split_first().ok_or_else(damaged)?;
    let (length, rest) = rest.split_first_chunk::<4>().ok_or_else(damaged)?;
    let length = usize::try_from(u32::from_le_bytes(*length)).map_err(|_| damaged())?;
    if rest.len() < length || kind > SET {
        return Err(damaged());
    }
    let (key, value) = rest.split_at(length);
    let key = String::from_utf8(key.to_vec()).map_err(|_| damaged())?;
    Ok(Change {
        key,
        value: (kind == SET).then(|| value.to_vec()),
    })
}

/// Appends `changes` of one job to bucket table `table`'s log, at `version` from index
/// `*next_index` on, then drops the oldest changes past `retention`.
pub(crate) fn append(
    txn: &WriteTransaction,
    table: &str,
    retention: u64,
    version: u64,
    next_index: &mut u64,
    changes: &[(String, Option<Vec<u8>>)],
) -> Result<(), Fatal> {
    let name = log_name(table);
    let mut log = txn.open_table(log_table(&name))?;
    for (key, value) in changes {
        log.insert(
            position(version, *next_index),
            encode(key, value.as_deref())?.as_slice(),
        )?;
        *next_index += 1;
    }
    let mut dropped = None;
    while log.len()? > retention {
        match log.pop_first()? {
            Some((at, _)) => dropped = Some(at.value()),
            None => break,
        }
    }
    if let Some(at) = dropped {
        txn.open_table(DROPPED)?.insert(table, at)?;
    }
    Ok(())
}

/// Creates bucket table `table`'s log if missing (so readers can open it).
pub(crate) fn create(txn: &WriteTransaction, table: &str) -> Result<(), redb::Error> {
    txn.open_table(log_table(&log_name(table)))?;
    txn.open_table(DROPPED)?;
    txn.open_table(POSITIONS)?;
    Ok(())
}

fn read_position(position: &[u8]) -> Result<u128> {
    <[u8; 16]>::try_from(position)
        .map(u128::from_le_bytes)
        .map_err(|_| Error::other("invalid change position: it was not made by this bucket"))
}

/// At most `max` changes of `table` after `after` (`None`: from the oldest kept).
pub(crate) fn read(
    db: &redb::Database,
    table: &str,
    after: Option<&[u8]>,
    max: usize,
) -> Result<ChangeRead> {
    let failed = |err: redb::Error| {
        Error::other(format!(
            "embedded store: reading the change log failed: {err}"
        ))
    };
    let txn = db.begin_read().map_err(|e| failed(e.into()))?;
    let dropped = txn
        .open_table(DROPPED)
        .map_err(|e| failed(e.into()))?
        .get(table)
        .map_err(|e| failed(e.into()))?
        .map_or(0, |guard| guard.value());
    let after = match after {
        Some(position) => read_position(position)?,
        None => dropped,
    };
    if after < dropped {
        return Ok(ChangeRead::FellBehind);
    }
    let name = log_name(table);
    let log = txn
        .open_table(log_table(&name))
        .map_err(|e| failed(e.into()))?;
    let mut changes = Vec::new();
    let mut next = after;
    let range = log
        .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
        .map_err(|e| failed(e.into()))?;
    for entry in range.take(max.max(1)) {
        let (at, record) = entry.map_err(|e| failed(e.into()))?;
        changes.push(decode(record.value())?);
        next = at.value();
    }
    Ok(ChangeRead::Changes {
        changes,
        next: next.to_le_bytes().to_vec(),
    })
}

/// The position of `table`'s latest change (or of the newest dropped one, or 0).
pub(crate) fn head(db: &redb::Database, table: &str) -> Result<Vec<u8>> {
    let failed = |err: redb::Error| {
        Error::other(format!(
            "embedded store: reading the change log failed: {err}"
        ))
    };
    let txn = db.begin_read().map_err(|e| failed(e.into()))?;
    let name = log_name(table);
    let log = txn
        .open_table(log_table(&name))
        .map_err(|e| failed(e.into()))?;
    let last = log
        .last()
        .map_err(|e| failed(e.into()))?
        .map(|(at, _)| at.value());
    let head = match last {
        Some(at) => at,
        None => txn
            .open_table(DROPPED)
            .map_err(|e| failed(e.into()))?
            .get(table)
            .map_err(|e| failed(e.into()))?
            .map_or(0, |guard| guard.value()),
    };
    Ok(head.to_le_bytes().to_vec())
}

/// Watcher `watcher`'s saved position in `table`.
pub(crate) fn saved_position(
    db: &redb::Database,
    table: &str,
    watcher: &str,
) -> Result<Option<Vec<u8>>> {
    let failed = |err: redb::Error| {
        Error::other(format!(
            "embedded store: reading a watcher position failed: {err}"
        ))
    };
    let txn = db.begin_read().map_err(|e| failed(e.into()))?;
    let positions = txn.open_table(POSITIONS).map_err(|e| failed(e.into()))?;
    let saved = positions
        .get(position_key(table, watcher).as_str())
        .map_err(|e| failed(e.into()))?
        .map(|guard| guard.value().to_vec());
    Ok(saved)
}

/// Saves a watcher position inside the writer's transaction.
pub(crate) fn save_position(
    txn: &WriteTransaction,
    key: &str,
    position: &[u8],
) -> Result<(), Fatal> {
    txn.open_table(POSITIONS)?.insert(key, position)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_an_error() {
        for (key, value) in [
            ("k", Some(&b"v\x00"[..])),
            ("", Some(&b""[..])),
            ("gone", None),
        ] {
            let record = encode(key, value).unwrap();
            let change = decode(&record).unwrap();
            assert_eq!((change.key.as_str(), change.value.as_deref()), (key, value));
        }
        assert!(decode(b"").is_err());
        assert!(decode(&[1, 9, 0, 0, 0, b'k']).is_err());
        assert!(decode(&[7, 0, 0, 0, 0]).is_err());
        assert!(position(1, 0) > position(0, u64::MAX));
    }
}
