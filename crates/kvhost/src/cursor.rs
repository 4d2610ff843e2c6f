//! The cursor codec: what a guest sees of a listing's position.
//!
//! A cursor string is base64url (no padding) of `[CURSOR_VERSION][position bytes]`, where the
//! position is the backend's own (for ordered backends, the last key returned). The version
//! byte lets a later kvhost change the layout and still reject, rather than misread, an old
//! cursor. Anything that does not decode is `Error::Other("invalid cursor ...")`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::{Error, Result};

/// The layout version written as the first byte of every cursor.
pub(crate) const CURSOR_VERSION: u8 = 1;

/// Wraps a backend position into the opaque cursor string.
pub(crate) fn encode_cursor(position: &[u8]) -> String {
    let mut raw = Vec::with_capacity(position.len() + 1);
    raw.push(CURSOR_VERSION);
    raw.extend_from_slice(position);
    URL_SAFE_NO_PAD.encode(raw)
}

/// Unwraps a cursor string into the backend position it was made from.
pub(crate) fn decode_cursor(cursor: &str) -> Result<Vec<u8>> {
    let raw = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| invalid("it is not a cursor this host returned"))?;
    match raw.split_first() {
        Some((&CURSOR_VERSION, position)) => Ok(position.to_vec()),
        Some((version, _)) => Err(invalid(&format!("unknown cursor version {version}"))),
        None => Err(invalid("it is empty")),
    }
}

/// The error for a cursor that cannot be used, with the reason.
pub(crate) fn invalid(reason: &str) -> Error {
    Error::other(format!(
        "invalid cursor: {reason}; pass the cursor from the previous list-keys page, or none to start over"
    ))
}

/// Reads the position of an ordered backend: the last key of the previous page.
pub(crate) fn ordered_position(position: Vec<u8>) -> Result<String> {
    String::from_utf8(position).map_err(|_| invalid("its position is not a key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_any_position() {
        for position in [&b""[..], b"a", b"\x00\xff key/with:odd=chars"] {
            assert_eq!(decode_cursor(&encode_cursor(position)).unwrap(), position);
        }
    }

    #[test]
    fn rejects_foreign_cursors() {
        for bad in ["", "!!!", "not base64 at all", "AA==", "Ag"] {
            let err = decode_cursor(bad).unwrap_err();
            assert!(
                err.to_string().starts_with("invalid cursor"),
                "{bad}: {err}"
            );
        }
    }
}
