//! The admin API's bearer token: made at start or read from `--admin-token-file`, and checked
//! on every request in constant time.
//!
//! Invariant: the token is never logged and never part of an error message; `Debug` prints
//! a placeholder.

use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Fewest characters a token from `--admin-token-file` may have.
const MIN_TOKEN_CHARS: usize = 32;

/// The admin API's bearer token.
#[derive(Clone)]
pub struct Token {
    text: String,
    /// SHA-256 of `text`: requests are compared by digest, so the comparison takes the same
    /// time whatever the length or content of what a client sends.
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The system's random source failed.
    #[error("cannot make an admin token: the system's random source failed ({0})")]
    Random(String),
    /// The token file cannot be read.
    #[error("cannot read --admin-token-file {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The token file holds too short a token, or characters a header cannot carry.
    #[error("--admin-token-file {path} must hold one token of at least {MIN_TOKEN_CHARS} visible ASCII characters (e.g. `openssl rand -hex 32 > {path}`)")]
    Unusable {
        /// The file.
        path: String,
    },
}

impl Token {
    /// A fresh token: 32 random bytes as 64 hex digits.
    pub fn generate() -> Result<Token, TokenError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|err| TokenError::Random(err.to_string()))?;
        let text = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        Ok(Token::from_text(text))
    }

    /// The token in `path` (surrounding whitespace ignored).
    pub fn read(path: &Path) -> Result<Token, TokenError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| TokenError::Read {
            path: shown.clone(),
            error,
        })?;
        let text = text.trim();
        if text.len() < MIN_TOKEN_CHARS || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::Unusable { path: shown });
        }
        Ok(Token::from_text(text.to_string()))
    }

    fn from_text(text: String) -> Token {
        let digest = Sha256::digest(text.as_bytes()).into();
        Token { text, digest }
    }

    /// The token itself, for the discovery file only.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// Whether an `Authorization` header value is `Bearer <this token>`, in constant time.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let presented = authorization
            .and_then(|value| value.strip_prefix(b"Bearer "))
            .unwrap_or_default();
        let digest: [u8; 32] = Sha256::digest(presented).into();
        // Evaluated in full even for a missing header, so timing tells nothing.
        bool::from(digest.ct_eq(&self.digest)) && authorization.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_only_the_exact_bearer_token() {
        let token = Token::generate().unwrap();
        assert_eq!(token.expose().len(), 64);
        let header = format!("Bearer {}", token.expose());
        assert!(token.admits(Some(header.as_bytes())));
        assert!(!token.admits(None));
        assert!(!token.admits(Some(token.expose().as_bytes())));
        assert!(!token.admits(Some(format!("{header}x").as_bytes())));
        assert!(!token.admits(Some(b"Bearer ")));
        assert!(!Token::generate().unwrap().admits(Some(header.as_bytes())));
        assert_eq!(format!("{token:?}"), "Token(..)");
    }

    #[test]
    fn a_token_file_must_hold_a_long_enough_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "short\n").unwrap();
        assert!(matches!(
            Token::read(&path),
            Err(TokenError::Unusable { .. })
        ));
        std::fs::write(&path, format!("  {}\n", "k".repeat(40))).unwrap();
        let token = Token::read(&path).unwrap();
        assert!(token.admits(Some(format!("Bearer {}", "k".repeat(40)).as_bytes())));
        assert!(matches!(
            Token::read(&dir.path().join("missing")),
            Err(TokenError::Read { .. })
        ));
    }
}
