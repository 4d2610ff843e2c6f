//! End-to-end tests of `kvhost run` with real Python guests (built by
//! `scripts/build-guests.sh` with the pinned componentize-py) on memory, embedded, Redis and
//! Redis Cluster buckets (the Redis servers are started by the tests, see kvhost-testkit).
//!
//! Each guest prints `ok CHECK` per passing check and traps on the first failure; these tests
//! compare the printed checks with the full list, so a skipped check fails too.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::conformance::{
    assert_guest_passes, kvhost, write_config, DRAFT2_CHECKS, DRAFT_CHECKS,
};
use support::{guest, KVHOST};

#[test]
fn draft2_guest_on_memory_buckets() {
    let persisted = ("persisted", "from-python-draft2");
    assert_guest_passes("memory", "draft2", DRAFT2_CHECKS, persisted);
}

#[test]
fn draft2_guest_on_embedded_buckets() {
    let persisted = ("persisted", "from-python-draft2");
    assert_guest_passes("embedded", "draft2", DRAFT2_CHECKS, persisted);
}

#[test]
fn draft2_guest_on_relaxed_embedded_buckets() {
    let persisted = ("persisted", "from-python-draft2");
    assert_guest_passes("relaxed", "draft2", DRAFT2_CHECKS, persisted);
}

#[test]
fn draft2_guest_on_redis_buckets() {
    let server = kvhost_testkit::RedisServer::start();
    let persisted = ("persisted", "from-python-draft2");
    let backend = format!("redis {}/0", server.url());
    assert_guest_passes(&backend, "draft2", DRAFT2_CHECKS, persisted);
}

#[test]
fn draft2_guest_on_redis_cluster_buckets() {
    let cluster = kvhost_testkit::RedisCluster::start(3, 0);
    let persisted = ("persisted", "from-python-draft2");
    let backend = format!("redis-cluster {}", cluster.urls().join(","));
    assert_guest_passes(&backend, "draft2", DRAFT2_CHECKS, persisted);
}

#[test]
fn draft_guest_on_redis_buckets() {
    let server = kvhost_testkit::RedisServer::start();
    let persisted = ("persisted-draft", "from-python-draft");
    assert_guest_passes(
        &format!("redis {}", server.url()),
        "draft",
        DRAFT_CHECKS,
        persisted,
    );
}

#[test]
fn draft_guest_on_memory_buckets() {
    let persisted = ("persisted-draft", "from-python-draft");
    assert_guest_passes("memory", "draft", DRAFT_CHECKS, persisted);
}

#[test]
fn draft_guest_on_embedded_buckets() {
    let persisted = ("persisted-draft", "from-python-draft");
    assert_guest_passes("embedded", "draft", DRAFT_CHECKS, persisted);
}

#[test]
fn args_env_and_exit_status_pass_through() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "memory");
    let guest = guest("draft2");
    let config = config.to_str().unwrap();
    let output = kvhost(dir.path(), &["run", "--config", config])
        .args(["--env", "KVHOST_GUEST_EXIT=7", guest.to_str().unwrap()])
        .args(["--flag-for-guest", "two words"])
        .env("KVHOST_GUEST_NOTE", "inherited")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    // wasi:cli/exit@0.2 carries success or failure only, so status 7 arrives as failure (1).
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(r#"args ["draft2.wasm", "--flag-for-guest", "two words"]"#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"env KVHOST_GUEST_NOTE "inherited""#),
        "{stdout}"
    );
}

#[test]
fn default_bucket_without_config_lives_in_dot_kvhost() {
    let dir = tempfile::tempdir().unwrap();
    let output = kvhost(dir.path(), &["run"])
        .arg(guest("bench"))
        .args(["default", "50", "8"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(r#""keys": 50, "value_bytes": 8"#),
        "{stdout}"
    );
    assert!(dir.path().join(".kvhost/kvhost.redb").is_file());
    let listed = kvhost(dir.path(), &["kv", "list", "default"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 50);
}

/// A WASIp3 command (wasi:cli/run@0.3.0, built with componentize-py 0.25.1) runs too, and
/// what it stores is there for the next run and for `kvhost kv`.
#[test]
fn a_wasip3_command_runs() {
    let dir = tempfile::tempdir().unwrap();
    for run in 1..=2 {
        let output = kvhost(dir.path(), &["run"])
            .arg(guest("runp3"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("hello from WASIp3 (run {run})\n")
        );
    }
    let runs = kvhost(dir.path(), &["kv", "get", "default", "runs"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&runs.stdout), "2");
}

#[test]
fn bucket_flag_adds_a_memory_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let output = kvhost(dir.path(), &["run", "--bucket", "scratch=memory:"])
        .arg(guest("bench"))
        .args(["scratch", "20", "4"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    // Only the implicit embedded `default` touched the disk; `scratch` was in memory.
    let listed = kvhost(dir.path(), &["kv", "list", "default"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "");
}

#[test]
fn timeout_stops_the_guest_with_status_124() {
    let dir = tempfile::tempdir().unwrap();
    let output = kvhost(
        dir.path(),
        &["run", "--bucket", "m=memory:", "--timeout", "300ms"],
    )
    .arg(guest("bench"))
    .args(["m", "100000000"])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(124), "{stderr}");
    assert!(stderr.contains("ran past --timeout 300ms"), "{stderr}");
}

#[test]
fn memory_cap_stops_the_guest_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let output = kvhost(dir.path(), &["run", "--max-memory", "8MiB"])
        .arg(guest("bench"))
        .args(["default", "10"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(134), "{stderr}");
    assert!(
        stderr.contains("tried to grow its memory past --max-memory"),
        "{stderr}"
    );
}

#[test]
fn compiled_components_are_cached_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let run = || {
        let output = Command::new(KVHOST)
            .current_dir(dir.path())
            .args(["run", "--bucket", "m=memory:", "--cache-dir"])
            .arg(&cache)
            .arg(guest("bench"))
            .args(["m", "5"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        output
    };
    run();
    let artifacts: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    let written = std::fs::metadata(&artifacts[0])
        .unwrap()
        .modified()
        .unwrap();
    run();
    let reused = std::fs::metadata(&artifacts[0])
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(written, reused, "the second start must reuse the artifact");

    // A damaged artifact is reported, replaced, and the guest still runs.
    std::fs::write(&artifacts[0], b"not a compiled component").unwrap();
    let output = run();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ignoring the cached compilation"),
        "{stderr}"
    );
    assert!(std::fs::metadata(&artifacts[0]).unwrap().len() > 1000);
}

#[test]
fn a_file_that_is_not_a_component_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.wasm"), b"\0asm junk").unwrap();
    let output = kvhost(dir.path(), &["run", "--no-cache", "junk.wasm"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("is not a component kvhost can run"),
        "{stderr}"
    );
}

#[test]
fn a_bucket_url_password_is_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    // An unknown scheme (refused by the flag), a bad port, TLS without certificate checks.
    // A name forgotten, a scheme forgotten, a password with an unencoded '/'.
    for spec in [
        "b=ftp://user:hunter2@host",
        "b=redis://user:hunter2@host:99999",
        "b=rediss://user:hunter2@127.0.0.1:6379/#insecure",
        "redis://:hunter2@host/0",
        "b=hunter2@host:6379",
        "b=redis://:hun/ter2@127.0.0.1:6379/0",
    ] {
        let output = kvhost(dir.path(), &["run", "--bucket", spec, "x.wasm"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{spec}: {stderr}");
        assert!(stderr.contains("bucket"), "{stderr}");
        assert!(!stderr.contains("hunter2"), "password echoed: {stderr}");
        assert!(!stderr.contains("ter2@"), "password echoed: {stderr}");
    }
    // Config files whose error is on a line with a password: a TOML error in a Spin runtime
    // config and in kvhost.toml, an unknown key beside a password.
    for (flag, file, text, wanted) in [
        (
            "--runtime-config",
            "runtime-config.toml",
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://:hunter2@h/0\" x\n",
            "runtime-config.toml: not valid TOML: line 3",
        ),
        (
            "--config",
            "bad.toml",
            "[buckets.default]\nbackend = \"redis\"\nurl = \"redis://:hunter2@h/0\" x\n",
            "bad.toml: line 3",
        ),
        (
            "--config",
            "unknown.toml",
            "[buckets.default]\nbackend = \"redis\"\npassword = \"hunter2\"\n",
            "unknown field `password`",
        ),
        (
            "--config",
            "slash.toml",
            "[buckets.default]\nbackend = \"redis\"\nurl = \"redis://:hun/ter2@h/0\"\n",
            "not a usable Redis URL",
        ),
    ] {
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        let output = kvhost(
            dir.path(),
            &["kv", flag, path.to_str().unwrap(), "list", "default"],
        )
        .output()
        .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{file}: {stderr}");
        assert!(stderr.contains(wanted), "{stderr}");
        assert!(!stderr.contains("hunter2"), "password echoed: {stderr}");
        assert!(!stderr.contains("ter2@"), "password echoed: {stderr}");
    }
    // A Redis that is not there: the error names the server, never the password.
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = unused.local_addr().unwrap().port();
    drop(unused);
    let config = dir.path().join("kvhost.toml");
    std::fs::write(
        &config,
        format!(
            "[buckets.default]\nbackend = \"redis\"\n\
             url = \"redis://user:hunter2@127.0.0.1:{port}/0\"\ntimeout_ms = 300\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let output = kvhost(
        dir.path(),
        &["kv", "--config", config, "get", "default", "k"],
    )
    .output()
    .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(all.contains("redis unavailable"), "{all}");
    assert!(all.contains(&format!("127.0.0.1:{port}")), "{all}");
    assert!(!all.contains("hunter2"), "password echoed: {all}");
}

/// SIGINT and SIGTERM stop a guest, even one computing without calling the host, and kvhost
/// flushes first: exit 130/143 with every acknowledged write of a relaxed bucket (flushed
/// every minute otherwise) on disk.
#[test]
fn a_signal_stops_the_guest_after_its_writes_are_flushed() {
    for (signal, status) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("kvhost.toml");
        std::fs::write(
            &config,
            "data_dir = \"data\"\n[buckets.held]\ndurability = \"relaxed\"\n\
             flush_interval_ms = 60000\n",
        )
        .unwrap();
        let config = config.to_str().unwrap();
        let mut child = kvhost(dir.path(), &["run", "--config", config])
            .arg(guest("draft2"))
            .env("KVHOST_GUEST_HOLD", "held")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "wrote 1000\n");
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid; it has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let started = Instant::now();
        let output = loop {
            if child.try_wait().unwrap().is_some() {
                break child.wait_with_output().unwrap();
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("kvhost run did not stop within 20 s of signal {signal}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(status), "{stderr}");
        assert!(stderr.contains(": stopped "), "{stderr}");
        let listed = kvhost(dir.path(), &["kv", "--config", config, "list", "held"])
            .output()
            .unwrap();
        assert!(listed.status.success(), "{listed:?}");
        let keys = String::from_utf8_lossy(&listed.stdout);
        assert_eq!(keys.lines().count(), 1000, "signal {signal}");
        assert_eq!(keys.lines().last(), Some("held-0999"));
    }
}

/// Large calls: what the limits allow goes through (a 20,000-key delete-many, a 200 MB set
/// with a raised max_value_bytes); what they do not gets `other` naming the limit (an 8,200 x
/// 16 KiB set-many, 131 MB, over max_batch_bytes); a call past even wasmtime's copy budget
/// is a guest failure, exit 134, never 2.
#[test]
fn large_calls_get_other_or_go_through_never_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kvhost.toml");
    let small = dir.path().join("small.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\n[buckets.default]\n[limits]\nmax_value_bytes = 268435456\n",
    )
    .unwrap();
    std::fs::write(
        &small,
        "data_dir = \"small\"\n[buckets.default]\nbackend = \"memory\"\n\
         [limits]\nmax_batch_bytes = 1048576\n",
    )
    .unwrap();
    for (config, call, status, said) in [
        (&config, "delete-many 20000", 0, "big: ok"),
        (&config, "set 200000000", 0, "big: ok"),
        (
            &config,
            "set-many 8200 16384",
            0,
            "big: error batch carries 134430800 bytes of keys and values; the limit is \
             67108864 per call (limits.max_batch_bytes)",
        ),
        (&small, "set-many 140 1048576", 134, "failed"),
    ] {
        let output = kvhost(dir.path(), &["run", "--config", config.to_str().unwrap()])
            .arg(guest("draft2"))
            .env("KVHOST_GUEST_BIG", call)
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.code(), Some(status), "{call}: {all}");
        assert!(all.contains(said), "{call}: {all}");
    }
    let listed = kvhost(
        dir.path(),
        &[
            "kv",
            "--config",
            config.to_str().unwrap(),
            "list",
            "default",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "big\n");
}

/// A guest that succeeded, whose relaxed writes then cannot be flushed (files may not grow
/// past 32 MiB: RLIMIT_FSIZE, as on a full disk), exits 74 saying writes may be lost, not 0
/// and not 2. The limit leaves room for the component's memory images (memfds count too);
/// the guest's 40 MiB of relaxed writes (below the 64 MiB a relaxed bucket holds in memory)
/// do not fit.
#[test]
fn a_flush_that_fails_after_the_guest_succeeded_exits_74() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kvhost.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\n[buckets.default]\ndurability = \"relaxed\"\n\
         flush_interval_ms = 60000\n",
    )
    .unwrap();
    // No compile cache: its file would not fit either (only a warning, but noise).
    let mut command = kvhost(
        dir.path(),
        &["run", "--no-cache", "--config", config.to_str().unwrap()],
    );
    command
        .arg(guest("draft2"))
        .env("KVHOST_GUEST_BIG", "set-many 40 1048576");
    // SAFETY: between fork and exec only async-signal-safe calls (setrlimit, signal).
    unsafe {
        command.pre_exec(|| {
            // Growing a file past 32 MiB fails with EFBIG instead of killing the process.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 32 << 20,
                rlim_max: 32 << 20,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.contains("big: ok"), "{stdout}{stderr}");
    assert_eq!(output.status.code(), Some(74), "{stdout}{stderr}");
    assert!(
        stderr.contains("could not be flushed") && stderr.contains("may be lost"),
        "{stderr}"
    );
}
