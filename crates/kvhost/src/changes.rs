//! Change feeds: what watchers read.
//!
//! A bucket with a change log (`watch_retention` in its config) records every committed
//! change, in commit order, in the same commit as the change itself, and keeps the last
//! `watch_retention` of them. A reader names a position (from an earlier read, or `None` for
//! the oldest change kept) and gets what was committed after it; a position older than the
//! oldest change kept gets [`ChangeRead::FellBehind`], never a silent gap. Positions are
//! opaque bytes, like list positions; only the bucket that made one may read it.
//!
//! A watcher's position is kept by the bucket too ([`crate::Bucket::save_watch_position`]),
//! so a restarted watcher resumes where it stopped.

use crate::Error;

/// One committed change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The key.
    pub key: String,
    /// The value it was set to; `None`: it was deleted.
    pub value: Option<Vec<u8>>,
}

/// The answer to [`crate::Bucket::changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeRead {
    /// The changes committed after the position asked for, oldest first (possibly none,
    /// when nothing was committed within the wait), and the position after the last of them.
    Changes {
        /// The changes.
        changes: Vec<Change>,
        /// Where the next read starts.
        next: Vec<u8>,
    },
    /// The position is older than the oldest change kept: some changes after it were
    /// dropped (the log keeps `watch_retention` changes). Start again from a snapshot of the
    /// bucket taken after [`crate::Bucket::change_head`].
    FellBehind,
}

/// The error of a change-feed call on a bucket that keeps no change log.
pub(crate) fn no_change_log() -> Error {
    Error::other(
        "this bucket keeps no change log: give it watch_retention in kvhost.toml (a watcher \
         configured for it turns the log on), or use a backend with change logs (embedded, \
         memory)",
    )
}

/// Reads with `read` until it finds changes (or falls behind), waiting up to `wait` for
/// `signal` (sent after every commit that logged a change) between empty reads.
pub(crate) async fn wait_for_changes(
    signal: &tokio::sync::watch::Sender<u64>,
    wait: std::time::Duration,
    mut read: impl FnMut() -> crate::Result<ChangeRead>,
) -> crate::Result<ChangeRead> {
    // Subscribed before the first read, so a commit between a read and the wait wakes it.
    let mut committed = signal.subscribe();
    let deadline = deadline_after(wait);
    loop {
        committed.borrow_and_update();
        let answer = read()?;
        if !matches!(&answer, ChangeRead::Changes { changes, .. } if changes.is_empty()) {
            return Ok(answer);
        }
        match tokio::time::timeout_at(deadline, committed.changed()).await {
            Ok(Ok(())) => {}
            // The wait is over, or the bucket is gone.
            _ => return Ok(answer),
        }
    }
}

/// When a wait of `wait` from now ends (a wait too long to represent ends in a year: it is
/// "no end" for any caller).
pub(crate) fn deadline_after(wait: std::time::Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(wait)
        .unwrap_or_else(|| now + std::time::Duration::from_secs(365 * 24 * 3600))
}

/// A position that is a sequence number (8 bytes, little-endian).
pub(crate) fn seq_position(seq: u64) -> Vec<u8> {
    seq.to_le_bytes().to_vec()
}

/// Reads a position made by [`seq_position`].
pub(crate) fn read_seq_position(position: &[u8]) -> crate::Result<u64> {
    <[u8; 8]>::try_from(position)
        .map(u64::from_le_bytes)
        .map_err(|_| Error::other("invalid change position: it was not made by this bucket"))
}
