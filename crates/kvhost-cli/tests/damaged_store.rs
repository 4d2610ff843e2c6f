//! `kvhost kv` and `kvhost serve` on a damaged store file: clear errors (exit 2, "store
//! damaged", a 500), never a panic (exit 101, "task panicked"); `kv check` finds the damage
//! and `kv export --salvage` saves what is readable.

mod support;

use std::path::Path;
use std::process::Output;

use support::served::{runtime, send, serve};
use support::{guest, kv_with_input};

const ENTRIES: usize = 3000;

/// `kvhost kv --data-dir data ARGS...` in `dir`.
fn kv(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let all: Vec<&str> = ["--data-dir", "data"].iter().chain(args).copied().collect();
    kv_with_input(dir, &all, stdin)
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_damaged_store_is_checked_and_salvaged_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..ENTRIES)
        .map(|n| {
            format!(
                "{{\"key\": \"k{n:05}\", \"value\": \"{}\"}}\n",
                "dmFsdWVz".repeat(20)
            )
        })
        .collect();
    let imported = kv(dir.path(), &["import", "default"], lines.as_bytes());
    assert!(imported.status.success(), "{}", text(&imported));
    let intact = kv(dir.path(), &["check"], b"");
    assert!(intact.status.success(), "{}", text(&intact));
    assert_eq!(
        String::from_utf8_lossy(&intact.stdout),
        format!("default: {ENTRIES} entries, all readable\n")
    );

    let file = dir.path().join("data/kvhost.redb");
    let pristine = std::fs::read(&file).unwrap();
    let mut found_damage = false;
    let mut salvaged_some = false;
    // A damaged file that opens, and the request that meets its damage.
    let mut to_serve: Option<(Vec<u8>, String)> = None;
    // 256 flipped bytes at offsets through the file; at each, no command may panic.
    for step in 1..40 {
        let start = (pristine.len() - 256) * step / 40;
        let mut bytes = pristine.clone();
        for byte in &mut bytes[start..start + 256] {
            *byte ^= 0xa5;
        }
        std::fs::write(&file, &bytes).unwrap();
        let check = kv(dir.path(), &["check"], b"");
        let list = kv(dir.path(), &["list", "default"], b"");
        let salvage = kv(dir.path(), &["export", "default", "--salvage"], b"");
        for output in [&check, &list, &salvage] {
            let all = text(output);
            assert!(!all.contains("panicked"), "flip at {start}: {all}");
            assert!(
                matches!(output.status.code(), Some(0 | 2)),
                "flip at {start}: {all}"
            );
        }
        if check.status.success() {
            continue;
        }
        found_damage = true;
        if String::from_utf8_lossy(&check.stderr).contains("where it is opened") {
            // Damage in the pages read at open: nothing to salvage, and said so.
            assert!(text(&check).contains("store damaged"), "{}", text(&check));
            assert_eq!(salvage.status.code(), Some(2), "{}", text(&salvage));
            continue;
        }
        assert!(
            String::from_utf8_lossy(&check.stdout).contains("DAMAGED"),
            "{}",
            text(&check)
        );
        assert!(
            String::from_utf8_lossy(&check.stderr).contains("export BUCKET --salvage"),
            "{}",
            text(&check)
        );
        let report = String::from_utf8_lossy(&check.stdout).into_owned();
        let damaged_path = if report.contains("listing stopped early") {
            Some("/keys".to_string())
        } else {
            report
                .split("(first: \"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .map(|key| format!("/kv/{key}"))
        };
        if let (None, Some(path)) = (&to_serve, damaged_path) {
            to_serve = Some((bytes.clone(), path));
        }
        // Salvage writes only whole, valid lines: each one a key of the original data.
        let salvaged = String::from_utf8_lossy(&salvage.stdout).into_owned();
        for line in salvaged.lines() {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            let key = entry["key"].as_str().unwrap();
            assert!(key.starts_with('k') && key.len() == 6, "{line}");
        }
        if salvage.status.success() {
            salvaged_some |= !salvaged.is_empty();
            assert!(
                String::from_utf8_lossy(&salvage.stderr).contains("salvaged default"),
                "{}",
                text(&salvage)
            );
        }
    }
    assert!(
        found_damage,
        "no flip was noticed: the test exercised nothing"
    );
    assert!(
        salvaged_some,
        "no damaged store was salvaged: the test exercised too little"
    );

    // `kvhost serve` on a damaged file: the request that meets the damage fails (500), the
    // others are served, and nothing panics.
    let (bytes, damaged_path) = to_serve.expect("a damaged file that opens");
    std::fs::write(&file, &bytes).unwrap();
    let served = serve(dir.path(), &guest("spin"), &[]);
    let (damaged, intact) = runtime().block_on(async {
        let damaged = send(served.address, "GET", &damaged_path, b"").await;
        let intact = send(served.address, "POST", "/hit/fresh", b"v").await;
        (damaged, intact)
    });
    assert_eq!(damaged.0, 500, "{damaged_path}: {damaged:?}");
    assert_eq!(intact.0, 200, "{intact:?}");
    let (status, log) = served.stop();
    assert!(!log.iter().any(|line| line.contains("panicked")), "{log:?}");
    assert!(status.code().is_some(), "{log:?}");
}
