//! End-to-end tests of `kvhost kv`, driving the built binary.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::{kv_with_input as kv, KVHOST};

fn ok(output: Output) -> Vec<u8> {
    assert!(
        output.status.success(),
        "kvhost failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn get_set_delete_with_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(kv(d, &["set", "default", "greeting", "hello"], b""));
    assert_eq!(ok(kv(d, &["get", "default", "greeting"], b"")), b"hello");
    ok(kv(d, &["set", "default", "blob", "-"], b"bin\0ary\xff"));
    assert_eq!(ok(kv(d, &["get", "default", "blob"], b"")), b"bin\0ary\xff");
    ok(kv(d, &["set", "default", "empty", "-"], b""));
    assert_eq!(
        ok(kv(d, &["get", "default", "empty"], b"")),
        b"",
        "empty is a value"
    );

    let listed = ok(kv(d, &["list", "default"], b""));
    assert_eq!(
        String::from_utf8(listed).unwrap(),
        "blob\nempty\ngreeting\n"
    );

    ok(kv(d, &["delete", "default", "greeting"], b""));
    ok(kv(d, &["delete", "default", "greeting"], b""));
    let missing = kv(d, &["get", "default", "greeting"], b"");
    assert_eq!(missing.status.code(), Some(1), "missing key exits 1");
    assert!(
        stderr(&missing).contains("\"greeting\" does not exist"),
        "{}",
        stderr(&missing)
    );
    assert!(missing.stdout.is_empty());
    assert!(
        d.join(".kvhost/kvhost.redb").is_file(),
        "default data dir is ./.kvhost"
    );
}

#[test]
fn import_export_round_trips_30000_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut expected = BTreeMap::new();
    let mut input = String::new();
    for i in 0..30_000u32 {
        let key = format!("user/{i:05}/é");
        let value: Vec<u8> = (0..(i % 97))
            .map(|j| (i.wrapping_mul(31) + j).to_le_bytes()[0])
            .collect();
        input.push_str(&format!(
            "{{\"key\":{},\"value\":\"{}\"}}\n",
            serde_json_string(&key),
            base64_encode(&value)
        ));
        expected.insert(key, value);
    }
    std::fs::write(d.join("in.jsonl"), &input).unwrap();
    let imported = kv(
        d,
        &["--data-dir", "a", "import", "default", "in.jsonl"],
        b"",
    );
    assert!(
        stderr(&imported).contains("imported 30000 entries"),
        "{}",
        stderr(&imported)
    );
    ok(imported);

    let exported = ok(kv(d, &["--data-dir", "a", "export", "default"], b""));
    let lines: Vec<&[u8]> = exported
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), 30_000);
    let listed = ok(kv(d, &["list", "default", "--data-dir", "a"], b""));
    assert_eq!(listed.iter().filter(|b| **b == b'\n').count(), 30_000);

    // Round trip through a second store, reading the export from stdin.
    ok(kv(
        d,
        &["--data-dir", "b", "import", "default", "-"],
        &exported,
    ));
    let again = ok(kv(d, &["--data-dir", "b", "export", "default"], b""));
    assert_eq!(again, exported, "export -> import -> export is lossless");
    assert_eq!(
        ok(kv(
            d,
            &["--data-dir", "b", "get", "default", "user/00098/é"],
            b""
        )),
        expected["user/00098/é"]
    );
}

#[test]
fn bad_input_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let unknown = kv(d, &["get", "nosuch", "k"], b"");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("no bucket named \"nosuch\""),
        "{}",
        stderr(&unknown)
    );
    assert!(
        stderr(&unknown).contains("configured buckets: default"),
        "{}",
        stderr(&unknown)
    );

    std::fs::write(
        d.join("kvhost.toml"),
        "[buckets.cache]\ndurability = \"sometimes\"\n",
    )
    .unwrap();
    let bad = kv(d, &["list", "cache"], b"");
    assert_eq!(bad.status.code(), Some(2));
    let message = stderr(&bad);
    assert!(
        message.contains("kvhost.toml") && message.contains("sometimes"),
        "{message}"
    );
    assert!(message.contains("durability"), "{message}");

    std::fs::write(
        d.join("other.toml"),
        "[buckets.cache]\nbackend = \"memory\"\nttl = 5\n",
    )
    .unwrap();
    let unknown_key = kv(d, &["--config", "other.toml", "list", "cache"], b"");
    assert!(
        stderr(&unknown_key).contains("ttl"),
        "{}",
        stderr(&unknown_key)
    );

    let bad_line = kv(d, &["--config", "missing.toml", "list", "default"], b"");
    assert!(
        stderr(&bad_line).contains("missing.toml"),
        "{}",
        stderr(&bad_line)
    );

    std::fs::remove_file(d.join("kvhost.toml")).unwrap();
    let input = b"{\"key\":\"a\",\"value\":\"YQ==\"}\n\nnot json\n";
    let bad_import = kv(d, &["import", "default"], input);
    assert_eq!(bad_import.status.code(), Some(2));
    assert!(
        stderr(&bad_import).contains("stdin:3"),
        "{}",
        stderr(&bad_import)
    );

    let long_key = format!("{{\"key\":\"{}\",\"value\":\"\"}}\n", "k".repeat(2000));
    let too_long = kv(d, &["import", "default"], long_key.as_bytes());
    assert!(
        stderr(&too_long).contains("limits.max_key_bytes"),
        "{}",
        stderr(&too_long)
    );
}

#[test]
fn a_second_process_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // An import waiting on stdin holds the store open.
    let mut holder = Command::new(KVHOST)
        .args(["kv", "import", "default"])
        .current_dir(d)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let file = d.join(".kvhost/kvhost.redb");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let second = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the holder never locked the store"
        );
        if file.metadata().is_ok_and(|m| m.len() > 0) {
            let attempt = kv(d, &["list", "default"], b"");
            if !attempt.status.success() {
                break attempt;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    let message = stderr(&second);
    assert!(
        message.contains("in use by another process") && message.contains(".kvhost"),
        "{message}"
    );
    ok(kv(d, &["list", "default"], b""));
}

#[test]
fn memory_buckets_come_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("kvhost.toml"),
        "[buckets.cache]\nbackend = \"memory\"\n",
    )
    .unwrap();
    ok(kv(d, &["set", "cache", "k", "v"], b""));
    let gone = kv(d, &["get", "cache", "k"], b"");
    assert_eq!(
        gone.status.code(),
        Some(1),
        "memory buckets do not outlive the process"
    );
    assert_eq!(ok(kv(d, &["buckets"], b"")), b"cache\tmemory\n");
    assert!(
        !d.join(".kvhost").exists(),
        "no embedded bucket, no data dir"
    );
}

fn serde_json_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A SQLite file as Spin's default key-value store writes it (schema of Spin's
/// key-value-spin crate), with two stores, a binary value and a text-typed value.
fn spin_file(path: &Path) {
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS spin_key_value (
             store TEXT NOT NULL,
             key   TEXT NOT NULL,
             value BLOB NOT NULL,
             PRIMARY KEY (store, key)
         );",
    )
    .unwrap();
    let mut insert = db
        .prepare("INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)")
        .unwrap();
    insert
        .execute(rusqlite::params!["default", "a", b"1".to_vec()])
        .unwrap();
    insert
        .execute(rusqlite::params!["default", "bin", vec![0u8, 255, 1]])
        .unwrap();
    insert
        .execute(rusqlite::params!["default", "typed-as-text", "hello"])
        .unwrap();
    for i in 0..2500 {
        insert
            .execute(rusqlite::params![
                "other",
                format!("k{i:04}"),
                format!("v{i}").into_bytes()
            ])
            .unwrap();
    }
}

#[test]
fn import_spin_copies_every_store_into_its_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    spin_file(&d.join("spin.db"));

    // Bucket "other" does not exist yet: nothing is imported, and the error says what to do.
    let refused = kv(d, &["import-spin", "spin.db"], b"");
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("[buckets.other]"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(kv(d, &["get", "default", "a"], b"").status.code(), Some(1));

    // A Spin runtime config declares both stores; the warning tells how to import the data.
    std::fs::write(
        d.join("runtime-config.toml"),
        "[key_value_store.default]\ntype = \"spin\"\npath = \"spin.db\"\n\n\
         [key_value_store.other]\ntype = \"spin\"\n",
    )
    .unwrap();
    let rc = ["--runtime-config", "runtime-config.toml"];
    let buckets = kv(d, &[&rc[..], &["buckets"]].concat(), b"");
    assert!(
        stderr(&buckets).contains("kvhost kv import-spin")
            && stderr(&buckets).contains("3 entries"),
        "{}",
        stderr(&buckets)
    );
    assert_eq!(ok(buckets), b"default\tembedded\nother\tembedded\n");

    let imported = kv(d, &[&rc[..], &["import-spin", "spin.db"]].concat(), b"");
    assert!(stderr(&imported).contains("imported 2500 entries from Spin store \"other\""));
    ok(imported);
    assert_eq!(ok(kv(d, &["get", "default", "bin"], b"")), [0, 255, 1]);
    assert_eq!(
        ok(kv(d, &["get", "default", "typed-as-text"], b"")),
        b"hello"
    );
    let other = ok(kv(d, &[&rc[..], &["list", "other"]].concat(), b""));
    assert_eq!(String::from_utf8(other).unwrap().lines().count(), 2500);
    assert_eq!(
        ok(kv(d, &[&rc[..], &["get", "other", "k2499"]].concat(), b"")),
        b"v2499"
    );

    // One store into another bucket.
    ok(kv(
        d,
        &[
            "import-spin",
            "spin.db",
            "--store",
            "other",
            "--into",
            "default",
        ],
        b"",
    ));
    assert_eq!(ok(kv(d, &["get", "default", "k0007"], b"")), b"v7");
}

#[test]
fn import_spin_refuses_files_that_are_not_spin_stores() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rusqlite::Connection::open(d.join("plain.db"))
        .unwrap()
        .execute_batch("CREATE TABLE t (x);")
        .unwrap();
    std::fs::write(d.join("text.db"), "not sqlite at all, just some text").unwrap();
    for (file, message) in [
        ("plain.db", "is not a Spin key-value database"),
        ("text.db", "is not a SQLite database"),
        ("missing.db", "does not exist"),
    ] {
        let output = kv(d, &["import-spin", file], b"");
        assert_eq!(output.status.code(), Some(2), "{file}");
        assert!(
            stderr(&output).contains(message),
            "{file}: {}",
            stderr(&output)
        );
    }
}

/// A config's redis buckets over TLS: `tls_ca_file` is found next to the config, every
/// `kvhost kv` process sees the same data, and `kv import`/`export` round-trip through Redis.
#[test]
fn redis_buckets_over_tls_shared_by_processes() {
    let server = kvhost_testkit::RedisServer::start_tls(&["--requirepass", "hunter2"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    std::fs::copy(server.ca_file(), dir.path().join("conf/ca.pem")).unwrap();
    std::fs::write(
        dir.path().join("conf/kvhost.toml"),
        format!(
            "[buckets.shared]\nbackend = \"redis\"\n\
             url = \"rediss://:hunter2@127.0.0.1:{}/0\"\ntls_ca_file = \"ca.pem\"\n",
            server.tls_port().unwrap()
        ),
    )
    .unwrap();
    let config = ["--config", "conf/kvhost.toml"];
    let with = |config: &[&'static str], args: &[&'static str]| [config, args].concat();
    ok(kv(
        dir.path(),
        &with(&config, &["set", "shared", "greeting", "hello"]),
        b"",
    ));
    assert_eq!(
        ok(kv(
            dir.path(),
            &with(&config, &["get", "shared", "greeting"]),
            b""
        )),
        b"hello"
    );
    let lines: String = (0..500)
        .map(|i| format!("{{\"key\":\"k{i:03}\",\"value\":\"dg==\"}}\n"))
        .collect();
    ok(kv(
        dir.path(),
        &with(&config, &["import", "shared"]),
        lines.as_bytes(),
    ));
    let listed = ok(kv(dir.path(), &with(&config, &["list", "shared"]), b""));
    assert_eq!(String::from_utf8(listed).unwrap().lines().count(), 501);
    let buckets = ok(kv(dir.path(), &with(&config, &["buckets"]), b""));
    assert_eq!(String::from_utf8(buckets).unwrap(), "shared\tredis\n");

    // Without the CA the certificate is refused; the password is never shown.
    std::fs::remove_file(dir.path().join("conf/ca.pem")).unwrap();
    let output = kv(
        dir.path(),
        &with(&config, &["get", "shared", "greeting"]),
        b"",
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("tls_ca_file"),
        "{}",
        stderr(&output)
    );
    assert!(!stderr(&output).contains("hunter2"), "{}", stderr(&output));
}

/// A key with a newline: the plain list warns, `--json` and `-0` print it unambiguously.
#[test]
fn list_keys_with_newlines_unambiguously() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(kv(d, &["set", "default", "two\nlines", "x"], b""));
    ok(kv(d, &["set", "default", "plain", "y"], b""));
    let plain = kv(d, &["list", "default"], b"");
    assert!(plain.status.success());
    assert!(
        stderr(&plain).contains("use --json or -0"),
        "{}",
        stderr(&plain)
    );
    let json = ok(kv(d, &["list", "default", "--json"], b""));
    assert_eq!(
        String::from_utf8(json).unwrap(),
        "\"plain\"\n\"two\\nlines\"\n"
    );
    let null = ok(kv(d, &["list", "default", "-0"], b""));
    assert_eq!(null, b"plain\0two\nlines\0");
    let quiet = kv(d, &["list", "default", "--json"], b"");
    assert!(stderr(&quiet).is_empty(), "{}", stderr(&quiet));
}

/// An import that stops at a bad line says how many entries it already wrote, and exactly
/// those are in the bucket.
#[test]
fn import_stopping_at_a_bad_line_says_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut input = String::new();
    for i in 0..3 {
        input.push_str(&format!("{{\"key\": \"k{i}\", \"value\": \"dg==\"}}\n"));
    }
    input.push_str("this is not json\n{\"key\": \"after\", \"value\": \"dg==\"}\n");
    let output = kv(d, &["import", "default"], input.as_bytes());
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("stdin:4"), "{err}");
    assert!(
        err.contains("the first 3 entries of the input are in bucket"),
        "{err}"
    );
    let listed = ok(kv(d, &["list", "default"], b""));
    assert_eq!(String::from_utf8(listed).unwrap(), "k0\nk1\nk2\n");
}

/// `kv --read-only` reads a data dir it may not write, here one a running kvhost holds (a
/// plain `kv` is refused: the store is locked), from a snapshot: it lists and exports,
/// refuses writes, and leaves the data dir as it was.
#[test]
fn read_only_reads_a_data_dir_another_process_holds() {
    let dir = tempfile::tempdir().unwrap();
    let mut holder = Command::new(KVHOST)
        .args(["run", "--data-dir", "data", "--cache-dir"])
        .arg(support::cache_dir())
        .arg(support::guest("draft2"))
        .env("KVHOST_GUEST_HOLD", "default")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "wrote 1000\n");
    let data = dir.path().join("data");
    let before: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let file_before = std::fs::read(data.join("kvhost.redb")).unwrap();

    let locked = kv(dir.path(), &["--data-dir", "data", "list", "default"], b"");
    assert_eq!(locked.status.code(), Some(2));
    assert!(
        stderr(&locked).contains("in use by another process"),
        "{}",
        stderr(&locked)
    );
    let listed = ok(kv(
        dir.path(),
        &["--data-dir", "data", "--read-only", "list", "default"],
        b"",
    ));
    let listed = String::from_utf8(listed).unwrap();
    // The holder's bucket is `immediate`: all 1,000 acknowledged writes are in the file.
    assert_eq!(listed.lines().count(), 1000, "{listed}");
    assert!(
        listed.lines().all(|key| key.starts_with("held-")),
        "{listed}"
    );
    let exported = ok(kv(
        dir.path(),
        &["--read-only", "--data-dir", "data", "export", "default"],
        b"",
    ));
    assert_eq!(
        String::from_utf8(exported).unwrap().lines().count(),
        listed.lines().count()
    );
    let write = kv(
        dir.path(),
        &[
            "--read-only",
            "--data-dir",
            "data",
            "set",
            "default",
            "k",
            "v",
        ],
        b"",
    );
    assert_eq!(write.status.code(), Some(2));
    assert!(stderr(&write).contains("read-only"), "{}", stderr(&write));

    let after: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(before, after);
    assert_eq!(
        std::fs::read(data.join("kvhost.redb")).unwrap(),
        file_before
    );
    let _ = holder.kill();
    let _ = holder.wait();
}
