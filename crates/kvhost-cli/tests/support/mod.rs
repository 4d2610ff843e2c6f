//! Helpers shared by the CLI's end-to-end tests (and the serve benchmark): where the built
//! guests are, and a small HTTP/1.1 client with a load generator.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod hello;
pub mod http;
pub mod served;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The kvhost binary under test.
pub const KVHOST: &str = env!("CARGO_BIN_EXE_kvhost");

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The directory holding the built guests; builds them on first use (once per process; the
/// script itself is up-to-date aware and locked across processes).
pub fn guests() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = repo_root();
        let status = Command::new(root.join("scripts/build-guests.sh"))
            .status()
            .expect("scripts/build-guests.sh runs");
        assert!(status.success(), "building the Python guests failed");
        root.join("target/guests")
    })
}

/// The built guest `name` (`draft2`, `spin`, ...).
pub fn guest(name: &str) -> PathBuf {
    guests().join(format!("{name}.wasm"))
}

/// The compile cache shared by all tests, so each guest is compiled once per build.
pub fn cache_dir() -> PathBuf {
    guests().join("cache")
}
