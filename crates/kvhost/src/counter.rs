//! The byte format of counters: decimal ASCII, exactly as Redis `INCRBY` reads and writes it.
//!
//! Keeping one format means a value written by `set(b"10")` can be incremented, an incremented
//! value reads back as `b"11"`, and every backend (memory, embedded, Redis) agrees on which
//! values are numbers. The rules follow Redis' `string2ll`: an optional `-`, then `0` alone or
//! a digit 1-9 followed by digits; no `+`, no spaces, no leading zeros, no `-0`.

use crate::{Error, Result};

/// Parses a stored counter value.
pub(crate) fn parse(key: &str, bytes: &[u8]) -> Result<i64> {
    let not_integer = || not_integer(key);
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let canonical = match digits {
        [b'0'] => bytes.len() == 1,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical || bytes.len() > 20 {
        return Err(not_integer());
    }
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(not_integer)
}

/// Adds `delta` to the counter stored as `current` (missing: 0), returning the new value.
pub(crate) fn add(key: &str, current: Option<&[u8]>, delta: i64) -> Result<i64> {
    let base = match current {
        Some(bytes) => parse(key, bytes)?,
        None => 0,
    };
    base.checked_add(delta)
        .ok_or_else(|| overflow(key, base, delta))
}

/// The error for a stored value that is not a counter.
pub(crate) fn not_integer(key: &str) -> Error {
    Error::other(format!(
        "cannot increment key {key:?}: its value is not a decimal 64-bit integer \
         (increment works on values like b\"42\" or b\"-7\")"
    ))
}

/// The error for a sum that does not fit.
pub(crate) fn overflow(key: &str, base: i64, delta: i64) -> Error {
    Error::other(format!(
        "cannot increment key {key:?}: {base} + {delta} overflows a 64-bit integer"
    ))
}

/// The stored form of a counter value.
pub(crate) fn format(value: i64) -> Vec<u8> {
    value.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_redis_integers() {
        assert_eq!(parse("k", b"0").unwrap(), 0);
        assert_eq!(parse("k", b"42").unwrap(), 42);
        assert_eq!(parse("k", b"-7").unwrap(), -7);
        assert_eq!(parse("k", b"9223372036854775807").unwrap(), i64::MAX);
        assert_eq!(parse("k", b"-9223372036854775808").unwrap(), i64::MIN);
    }

    #[test]
    fn rejects_what_redis_rejects() {
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"1 ",
            b"01",
            b"-0",
            b"1.5",
            b"abc",
            b"9223372036854775808",
            b"\x001",
        ] {
            assert!(parse("k", bad).is_err(), "{bad:?} must not parse");
        }
    }

    #[test]
    fn add_reports_overflow() {
        assert_eq!(add("k", None, 5).unwrap(), 5);
        assert_eq!(add("k", Some(b"10"), -15).unwrap(), -5);
        let err = add("k", Some(b"9223372036854775807"), 1).unwrap_err();
        assert!(err.to_string().contains("overflows"), "{err}");
    }
}
