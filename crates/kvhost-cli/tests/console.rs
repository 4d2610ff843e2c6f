//! The web console in headless Chromium: `tests/browser/console.mjs` (playwright-core driving
//! Debian's chromium, both installed and pinned by scripts/setup-browser.sh) against a live
//! `kvhost serve --admin` with a Spin app. A missing browser or playwright-core fails the
//! test; it is never skipped.

mod support;

use std::process::Command;

use support::admin::token_in;
use support::served::serve;

#[test]
fn the_console_browses_edits_deletes_imports_and_exports_in_chromium() {
    let root = support::repo_root();
    let setup = Command::new(root.join("scripts/setup-browser.sh"))
        .status()
        .expect("scripts/setup-browser.sh runs");
    assert!(
        setup.success(),
        "installing chromium and playwright-core failed"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kvhost.toml");
    std::fs::write(
        &config,
        "[buckets.default]\n\n[limits]\nlist_page_keys = 10\n",
    )
    .unwrap();
    let served = serve(
        dir.path(),
        &support::guests().join("spin5.wasm"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--admin",
            "127.0.0.1:0",
        ],
    );
    let admin = served.admin.expect("serve says where the admin API is");
    let mut browser = Command::new("node");
    browser
        .arg(root.join("tests/browser/console.mjs"))
        .current_dir(root.join("tests/browser"))
        .env("KVHOST_ADMIN_URL", format!("http://{admin}"))
        .env("KVHOST_ADMIN_TOKEN", token_in(&dir.path().join("data")))
        .env("KVHOST_APP_URL", format!("http://{}", served.address))
        .env("HOME", dir.path());
    // `KVHOST_SCREENSHOT=PATH cargo test --test console` refreshes the README's screenshot.
    if let Some(path) = std::env::var_os("KVHOST_SCREENSHOT") {
        browser.env("KVHOST_SCREENSHOT", path);
    }
    let output = browser.output().expect("node runs (Node.js 20+ is needed)");
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the browser test failed (above)");
    served.stop_cleanly();
}
