//! Helpers shared by the CLI's end-to-end tests (and the serve benchmark): where the built
//! guests are, and a small HTTP/1.1 client with a load generator.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod admin;
pub mod conformance;
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
        assert!(
            status.success(),
            "building the guests (Python and JavaScript) failed"
        );
        root.join("target/guests")
    })
}

/// Runs `kvhost kv ARGS...` in `dir`, feeding it `stdin` (nothing is written when it is
/// empty: a command that does not read would close the pipe first).
pub fn kv_with_input(dir: &Path, args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(KVHOST)
        .arg("kv")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kvhost starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    if !stdin.is_empty() {
        input.write_all(stdin).expect("kvhost reads its input");
    }
    drop(input);
    child.wait_with_output().expect("kvhost exits")
}

/// The built guest `name` (`draft2`, `spin`, ...).
pub fn guest(name: &str) -> PathBuf {
    guests().join(format!("{name}.wasm"))
}

/// The compile cache shared by all tests, so each guest is compiled once per build.
pub fn cache_dir() -> PathBuf {
    guests().join("cache")
}
