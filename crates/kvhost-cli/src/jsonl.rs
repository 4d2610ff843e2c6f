//! The JSON-lines format of `kvhost kv export` / `import` and of the admin API's export and
//! import: one entry per line, `{"key": "...", "value": "<base64>"}`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// One line of an export, and of an import.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    key: std::borrow::Cow<'a, str>,
    /// The value, base64 (standard alphabet, padded).
    value: String,
}

/// What a line that is not an entry is told.
pub const EXPECTED: &str = "expected {\"key\": \"...\", \"value\": \"<base64>\"}";

/// Appends the line for `key` = `value`, newline included, to `out`.
pub fn write_entry(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let line = Line {
        key: key.into(),
        value: STANDARD.encode(value),
    };
    // Serializing a string and a string cannot fail.
    if serde_json::to_writer(&mut *out, &line).is_ok() {
        out.push(b'\n');
    }
}

/// Appends one page of an export of `bucket` to `out`: the entries whose key starts with
/// `prefix`, after `cursor`; returns the cursor of the next page (`None`: that was the last).
/// A key deleted between listing and reading is simply not exported.
pub async fn export_page(
    bucket: &kvhost::BucketHandle,
    prefix: &str,
    cursor: Option<&str>,
    out: &mut Vec<u8>,
) -> kvhost::Result<Option<String>> {
    let page = bucket.list_keys_with_prefix(prefix, cursor).await?;
    for (key, value) in bucket.get_many(page.keys).await? {
        if let Some(value) = value {
            write_entry(out, &key, &value);
        }
    }
    Ok(page.cursor)
}

/// Reads one line (without its newline) as an entry; the error says what is wrong with it.
pub fn read_entry(line: &str) -> Result<(String, Vec<u8>), String> {
    let entry: Line<'_> =
        serde_json::from_str(line).map_err(|err| format!("{EXPECTED} ({err})"))?;
    let value = STANDARD
        .decode(&entry.value)
        .map_err(|_| "the value is not valid base64".to_string())?;
    Ok((entry.key.into_owned(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let mut out = Vec::new();
        write_entry(&mut out, "a\n\"b\"", b"\x00\xffbytes");
        assert_eq!(out.last(), Some(&b'\n'));
        let line = std::str::from_utf8(&out[..out.len() - 1]).unwrap();
        assert_eq!(
            read_entry(line).unwrap(),
            ("a\n\"b\"".to_string(), b"\x00\xffbytes".to_vec())
        );
        assert!(read_entry("{\"key\":\"k\"}")
            .unwrap_err()
            .starts_with(EXPECTED));
        assert!(read_entry("{\"key\":\"k\",\"value\":\"!!\"}").is_err());
    }
}
