//! The admin API end to end, on a real `kvhost admin` (and `kvhost serve --admin` with a
//! Spin app writing): tokens, errors, binary values and unusual keys, prefix paging while a
//! guest writes, export and import, limits, and `kvhost kv` through a running server.

mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::admin::{admin, call, encode, token_in};
use support::served::{kv, runtime, send, serve};

/// Keys that are awkward in a URL, in JSON, in a shell or in HTML.
const UNUSUAL_KEYS: [&str; 12] = [
    "a/b",
    "100%",
    "a+b c",
    "?&=#",
    ".",
    "..",
    "../etc/passwd",
    "ключ",
    "emoji 🗝",
    "line\nbreak",
    "<img src=x onerror=alert(1)>",
    "\"quoted\\\"",
];

fn value_path(bucket: &str, key: &str) -> String {
    format!("/api/v1/buckets/{bucket}/value?key={}", encode(key))
}

fn limits_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("kvhost.toml");
    std::fs::write(
        &path,
        "[buckets.default]\n[buckets.cache]\nbackend = \"memory\"\n\n[limits]\n\
         max_key_bytes = 64\nmax_value_bytes = 4096\nlist_page_keys = 7\n",
    )
    .unwrap();
    path
}

/// `kvhost admin` over the buckets and limits of [`limits_config`], and its token.
fn limited_admin() -> (tempfile::TempDir, support::admin::Admin, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = limits_config(dir.path());
    let server = admin(dir.path(), &["--config", config.to_str().unwrap()]);
    let token = server.token();
    (dir, server, token)
}

#[test]
fn every_api_request_needs_the_token_and_nothing_invites_other_origins() {
    let dir = tempfile::tempdir().unwrap();
    let server = admin(dir.path(), &[]);
    let token = server.token();
    let mode = std::fs::metadata(server.data_dir.join("admin.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "admin.json must be private");
    runtime().block_on(async {
        let address = server.address;
        for (method, path) in [
            ("GET", "/api/v1/buckets"),
            ("GET", "/api/v1/metrics"),
            ("GET", "/api/v1/stats"),
            ("GET", "/api/v1/buckets/default/keys"),
            ("GET", "/api/v1/buckets/default/value?key=k"),
            ("PUT", "/api/v1/buckets/default/value?key=k"),
            ("DELETE", "/api/v1/buckets/default/value?key=k"),
            ("GET", "/api/v1/buckets/default/export"),
            ("POST", "/api/v1/buckets/default/import"),
            ("GET", "/api/v1/buckets/nope/keys"),
            ("OPTIONS", "/api/v1/buckets"),
        ] {
            let wrong = format!("{}x", &token[..token.len() - 1]);
            for presented in [None, Some(wrong.as_str()), Some(""), Some(&token[..10])] {
                let answer = call(address, presented, method, path, b"v").await;
                assert_eq!(answer.status, 401, "{method} {path} with {presented:?}");
                assert_eq!(answer.headers["www-authenticate"], "Bearer");
            }
        }
        // Nothing was written by the refused requests.
        let answer = call(
            address,
            Some(&token),
            "GET",
            "/api/v1/buckets/default/keys",
            b"",
        )
        .await;
        assert_eq!(answer.json()["keys"], serde_json::json!([]));
        // No CORS, no cookies, a strict CSP, on the API and on the console alike.
        let console = call(address, None, "GET", "/", b"").await;
        assert_eq!(console.status, 200);
        let preflight = call(address, Some(&token), "OPTIONS", "/api/v1/buckets", b"").await;
        assert_eq!(preflight.status, 405);
        for answer in [&answer, &console, &preflight] {
            assert!(answer.headers.get("access-control-allow-origin").is_none());
            assert!(answer.headers.get("set-cookie").is_none());
            let csp = answer.headers["content-security-policy"].to_str().unwrap();
            assert!(
                csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
                "{csp}"
            );
            assert!(!csp.contains("unsafe-inline"), "{csp}");
            assert_eq!(answer.headers["x-content-type-options"], "nosniff");
        }
    });
    let (status, log) = server.stop();
    assert!(status.success(), "{status:?}");
    assert!(
        !log.iter().any(|line| line.contains(&token)),
        "the token was logged"
    );
    assert!(
        !dir.path().join("data/admin.json").exists(),
        "admin.json is removed on exit"
    );
}

#[test]
fn values_are_bytes_keys_may_be_anything_and_unknowns_are_404() {
    let (_dir, server, token) = limited_admin();
    let token = Some(token.as_str());
    runtime().block_on(async {
        let address = server.address;
        let listed = call(address, token, "GET", "/api/v1/buckets", b"").await;
        assert_eq!(
            listed.json(),
            serde_json::json!({"buckets": [
                {"name": "cache", "backend": "memory", "durability": null},
                {"name": "default", "backend": "embedded", "durability": "immediate"},
            ]})
        );
        let every_byte: Vec<u8> = (0..=255u8).collect();
        for bucket in ["default", "cache"] {
            for key in UNUSUAL_KEYS {
                let put = call(address, token, "PUT", &value_path(bucket, key), &every_byte).await;
                assert_eq!(put.status, 204, "{bucket} {key:?}: {:?}", put.body);
                let got = call(address, token, "GET", &value_path(bucket, key), b"").await;
                assert_eq!(
                    (got.status, &got.body[..]),
                    (200, &every_byte[..]),
                    "{key:?}"
                );
                assert_eq!(got.headers["content-type"], "application/octet-stream");
            }
            let empty = call(address, token, "PUT", &value_path(bucket, "empty"), b"").await;
            assert_eq!(empty.status, 204);
            let got = call(address, token, "GET", &value_path(bucket, "empty"), b"").await;
            assert_eq!(
                (got.status, got.body.len()),
                (200, 0),
                "an empty value is a value"
            );
            // Every key, over pages of 7, exactly once.
            let mut keys = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut path = format!("/api/v1/buckets/{bucket}/keys");
                if let Some(cursor) = &cursor {
                    path.push_str(&format!("?cursor={}", encode(cursor)));
                }
                let page = call(address, token, "GET", &path, b"").await.json();
                let page_keys = page["keys"].as_array().unwrap();
                assert!(page_keys.len() <= 7);
                keys.extend(page_keys.iter().map(|k| k.as_str().unwrap().to_string()));
                match page["cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_string()),
                    None => break,
                }
            }
            let mut wanted: Vec<String> = UNUSUAL_KEYS.iter().map(ToString::to_string).collect();
            wanted.push("empty".into());
            wanted.sort();
            assert_eq!(keys, wanted);
            let deleted = call(address, token, "DELETE", &value_path(bucket, "a/b"), b"").await;
            assert_eq!(deleted.status, 204);
            let again = call(address, token, "DELETE", &value_path(bucket, "a/b"), b"").await;
            assert_eq!(again.status, 204, "deleting a missing key succeeds");
            let gone = call(address, token, "GET", &value_path(bucket, "a/b"), b"").await;
            assert_eq!(gone.status, 404);
            assert_eq!(gone.json()["code"], "no-such-key");
        }
        let nope = call(address, token, "GET", "/api/v1/buckets/nope/keys", b"").await;
        assert_eq!(nope.status, 404);
        assert_eq!(nope.json()["code"], "no-such-bucket");
        assert!(nope.json()["error"]
            .as_str()
            .unwrap()
            .contains("cache, default"));
        let nope = call(address, token, "PUT", &value_path("nope", "k"), b"v").await;
        assert_eq!(nope.status, 404);
        for path in [
            "/api/v1/nothing",
            "/api/v1/buckets/default/nothing",
            "/nothing",
        ] {
            assert_eq!(
                call(address, token, "GET", path, b"").await.status,
                404,
                "{path}"
            );
        }
    });
}

#[test]
fn limits_apply_as_for_guests() {
    let (_dir, server, token) = limited_admin();
    let token = Some(token.as_str());
    runtime().block_on(async {
        let address = server.address;
        let big = vec![b'x'; 4097];
        let answer = call(address, token, "PUT", &value_path("default", "big"), &big).await;
        assert_eq!(answer.status, 413, "{:?}", answer.body);
        assert!(answer.json()["error"].as_str().unwrap().contains("max_value_bytes"));
        let fits = call(address, token, "PUT", &value_path("default", "big"), &big[1..]).await;
        assert_eq!(fits.status, 204);
        let long_key = "k".repeat(65);
        let answer = call(address, token, "PUT", &value_path("default", &long_key), b"v").await;
        assert_eq!(answer.status, 400);
        assert!(answer.json()["error"].as_str().unwrap().contains("max_key_bytes"));
        for path in [
            "/api/v1/buckets/default/value",
            "/api/v1/buckets/default/value?key=a&key=b",
            "/api/v1/buckets/default/value?key=%FF",
            "/api/v1/buckets/default/keys?color=red",
            "/api/v1/buckets/default/keys?cursor=not-ours",
        ] {
            let answer = call(address, token, "GET", path, b"").await;
            assert_eq!(answer.status, 400, "{path}: {:?}", answer.body);
        }
        let wrong = call(address, token, "POST", "/api/v1/buckets/default/keys", b"").await;
        assert_eq!((wrong.status, &wrong.headers["allow"]), (405, &"GET".parse().unwrap()));
        // An import stops at a bad line and says how many entries it wrote.
        let lines = "{\"key\":\"i1\",\"value\":\"AA==\"}\n{\"key\":\"i2\",\"value\":\"AQ==\"}\nnot json\n{\"key\":\"i3\",\"value\":\"\"}\n";
        let answer = call(address, token, "POST", "/api/v1/buckets/default/import", lines.as_bytes()).await;
        assert_eq!(answer.status, 400);
        assert_eq!(answer.json()["imported"], 2);
        assert!(answer.json()["error"].as_str().unwrap().contains("line 3"));
        let missing = call(address, token, "GET", &value_path("default", "i3"), b"").await;
        assert_eq!(missing.status, 404);
        // An entry over the limits is refused by name.
        let over = format!("{{\"key\":\"{long_key}\",\"value\":\"\"}}\n");
        let answer = call(address, token, "POST", "/api/v1/buckets/default/import", over.as_bytes()).await;
        assert_eq!((answer.status, answer.json()["imported"].as_u64()), (400, Some(0)));
        // A line longer than any entry within the limits can be is refused unbuffered.
        let endless = vec![b'x'; 64 * 1024];
        let answer = call(address, token, "POST", "/api/v1/buckets/default/import", &endless).await;
        assert_eq!(answer.status, 413);
    });
}

#[test]
fn export_then_import_round_trips_every_entry_by_prefix() {
    let (_dir, server, token) = limited_admin();
    let token = Some(token.as_str());
    runtime().block_on(async {
        let address = server.address;
        for i in 0..50u8 {
            let key = format!("p/{i:02}");
            let put = call(
                address,
                token,
                "PUT",
                &value_path("default", &key),
                &[i, 0, 255],
            )
            .await;
            assert_eq!(put.status, 204);
        }
        for key in UNUSUAL_KEYS {
            call(
                address,
                token,
                "PUT",
                &value_path("default", key),
                key.as_bytes(),
            )
            .await;
        }
        let export = call(
            address,
            token,
            "GET",
            "/api/v1/buckets/default/export?prefix=p%2F",
            b"",
        )
        .await;
        assert_eq!(export.status, 200);
        assert_eq!(export.headers["content-type"], "application/x-ndjson");
        let text = String::from_utf8(export.body.to_vec()).unwrap();
        assert_eq!(text.lines().count(), 50, "{text}");
        let everything = call(address, token, "GET", "/api/v1/buckets/default/export", b"").await;
        let imported = call(
            address,
            token,
            "POST",
            "/api/v1/buckets/cache/import",
            &everything.body,
        )
        .await;
        assert_eq!(imported.status, 200, "{:?}", imported.body);
        assert_eq!(imported.json()["imported"], 50 + UNUSUAL_KEYS.len());
        let copied = call(address, token, "GET", "/api/v1/buckets/cache/export", b"").await;
        assert_eq!(
            copied.body, everything.body,
            "the copy exports the same lines"
        );
        let got = call(address, token, "GET", &value_path("cache", "p/07"), b"").await;
        assert_eq!(&got.body[..], &[7, 0, 255]);
    });
}

#[test]
fn a_token_file_gives_the_token_and_kv_uses_it_with_server() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let token = "0123456789abcdef0123456789abcdef-my-token";
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let server = admin(
        dir.path(),
        &["--admin-token-file", token_file.to_str().unwrap()],
    );
    assert_eq!(server.token(), token);
    let url = format!("http://{}", server.address);
    let kv_server = |args: &[&str], env_token: Option<&str>| {
        let mut command = std::process::Command::new(support::KVHOST);
        command.args(["kv", "--server", &url]).args(args);
        match env_token {
            Some(token) => command.env("KVHOST_ADMIN_TOKEN", token),
            None => command.env_remove("KVHOST_ADMIN_TOKEN"),
        };
        command.output().unwrap()
    };
    let set = kv_server(
        &[
            "--token-file",
            token_file.to_str().unwrap(),
            "set",
            "default",
            "k",
            "v",
        ],
        None,
    );
    assert!(set.status.success(), "{set:?}");
    let get = kv_server(&["get", "default", "k"], Some(token));
    assert_eq!(
        (get.status.code(), &get.stdout[..]),
        (Some(0), &b"v"[..]),
        "{get:?}"
    );
    let wrong = kv_server(&["get", "default", "k"], Some("wrong-token"));
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("admin token"),
        "{wrong:?}"
    );
    let none = kv_server(&["get", "default", "k"], None);
    assert_eq!(none.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("KVHOST_ADMIN_TOKEN"),
        "{none:?}"
    );
    let short = dir.path().join("short");
    std::fs::write(&short, "short").unwrap();
    let refused = std::process::Command::new(support::KVHOST)
        .args(["admin", "--listen", "127.0.0.1:0", "--admin-token-file"])
        .arg(&short)
        .arg("--data-dir")
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("at least 32"),
        "{refused:?}"
    );
}

/// `kvhost kv` against a live `kvhost serve --admin` while the Spin app writes: the CLI and
/// the app see each other's writes, prefix pages stay exact, output and exit codes match the
/// local ones.
#[test]
fn kv_goes_through_a_live_serve_while_a_spin_app_writes() {
    let dir = tempfile::tempdir().unwrap();
    let config = limits_config(dir.path());
    let app = support::guests().join("spin5.wasm");
    let served = serve(
        dir.path(),
        &app,
        &[
            "--config",
            config.to_str().unwrap(),
            "--admin",
            "127.0.0.1:0",
        ],
    );
    let data = dir.path().join("data");
    let token = token_in(&data);
    let kv = |args: &[&str]| kv(dir.path(), args);

    // The CLI writes, the app reads; the app writes, the CLI reads.
    let set = kv(&["set", "default", "from-cli", "hello app"]);
    assert!(set.status.success(), "{set:?}");
    assert!(
        String::from_utf8_lossy(&set.stderr).contains("going through its admin API"),
        "kv says it goes through the server: {set:?}"
    );
    let rt = runtime();
    let app_address = served.address;
    assert_eq!(
        rt.block_on(send(app_address, "GET", "/kv/from-cli", b"")),
        (200, "hello app".to_string())
    );
    assert_eq!(
        rt.block_on(send(app_address, "PUT", "/kv/from-app", b"hello cli"))
            .0,
        204
    );
    let get = kv(&["get", "default", "from-app"]);
    assert_eq!(
        (get.status.code(), &get.stdout[..]),
        (Some(0), &b"hello cli"[..]),
        "{get:?}"
    );
    let missing = kv(&["get", "default", "nothing"]);
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
    let no_bucket = kv(&["get", "nope", "k"]);
    assert_eq!(no_bucket.status.code(), Some(2), "{no_bucket:?}");

    // Stable keys, then a walk by prefix (pages of 7) while the app writes inside and outside
    // the prefix: every stable key exactly once, nothing without the prefix.
    let stable: BTreeSet<String> = (0..120).map(|i| format!("stable/{i:03}")).collect();
    let lines: String = stable
        .iter()
        .map(|key| format!("{{\"key\":\"{key}\",\"value\":\"c3RhYmxl\"}}\n"))
        .collect();
    let imported = support::kv_with_input(
        dir.path(),
        &["--data-dir", data.to_str().unwrap(), "import", "default"],
        lines.as_bytes(),
    );
    assert!(imported.status.success(), "{imported:?}");
    assert!(String::from_utf8_lossy(&imported.stderr).contains("imported 120 entries"));
    let admin_address = served.admin.expect("serve says where the admin API is");
    let seen = rt.block_on(async move {
        let writer = tokio::spawn(async move {
            for i in 0..150 {
                for key in [
                    format!("stable/new-{i}"),
                    format!("stablf-{i}"),
                    format!("a-{i}"),
                ] {
                    let (status, _) = send(app_address, "PUT", &format!("/kv/{key}"), b"w").await;
                    assert_eq!(status, 204);
                }
            }
        });
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = "/api/v1/buckets/default/keys?prefix=stable%2F".to_string();
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={}", encode(cursor)));
            }
            let page = call(admin_address, Some(&token), "GET", &path, b"")
                .await
                .json();
            seen.extend(
                page["keys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k.as_str().unwrap().to_string()),
            );
            match page["cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
            tokio::task::yield_now().await;
        }
        writer.await.unwrap();
        seen
    });
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a key was listed twice");
    assert!(
        seen.iter().all(|key| key.starts_with("stable/")),
        "{seen:?}"
    );
    for key in &stable {
        assert!(unique.contains(key), "{key} was missed");
    }

    // The CLI's list by prefix, export and delete through the server.
    let listed = kv(&["list", "default", "--prefix", "stable/0"]);
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).lines().count(),
        100,
        "{listed:?}"
    );
    let exported = kv(&["export", "default", "--prefix", "stable/1"]);
    assert_eq!(
        String::from_utf8_lossy(&exported.stdout).lines().count(),
        20
    );
    let deleted = kv(&["delete", "default", "from-app"]);
    assert!(deleted.status.success());
    assert_eq!(
        rt.block_on(send(app_address, "GET", "/kv/from-app", b"")).0,
        404
    );
    let refused = kv(&["check"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("stop it first"));

    served.stop_cleanly();
    assert!(!data.join("admin.json").exists());
    // With the server gone, kv opens the data dir itself and finds everything.
    let local = kv(&["get", "default", "from-cli"]);
    assert_eq!(&local.stdout[..], b"hello app");
    assert!(!String::from_utf8_lossy(&local.stderr).contains("admin API"));
}

#[test]
fn kv_on_a_held_data_dir_without_an_admin_listener_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), &support::guests().join("spin5.wasm"), &[]);
    let held = kv(dir.path(), &["get", "default", "k"]);
    assert_eq!(held.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&held.stderr);
    assert!(
        stderr.contains("--admin") && stderr.contains("--read-only"),
        "{stderr}"
    );
    drop(served);
}

#[test]
fn serve_admin_address_is_logged_and_the_console_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(
        dir.path(),
        &support::guests().join("spin5.wasm"),
        &["--admin", "127.0.0.1:0"],
    );
    let address = served.admin.expect("the admin address is logged");
    let page = runtime().block_on(call(address, None, "GET", "/", b""));
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("kvhost console"));
    drop(served);
}

/// With no lock to go by (a memory bucket), `kv` still finds the running server through the
/// discovery file and sees its live data; once the server is killed (-9, so the file stays),
/// `kv` ignores the file and opens the data dir itself.
#[test]
fn kv_reaches_live_memory_buckets_and_ignores_a_killed_servers_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = limits_config(dir.path());
    let mut server = admin(dir.path(), &["--config", config.to_str().unwrap()]);
    let token = server.token();
    runtime().block_on(async {
        let put = call(
            server.address,
            Some(&token),
            "PUT",
            &value_path("cache", "live"),
            b"in memory",
        )
        .await;
        assert_eq!(put.status, 204);
    });
    let kv = |args: &[&str]| {
        let mut full = vec!["--config", config.to_str().unwrap()];
        full.extend_from_slice(args);
        kv(dir.path(), &full)
    };
    let got = kv(&["get", "cache", "live"]);
    assert_eq!(
        (got.status.code(), &got.stdout[..]),
        (Some(0), &b"in memory"[..]),
        "{got:?}"
    );
    assert!(String::from_utf8_lossy(&got.stderr).contains("going through its admin API"));
    let listed = kv(&["list", "cache", "--prefix", "li"]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "live\n");

    server.kill();
    assert!(
        dir.path().join("data/admin.json").exists(),
        "kill -9 leaves the file"
    );
    let set = kv(&["set", "default", "k", "local"]);
    assert!(set.status.success(), "{set:?}");
    assert!(
        !String::from_utf8_lossy(&set.stderr).contains("admin API"),
        "{set:?}"
    );
    let got = kv(&["get", "cache", "live"]);
    assert_eq!(
        got.status.code(),
        Some(1),
        "a memory bucket of its own is empty: {got:?}"
    );
}

/// `kvhost admin` over a Redis bucket: the API and `kv list --prefix`, locally (straight to
/// Redis) and through the API, agree.
#[test]
fn admin_serves_redis_buckets_and_prefix_lists_work_on_every_path() {
    let redis = kvhost_testkit::shared_server();
    let dir = tempfile::tempdir().unwrap();
    let bucket = format!("admin-{}", std::process::id());
    let config = dir.path().join("kvhost.toml");
    std::fs::write(
        &config,
        format!(
            "[buckets.{bucket}]\nbackend = \"redis\"\nurl = \"{}\"\n\n[limits]\nlist_page_keys = 5\n",
            redis.url()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let local = |args: &[&str]| {
        let mut full = vec!["--config", config];
        full.extend_from_slice(args);
        kv(dir.path(), &full)
    };
    for i in 0..12 {
        let key = format!("p/{i:02}");
        assert!(local(&["set", &bucket, &key, "v"]).status.success());
    }
    assert!(local(&["set", &bucket, "q", "v"]).status.success());
    let wanted: String = (0..12).map(|i| format!("p/{i:02}\n")).collect();
    let straight = local(&["list", &bucket, "--prefix", "p/"]);
    assert_eq!(String::from_utf8_lossy(&straight.stdout), wanted);

    let server = admin(dir.path(), &["--config", config]);
    let token = server.token();
    let url = format!("http://{}", server.address);
    let through = std::process::Command::new(support::KVHOST)
        .args(["kv", "--server", &url, "list", &bucket, "--prefix", "p/"])
        .env("KVHOST_ADMIN_TOKEN", &token)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&through.stdout),
        wanted,
        "{through:?}"
    );
    runtime().block_on(async {
        let listed = call(server.address, Some(&token), "GET", "/api/v1/buckets", b"").await;
        assert_eq!(listed.json()["buckets"][0]["backend"], "redis");
        let path = format!("/api/v1/buckets/{bucket}/value?key={}", encode("<odd key>"));
        assert_eq!(
            call(server.address, Some(&token), "PUT", &path, &[0, 1, 2])
                .await
                .status,
            204
        );
        let got = call(server.address, Some(&token), "GET", &path, b"").await;
        assert_eq!(&got.body[..], &[0, 1, 2]);
    });
    let redis_side = redis.cli(&["EXISTS", &format!("kvhost:{{{bucket}/0}}:k:<odd key>")]);
    assert_eq!(
        redis_side.trim(),
        "1",
        "the value is in Redis under kvhost's layout"
    );
}
