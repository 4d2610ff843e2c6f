//! `--bucket NAME[=URL]`: a bucket named on the command line (or in a Spin runtime config),
//! parsed without ever echoing a password a URL may hold.

use kvhost::config::check_bucket_name;
use kvhost::{BackendKind, BucketConfig};

/// A `--bucket NAME[=URL]` flag: a bucket added on the command line.
#[derive(Debug, Clone)]
pub struct BucketSpec {
    /// The bucket's name.
    pub name: String,
    /// How it is stored.
    pub bucket: BucketConfig,
}

impl std::str::FromStr for BucketSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        // Nothing of `text` is echoed unless it is known to hold no password: a bucket name
        // that passed the check, or a URL scheme.
        let (name, url) = match text.split_once('=') {
            Some((name, url)) => (name, Some(url)),
            None if text.contains("://") || text.contains('@') => {
                return Err(
                    "a bucket needs a name: write NAME=URL (e.g. cache=redis://HOST:PORT/0)"
                        .to_string(),
                )
            }
            None => (text, None),
        };
        if let Err(message) = check_bucket_name(name) {
            return Err(if name.contains(':') || name.contains('@') {
                "the bucket name before '=' is not valid: use 1 to 64 characters of A-Z, a-z, \
                 0-9, '_', '-', '.'"
                    .to_string()
            } else {
                format!("bucket {name:?}: {message}")
            });
        }
        let bucket = match url {
            None | Some("embedded:") => BucketConfig::default(),
            Some("memory:") => BucketConfig {
                backend: BackendKind::Memory,
                ..BucketConfig::default()
            },
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                BucketConfig::redis(url.to_string())
            }
            Some(other) => {
                let scheme = other
                    .split_once("://")
                    .map(|(scheme, _)| scheme)
                    .or_else(|| other.strip_suffix(':'))
                    .filter(|scheme| is_scheme(scheme));
                let unknown = match scheme {
                    Some(scheme) => format!("unknown backend {scheme:?}"),
                    None => "not a backend URL".to_string(),
                };
                return Err(format!(
                    "bucket {name:?}: {unknown}; use NAME (embedded), NAME=embedded:, \
                     NAME=memory: or NAME=redis[s]://HOST:PORT/DB"
                ));
            }
        };
        Ok(BucketSpec {
            name: name.to_string(),
            bucket,
        })
    }
}

/// Whether `text` is a URL scheme (RFC 3986: a letter, then letters, digits, `+ - .`); only
/// a scheme followed by `://` or ending the text is echoed.
fn is_scheme(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_specs() {
        let spec: BucketSpec = "cache=memory:".parse().unwrap();
        assert_eq!(
            (spec.name.as_str(), spec.bucket.backend),
            ("cache", BackendKind::Memory)
        );
        let spec: BucketSpec = "logs".parse().unwrap();
        assert_eq!(spec.bucket.backend, BackendKind::Embedded);
        assert!("a b".parse::<BucketSpec>().is_err());
        let err = "x=ftp://user:hunter2@nope"
            .parse::<BucketSpec>()
            .unwrap_err();
        assert!(err.contains("unknown backend \"ftp\""), "{err}");
        assert!(!err.contains("hunter2"), "password echoed: {err}");
        let spec: BucketSpec = "x=redis://u:hunter2@127.0.0.1:6379/0".parse().unwrap();
        assert_eq!(spec.bucket.backend, BackendKind::Redis);
        assert!(
            !format!("{spec:?}").contains("hunter2"),
            "password in Debug"
        );
        let spec: BucketSpec = "x=rediss://u:hunter2@127.0.0.1:6379/0".parse().unwrap();
        assert_eq!(spec.bucket.backend, BackendKind::Redis);
        // Mistakes that would put the password where a name or scheme is echoed.
        for (text, wanted) in [
            ("redis://:hunter2@host/0", "a bucket needs a name"),
            ("x=hunter2@host:6379", "not a backend URL"),
            ("x=hunter2:6379", "not a backend URL"),
            ("x=hunter2:", "unknown backend \"hunter2\""),
            (
                "u:hunter2@h=redis://h/0",
                "the bucket name before '=' is not valid",
            ),
        ] {
            let err = text.parse::<BucketSpec>().unwrap_err();
            assert!(err.contains(wanted), "{text}: {err}");
            if wanted != "unknown backend \"hunter2\"" {
                assert!(!err.contains("hunter2"), "password echoed: {err}");
            }
        }
    }
}
