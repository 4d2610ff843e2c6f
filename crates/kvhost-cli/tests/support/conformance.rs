//! The conformance guests' side of the tests: the checks each guest must report, the config
//! it expects, and how a run of one is judged. Shared by the Python (`guests.rs`) and
//! JavaScript (`guests_js.rs`) guests, which report the same checks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{cache_dir, guest, KVHOST};

pub const DRAFT2_CHECKS: &[&str] = &[
    "open_errors",
    "get_set_delete_exists",
    "read_your_writes",
    "buckets_are_separate",
    "limits_are_errors",
    "pagination_across_many_pages",
    "pagination_while_writing",
    "increment_counts_in_decimal",
    "cas_conflict_and_retry",
    "cas_detects_a_b_a_and_creates_absent_keys",
    "cas_outlives_its_bucket_handle",
    "batch_get_set_delete",
    "open_handles_are_capped",
    "leave_data_for_the_host",
];

pub const DRAFT_CHECKS: &[&str] = &[
    "open_errors",
    "get_set_delete_exists",
    "read_your_writes",
    "limits_are_errors",
    "pagination_with_u64_cursors",
    "pagination_while_writing",
    "increment_is_unsigned",
    "batch_get_many_returns_options",
    "open_handles_are_capped",
    "leave_data_for_the_host",
];

/// The config the conformance guests expect, with `backend` for the two granted buckets:
/// `memory`, `embedded`, `relaxed` (embedded), `redis URL` or `redis-cluster URL,URL,...`.
pub fn write_config(dir: &Path, backend: &str) -> PathBuf {
    let path = dir.join("kvhost.toml");
    let bucket = match backend.split_once(' ') {
        Some(("redis", url)) => format!("backend = \"redis\"\nurl = \"{url}\"\n"),
        Some(("redis-cluster", nodes)) => {
            let nodes: Vec<String> = nodes.split(',').map(|node| format!("{node:?}")).collect();
            format!(
                "backend = \"redis-cluster\"\nnodes = [{}]\n",
                nodes.join(", ")
            )
        }
        _ if backend == "relaxed" => "durability = \"relaxed\"\n".to_string(),
        _ => format!("backend = \"{backend}\"\n"),
    };
    std::fs::write(
        &path,
        format!(
            "data_dir = \"data\"\nallow = [\"default\", \"other\"]\n\
             [buckets.default]\n{bucket}[buckets.other]\n{bucket}\
             [buckets.secret]\nbackend = \"memory\"\n\
             [limits]\nmax_value_bytes = 1048576\nlist_page_keys = 100\n\
             max_batch_keys = 1000\nmax_open_buckets = 64\n"
        ),
    )
    .unwrap();
    path
}

pub fn kvhost(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(KVHOST);
    command
        .current_dir(dir)
        .env("KVHOST_CACHE_DIR", cache_dir())
        .args(args);
    command
}

fn run_guest(dir: &Path, config: &Path, name: &str, extra: &[&str]) -> Output {
    let guest = guest(name);
    let mut args = vec!["run", "--config", config.to_str().unwrap()];
    args.push(guest.to_str().unwrap());
    args.extend_from_slice(extra);
    kvhost(dir, &args).output().unwrap()
}

fn passed_checks(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("ok "))
        .map(str::to_string)
        .collect()
}

pub fn assert_guest_passes(backend: &str, name: &str, checks: &[&str], persisted: (&str, &str)) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), backend);
    let output = run_guest(dir.path(), &config, name, &[]);
    assert!(
        output.status.success(),
        "guest {name} on {backend} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(passed_checks(&output), checks, "guest {name} on {backend}");
    if backend != "memory" {
        // What the guest wrote is on disk for the next process.
        let (key, value) = persisted;
        let config = config.to_str().unwrap();
        let output = kvhost(
            dir.path(),
            &["kv", "--config", config, "get", "default", key],
        )
        .output()
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), value);
    }
}
