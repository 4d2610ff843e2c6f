//! The on-disk layout of the embedded store, in one place.
//!
//! * File: `<data_dir>/kvhost.redb`, one redb database per data directory.
//! * Table `kvhost_meta` (`&str -> u64`): `format` = [`FORMAT_VERSION`], `seq` = the version
//!   stamped on the latest committed write.
//! * Table `bucket:<name>` per bucket (`&str -> &[u8]`): key -> record, where a record is the
//!   write's version as 8 bytes little-endian followed by the value bytes.
//!
//! Every integer is fixed little-endian (redb's own `u64` encoding and ours), never
//! host-endian, so a data directory moves between machines. Changing anything here means a new
//! [`FORMAT_VERSION`].

use redb::TableDefinition;

use crate::{Error, Result};

/// The layout version this build reads and writes.
pub(crate) const FORMAT_VERSION: u64 = 1;
/// The database file inside the data directory.
pub(crate) const FILE_NAME: &str = "kvhost.redb";

pub(crate) const META: TableDefinition<'static, &str, u64> = TableDefinition::new("kvhost_meta");
pub(crate) const META_FORMAT: &str = "format";
pub(crate) const META_SEQ: &str = "seq";

const VERSION_BYTES: usize = 8;

/// The table of bucket `name`.
pub(crate) fn table_name(bucket: &str) -> String {
    format!("bucket:{bucket}")
}

/// The definition of a bucket table, given its name from [`table_name`].
pub(crate) fn bucket_table(table_name: &str) -> TableDefinition<'_, &'static str, &'static [u8]> {
    TableDefinition::new(table_name)
}

/// A record: `version` then `value`.
pub(crate) fn encode(version: u64, value: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(VERSION_BYTES + value.len());
    record.extend_from_slice(&version.to_le_bytes());
    record.extend_from_slice(value);
    record
}

/// Splits a record into its version and value.
pub(crate) fn decode(record: &[u8]) -> Result<(u64, &[u8])> {
    match record.split_first_chunk::<VERSION_BYTES>() {
        Some((version, value)) => Ok((u64::from_le_bytes(*version), value)),
        None => Err(Error::other(format!(
            "embedded store: a record of {} bytes is shorter than its {VERSION_BYTES}-byte header; \
             the data file is damaged",
            record.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_little_endian_and_round_trip() {
        let record = encode(0x0102, b"v");
        assert_eq!(record, [0x02, 0x01, 0, 0, 0, 0, 0, 0, b'v']);
        assert_eq!(decode(&record).unwrap(), (0x0102, &b"v"[..]));
        assert_eq!(decode(&encode(7, b"")).unwrap(), (7, &b""[..]));
        assert!(decode(b"short").is_err());
    }
}
