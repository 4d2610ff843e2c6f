//! The discovery file: `admin.json` in the data dir, written (mode 0600) while an admin
//! listener runs, so that `kvhost kv` on the same machine finds the running server and its
//! token when the server holds the data dir.
//!
//! Invariants: the file is created with mode 0600 before the token is written into it (a
//! temp file, then renamed over), and it is removed when the listener stops; a file left by a
//! killed server is only ever used when the data dir is locked, and then names a URL that no
//! longer answers, which `kvhost kv` reports.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The file's name in the data dir.
pub const FILE_NAME: &str = "admin.json";

/// What the discovery file says.
#[derive(Serialize, Deserialize)]
pub struct Discovered {
    /// The admin API's base URL, e.g. `http://127.0.0.1:9091`.
    pub url: String,
    /// The bearer token.
    pub token: String,
    /// The process serving it.
    pub pid: u32,
}

impl std::fmt::Debug for Discovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovered")
            .field("url", &self.url)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

/// The discovery file of a running listener; removed when dropped.
#[derive(Debug)]
pub struct Published {
    path: PathBuf,
}

impl Published {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes `discovered` into `data_dir` (created if missing) with mode 0600.
pub fn publish(data_dir: &Path, discovered: &Discovered) -> Result<Published> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let path = data_dir.join(FILE_NAME);
    let temp = data_dir.join(format!(".{FILE_NAME}.{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let _ = std::fs::remove_file(&temp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        serde_json::to_writer_pretty(&mut file, discovered)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&temp, &path)
    })();
    if let Err(err) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(err).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(Published { path })
}

/// The discovery file in `data_dir`, if there is one.
pub fn find(data_dir: &Path) -> Result<Option<Discovered>> {
    let path = data_dir.join(FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{} is not a kvhost admin discovery file", path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn publishes_privately_and_removes_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        assert!(find(&data_dir).unwrap().is_none());
        let published = publish(
            &data_dir,
            &Discovered {
                url: "http://127.0.0.1:1".into(),
                token: "t".repeat(64),
                pid: 7,
            },
        )
        .unwrap();
        let mode = std::fs::metadata(published.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let found = find(&data_dir).unwrap().unwrap();
        assert_eq!((found.url.as_str(), found.pid), ("http://127.0.0.1:1", 7));
        assert!(!format!("{found:?}").contains("ttt"));
        drop(published);
        assert!(find(&data_dir).unwrap().is_none());
        assert_eq!(std::fs::read_dir(&data_dir).unwrap().count(), 0);
    }
}
