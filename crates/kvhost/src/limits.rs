//! Size limits, checked by [`crate::BucketHandle`] before any I/O.
//!
//! Every message names the limit and the config key that raises it, so a user who hits one
//! knows both what happened and what to change.

use serde::Deserialize;

use crate::{Error, PageBudget, Result};

/// The `[limits]` table of `kvhost.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest key, in bytes (default 1 KiB).
    pub max_key_bytes: usize,
    /// Largest value, in bytes (default 16 MiB).
    pub max_value_bytes: usize,
    /// Most keys in one `list-keys` page (default 1,000).
    pub list_page_keys: usize,
    /// Most key bytes in one `list-keys` page (default 256 KiB).
    pub list_page_bytes: usize,
    /// Most bucket handles one component instance may hold open at once (default 1,024).
    pub max_open_buckets: usize,
    /// Most CAS handles one component instance may hold open at once (default 1,024). Each
    /// handle keeps the value it read, so this also bounds the memory a guest can pin.
    pub max_open_cas_handles: usize,
    /// Most keys in one `get-many`, `set-many` or `delete-many` call (default 100,000).
    pub max_batch_keys: usize,
    /// Most bytes one batch call may carry: its keys, and for `set-many` its values too
    /// (default 64 MiB). With `max_value_bytes`, this bounds what one call copies into the
    /// host (see [`Limits::largest_call_bytes`]).
    pub max_batch_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: 1024,
            max_value_bytes: 16 * 1024 * 1024,
            list_page_keys: 1000,
            list_page_bytes: 256 * 1024,
            max_open_buckets: 1024,
            max_open_cas_handles: 1024,
            max_batch_keys: 100_000,
            max_batch_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// Checks that the limits make sense together. The error is the offending config key
    /// (e.g. `limits.list_page_keys`) and what is wrong with it.
    pub fn validate(&self) -> std::result::Result<(), (String, String)> {
        let positive = [
            ("max_key_bytes", self.max_key_bytes),
            ("max_value_bytes", self.max_value_bytes),
            ("list_page_keys", self.list_page_keys),
            ("list_page_bytes", self.list_page_bytes),
            ("max_open_buckets", self.max_open_buckets),
            ("max_open_cas_handles", self.max_open_cas_handles),
            ("max_batch_keys", self.max_batch_keys),
            ("max_batch_bytes", self.max_batch_bytes),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err((format!("limits.{name}"), "must be at least 1".to_string()));
        }
        if self.list_page_bytes < self.max_key_bytes {
            return Err((
                "limits.list_page_bytes".to_string(),
                format!(
                    "{} is less than limits.max_key_bytes ({}), so a page could not hold the \
                     longest key",
                    self.list_page_bytes, self.max_key_bytes
                ),
            ));
        }
        Ok(())
    }

    /// The page bounds for `list_keys`.
    pub fn page_budget(&self) -> PageBudget {
        PageBudget {
            max_keys: self.list_page_keys,
            max_bytes: self.list_page_bytes,
        }
    }

    /// Rejects a key longer than `max_key_bytes`.
    pub fn check_key(&self, key: &str) -> Result<()> {
        if key.len() > self.max_key_bytes {
            return Err(Error::other(format!(
                "key is {} bytes; the limit is {} (limits.max_key_bytes)",
                key.len(),
                self.max_key_bytes
            )));
        }
        Ok(())
    }

    /// Rejects a batch call naming more than `max_batch_keys` keys or carrying more than
    /// `max_batch_bytes` bytes (keys, plus values for `set-many`).
    pub fn check_batch(&self, keys: usize, bytes: usize) -> Result<()> {
        if keys > self.max_batch_keys {
            return Err(Error::other(format!(
                "batch names {keys} keys; the limit is {} per call (limits.max_batch_keys); \
                 split it into smaller calls",
                self.max_batch_keys
            )));
        }
        if bytes > self.max_batch_bytes {
            return Err(Error::other(format!(
                "batch carries {bytes} bytes of keys and values; the limit is {} per call \
                 (limits.max_batch_bytes); split it into smaller calls",
                self.max_batch_bytes
            )));
        }
        Ok(())
    }

    /// The most bytes one call within these limits copies from a guest into the host: a
    /// whole batch, or one key and value, plus the canonical ABI's 16 bytes of pointer and
    /// length per list element and string. A wasmtime host must let calls copy more than this
    /// (`Store::set_hostcall_fuel`), or a call over a limit traps instead of getting `other`;
    /// kvhost's CLI sets four times this, and never less than wasmtime's default of 128 MiB.
    pub fn largest_call_bytes(&self) -> usize {
        let batch = self
            .max_batch_bytes
            .saturating_add(self.max_batch_keys.saturating_mul(32));
        let single = self.max_key_bytes.saturating_add(self.max_value_bytes);
        batch.max(single).saturating_add(64 * 1024)
    }

    /// Rejects a value larger than `max_value_bytes`.
    pub fn check_value(&self, key: &str, value: &[u8]) -> Result<()> {
        if value.len() > self.max_value_bytes {
            return Err(Error::other(format!(
                "value for key {:?} is {} bytes; the limit is {} (limits.max_value_bytes)",
                truncated(key),
                value.len(),
                self.max_value_bytes
            )));
        }
        Ok(())
    }
}

/// A key shortened for messages, so a rejected 10 MB key does not become a 10 MB message.
pub(crate) fn truncated(key: &str) -> &str {
    const SHOWN: usize = 64;
    if key.len() <= SHOWN {
        return key;
    }
    let mut end = SHOWN;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    &key[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_config_key() {
        let limits = Limits::default();
        let err = limits.check_key(&"k".repeat(2048)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "key is 2048 bytes; the limit is 1024 (limits.max_key_bytes)"
        );
        let err = limits
            .check_value("k", &vec![0; 16 * 1024 * 1024 + 1])
            .unwrap_err();
        assert!(err.to_string().contains("limits.max_value_bytes"), "{err}");
    }

    #[test]
    fn validate_rejects_pages_smaller_than_a_key() {
        let limits = Limits {
            list_page_bytes: 10,
            ..Limits::default()
        };
        let (key, message) = limits.validate().unwrap_err();
        assert_eq!(key, "limits.list_page_bytes");
        assert!(message.contains("limits.max_key_bytes"), "{message}");
        assert!(Limits::default().validate().is_ok());
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let key = "é".repeat(100);
        assert!(truncated(&key).len() <= 64);
    }
}
