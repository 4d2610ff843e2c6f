//! Watchers end to end: the Python `watch-service` guest (guests/watcher, componentize-py)
//! run by `kvhost serve --watcher` mirrors bucket `src` into bucket `mirror` while four
//! writers change `src` through the admin API; a kill -9 mid-run and a restart still end with
//! `mirror == src`; a trapping handler's changes are parked and the others flow; a watcher
//! that fell behind the retention resyncs from a snapshot.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use support::admin::{call, encode, token_in};
use support::served::{runtime, serve, Served};

/// Buckets `src` (watched; not granted to components: the watcher is handed it), `mirror`
/// (granted), `dead-letters`, and the Spin app's `default`.
fn config(dir: &Path, src_extra: &str) -> std::path::PathBuf {
    let path = dir.join("kvhost.toml");
    std::fs::write(
        &path,
        format!(
            "allow = [\"default\", \"mirror\"]\n\
             [buckets.default]\n[buckets.src]\ndurability = \"relaxed\"\n{src_extra}\n\
             [buckets.mirror]\ndurability = \"relaxed\"\n[buckets.dead-letters]\n"
        ),
    )
    .unwrap();
    path
}

fn start(dir: &Path, config: &Path) -> (Served, SocketAddr, String) {
    let watcher = format!("{}:src", support::guests().join("watcher.wasm").display());
    let served = serve(
        dir,
        &support::guests().join("spin5.wasm"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--admin",
            "127.0.0.1:0",
            "--watcher",
            &watcher,
        ],
    );
    let admin = served.admin.expect("the admin address is logged");
    let token = token_in(&dir.join("data"));
    (served, admin, token)
}

/// Every entry of `bucket`, through the admin API's export.
async fn entries(admin: SocketAddr, token: &str, bucket: &str) -> BTreeMap<String, String> {
    let export = call(
        admin,
        Some(token),
        "GET",
        &format!("/api/v1/buckets/{bucket}/export"),
        b"",
    )
    .await;
    assert_eq!(export.status, 200);
    String::from_utf8(export.body.to_vec())
        .unwrap()
        .lines()
        .map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                entry["key"].as_str().unwrap().to_string(),
                entry["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Four writers, `ops` operations each, over 400 keys: sets, and deletes of keys set before.
async fn write(admin: SocketAddr, token: &str, round: u32, ops: u32) {
    let writers: Vec<_> = (0..4u32)
        .map(|writer| {
            let token = token.to_string();
            tokio::spawn(async move {
                for i in 0..ops {
                    let key = format!("k/{:03}", (i * 13 + writer * 101) % 400);
                    let path = format!("/api/v1/buckets/src/value?key={}", encode(&key));
                    let (method, body) = if i % 4 == 3 {
                        ("DELETE", Vec::new())
                    } else {
                        ("PUT", format!("{round}.{writer}.{i}").into_bytes())
                    };
                    let answer = call(admin, Some(&token), method, &path, &body).await;
                    assert_eq!(answer.status, 204, "{method} {key}");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
}

/// Waits until `mirror` equals `src` (keys starting with `trap/` left out), or fails after
/// `within`.
async fn converged(admin: SocketAddr, token: &str, within: Duration) -> BTreeMap<String, String> {
    converged_with(admin, token, within, &[]).await
}

/// As [`converged`], once `mirror` also holds every key of `including` (src and mirror are
/// read one after the other, so they can agree for a moment between a handler's own write
/// into src and that change reaching mirror).
async fn converged_with(
    admin: SocketAddr,
    token: &str,
    within: Duration,
    including: &[&str],
) -> BTreeMap<String, String> {
    let started = Instant::now();
    loop {
        let mut src = entries(admin, token, "src").await;
        src.retain(|key, _| !key.starts_with("trap/"));
        let mirror = entries(admin, token, "mirror").await;
        if src == mirror && including.iter().all(|key| mirror.contains_key(*key)) {
            return src;
        }
        assert!(
            started.elapsed() < within,
            "mirror never caught up with src (or lacks one of {including:?}): {} keys in src, \
             {} in mirror",
            src.len(),
            mirror.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[test]
fn the_watcher_mirrors_src_through_writers_a_kill_and_a_trapping_handler() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let (served, admin, token) = start(dir.path(), &config);
    let rt = runtime();
    rt.block_on(async {
        // The handler fails on trap/ keys: parked, while every other change flows.
        for key in ["trap/1", "trap/2"] {
            let path = format!("/api/v1/buckets/src/value?key={}", encode(key));
            assert_eq!(
                call(admin, Some(&token), "PUT", &path, b"x").await.status,
                204
            );
        }
        write(admin, &token, 1, 2500).await;
    });
    // Killed (-9) while the watcher is behind; restarted, it resumes from its saved position.
    drop(served);
    let (served, admin, token) = start(dir.path(), &config);
    let mirrored = rt.block_on(async {
        write(admin, &token, 2, 2500).await;
        // The handler copies copy/ keys through the bucket it is handed (get, then set).
        let path = format!("/api/v1/buckets/src/value?key={}", encode("copy/me"));
        assert_eq!(
            call(admin, Some(&token), "PUT", &path, b"c").await.status,
            204
        );
        // The handler writes copied/me into src itself: converged once that is mirrored too.
        let mirrored =
            converged_with(admin, &token, Duration::from_secs(300), &["copied/me"]).await;
        let parked = entries(admin, &token, "dead-letters").await;
        assert!(
            parked.len() >= 2 && parked.keys().all(|key| key.starts_with("watcher/src/")),
            "the trapping changes are parked: {parked:?}"
        );
        mirrored
    });
    assert!(mirrored.len() > 100, "{} keys", mirrored.len());
    // "Yw==" is "c" in base64, as the export writes values.
    assert_eq!(
        mirrored.get("copied/me").map(String::as_str),
        Some("Yw=="),
        "the handler read and wrote through its bucket"
    );
    served.stop_cleanly();
}

#[test]
fn a_watcher_that_fell_behind_the_retention_resyncs_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "watch_retention = 50\n");
    let (served, admin, token) = start(dir.path(), &config);
    let rt = runtime();
    rt.block_on(async {
        write(admin, &token, 1, 20).await;
        converged(admin, &token, Duration::from_secs(120)).await;
    });
    drop(served);
    // Without the watcher, 600 more changes: far past the retention of 50.
    let plain = serve(
        dir.path(),
        &support::guests().join("spin5.wasm"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--admin",
            "127.0.0.1:0",
        ],
    );
    let plain_admin = plain.admin.unwrap();
    let plain_token = token_in(&dir.path().join("data"));
    rt.block_on(async {
        for i in 0..600 {
            let path = format!(
                "/api/v1/buckets/src/value?key={}",
                encode(&format!("gap/{i}"))
            );
            assert_eq!(
                call(plain_admin, Some(&plain_token), "PUT", &path, b"g")
                    .await
                    .status,
                204
            );
        }
    });
    let (status, _) = plain.stop();
    assert!(status.success());
    let (served, admin, token) = start(dir.path(), &config);
    rt.block_on(async {
        let mirrored = converged(admin, &token, Duration::from_secs(120)).await;
        assert!(mirrored.contains_key("gap/599"));
        // It had a saved position, so its one resync is the fall-behind path.
        let metrics = call(admin, Some(&token), "GET", "/api/v1/metrics", b"").await;
        let text = String::from_utf8(metrics.body.to_vec()).unwrap();
        assert!(
            text.lines()
                .any(|line| line
                    == "kvhost_watch_resyncs_total{watcher=\"watcher\",bucket=\"src\"} 1"),
            "{text}"
        );
    });
    served.stop_cleanly();
}

/// `kvhost watch` with no component runs the config's `[[watchers]]`: a new watcher starts
/// from a snapshot, so keys written before it ran are mirrored too; SIGTERM stops it cleanly.
#[test]
fn kvhost_watch_runs_the_configs_watchers_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kvhost.toml");
    std::fs::write(
        &config,
        format!(
            "[buckets.src]\n[buckets.mirror]\n\n[[watchers]]\ncomponent = \"{}\"\n\
             buckets = [\"src\"]\nprefixes = [\"keep/\"]\n",
            support::guests().join("watcher.wasm").display()
        ),
    )
    .unwrap();
    let kv = |args: &[&str]| {
        let mut full = vec!["--config", config.to_str().unwrap()];
        full.extend_from_slice(args);
        support::served::kv(dir.path(), &full)
    };
    for key in ["keep/1", "keep/2", "skip/3"] {
        assert!(kv(&["set", "src", key, "v"]).status.success());
    }
    let mut watcher = std::process::Command::new(support::KVHOST)
        .args(["watch", "--config", config.to_str().unwrap(), "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--cache-dir")
        .arg(support::cache_dir())
        .env("KVHOST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = watcher.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    // The watcher holds the data dir: poll the mirror through read-only snapshots of it (one
    // taken mid-commit may fail to read; the next one is tried).
    let started = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let held = kv(&["--read-only", "list", "mirror"]);
        if String::from_utf8_lossy(&held.stdout) == "keep/1\nkeep/2\n" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "never mirrored: {held:?}"
        );
    }
    let pid = libc::pid_t::try_from(watcher.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid; it has not been reaped yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert!(watcher.wait().unwrap().success());
    let log = lines.join().unwrap();
    assert!(
        log.iter()
            .any(|line| line.contains("starting from a snapshot")),
        "{log:?}"
    );
    let mirror = kv(&["list", "mirror"]);
    assert_eq!(
        String::from_utf8_lossy(&mirror.stdout),
        "keep/1\nkeep/2\n",
        "skip/3 is not watched"
    );
}

/// A running `kvhost watch` (SIGKILLed on drop).
struct WatchProcess(std::process::Child);

impl WatchProcess {
    /// `kvhost watch --bucket src` on the Python watcher, data dir `dir/watcher`, its log
    /// written to `log`.
    fn start(dir: &Path, config: &Path, log: &Path) -> WatchProcess {
        let log = std::fs::File::create(log).unwrap();
        let child = std::process::Command::new(support::KVHOST)
            .args(["watch", "--config", config.to_str().unwrap(), "--data-dir"])
            .arg(dir.join("watcher"))
            .arg("--cache-dir")
            .arg(support::cache_dir())
            .args(["--bucket", "src"])
            .arg(support::guests().join("watcher.wasm"))
            .env("KVHOST_LOG", "info")
            .stderr(log)
            .spawn()
            .unwrap();
        WatchProcess(child)
    }
}

impl Drop for WatchProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// On Redis, the watcher runs in its own `kvhost watch` process and the four writers go
/// through a `kvhost admin` process whose config names no watcher (as on two machines): the
/// writers' scripts log their changes all the same. 20,000 sets and deletes, the watcher
/// killed (-9) after the first half and restarted: `mirror == src`, reached through the
/// change feed alone (one snapshot at the first start, no fall-behind resync, which would
/// hide changes that were never logged).
fn redis_watcher_in_its_own_process(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kvhost.toml");
    std::fs::write(
        &config,
        format!("allow = [\"mirror\"]\n[buckets.src]\n{backend}\n[buckets.mirror]\n{backend}\n"),
    )
    .unwrap();
    let writers_dir = dir.path().join("writers");
    std::fs::create_dir(&writers_dir).unwrap();
    let writers = support::admin::admin(&writers_dir, &["--config", config.to_str().unwrap()]);
    let (admin, token) = (writers.address, writers.token());
    let logs = [
        dir.path().join("watch-1.log"),
        dir.path().join("watch-2.log"),
    ];
    let watcher = WatchProcess::start(dir.path(), &config, &logs[0]);
    let rt = runtime();
    rt.block_on(write(admin, &token, 1, 2500));
    drop(watcher);
    let watcher = WatchProcess::start(dir.path(), &config, &logs[1]);
    let mirrored = rt.block_on(async {
        write(admin, &token, 2, 2500).await;
        converged(admin, &token, Duration::from_secs(240)).await
    });
    assert!(mirrored.len() > 100, "{} keys", mirrored.len());
    drop(watcher);
    let log = logs
        .iter()
        .map(|log| std::fs::read_to_string(log).unwrap())
        .collect::<String>();
    assert_eq!(
        log.matches("starting from a snapshot").count(),
        1,
        "only the first start takes a snapshot: {log}"
    );
    assert!(!log.contains("fell behind"), "{log}");
    let (status, _) = writers.stop();
    assert!(status.success());
}

#[test]
fn a_watcher_process_mirrors_writes_other_processes_make_on_redis() {
    let server = kvhost_testkit::shared_server();
    redis_watcher_in_its_own_process(&format!("backend = \"redis\"\nurl = \"{}\"", server.url()));
}

#[test]
fn a_watcher_process_mirrors_writes_other_processes_make_on_redis_cluster() {
    let nodes = kvhost_testkit::shared_cluster()
        .urls()
        .iter()
        .map(|url| format!("\"{url}\""))
        .collect::<Vec<_>>()
        .join(", ");
    redis_watcher_in_its_own_process(&format!("backend = \"redis-cluster\"\nnodes = [{nodes}]"));
}

/// A handler that keeps every bucket it is handed (`hoard/` keys) would run into the handle
/// cap (16 here) and fail; its instance is replaced once it holds half the cap, so every
/// change is delivered the first time: no retry, nothing parked.
#[test]
fn a_handler_that_keeps_its_buckets_gets_a_fresh_instance_before_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "[limits]\nmax_open_buckets = 16\n");
    let (served, admin, token) = start(dir.path(), &config);
    runtime().block_on(async {
        for i in 0..60 {
            let path = format!(
                "/api/v1/buckets/src/value?key={}",
                encode(&format!("hoard/{i}"))
            );
            assert_eq!(
                call(admin, Some(&token), "PUT", &path, b"h").await.status,
                204
            );
        }
        let mirrored = converged(admin, &token, Duration::from_secs(120)).await;
        assert_eq!(mirrored.len(), 60);
        assert!(entries(admin, &token, "dead-letters").await.is_empty());
        let metrics = call(admin, Some(&token), "GET", "/api/v1/metrics", b"").await;
        let text = String::from_utf8(metrics.body.to_vec()).unwrap();
        assert!(
            text.lines().any(|line| line
                == "kvhost_watch_events_retried_total{watcher=\"watcher\",bucket=\"src\"} 0"),
            "{text}"
        );
    });
    served.stop_cleanly();
}
