//! End-to-end tests of `kvhost serve` with WASIp3 Spin apps: guests/spinp3/app.py built with
//! spin-sdk 5.0.0 (`wasi:http/handler@0.3.0`) and with spin-sdk 4.0.0 (the
//! `0.3.0-rc-2026-03-15` release candidate) by scripts/build-guests.sh, served unchanged by the
//! kvhost binary and driven over loopback HTTP. Key-value goes through the SDK's
//! `spin_sdk.key_value` (`spin:key-value@3.0.0`) and, for cross-reads, `wasi:keyvalue`.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::guest;
use support::http::{clients_at_once, Client};
use support::served::{kv, runtime, send, serve, with_one_slot, OneSlot};

/// The two WASIp3 builds of the same app.
const APPS: [&str; 2] = ["spin5", "spin4"];

/// Sends every `(method, path, body)` in order on one connection; the replies.
async fn exchange(address: SocketAddr, requests: &[(&str, &str, &[u8])]) -> Vec<(u16, String)> {
    let mut client = Client::connect(address).await.expect("connects");
    let mut replies = Vec::new();
    for (method, path, body) in requests {
        let reply = client.send(method, path, body).await.expect("answers");
        replies.push((reply.status, reply.text()));
    }
    replies
}

fn as_str(replies: &[(u16, String)]) -> Vec<(u16, &str)> {
    replies.iter().map(|(s, b)| (*s, b.as_str())).collect()
}

/// set/get/delete/exists and get-keys through spin_sdk.key_value, and cross-reads with
/// wasi:keyvalue draft2 in both directions, on both SDK lines.
#[test]
fn spin_key_value_v3_works_and_shares_buckets_with_wasi_keyvalue() {
    for app in APPS {
        let dir = tempfile::tempdir().unwrap();
        let served = serve(dir.path(), &guest(app), &[]);
        let replies = runtime().block_on(exchange(
            served.address,
            &[
                ("PUT", "/kv/via-spin", b"s"),
                ("GET", "/kv/via-spin", b""),
                ("GET", "/exists/via-spin", b""),
                ("GET", "/exists/missing", b""),
                ("PUT", "/wasi-kv/via-wasi", b"w"),
                ("GET", "/kv/via-wasi", b""),
                ("GET", "/wasi-kv/via-spin", b""),
                ("GET", "/keys", b""),
                ("DELETE", "/kv/via-spin", b""),
                ("GET", "/kv/via-spin", b""),
                ("GET", "/wasi-kv/via-spin", b""),
                ("GET", "/exists/via-spin", b""),
                ("GET", "/open/default", b""),
                ("GET", "/open/nope", b""),
                ("GET", "/header/spin-path-info", b""),
            ],
        ));
        let expected = [
            (204, ""),
            (200, "s"),
            (200, "true"),
            (200, "false"),
            (204, ""),
            (200, "w"),
            (200, "s"),
            (200, "via-spin\nvia-wasi\n"),
            (204, ""),
            (404, "no such key\n"),
            (404, "no such key\n"),
            (200, "false"),
            (200, "opened"),
            (200, "Error_NoSuchStore"),
            (200, "/header/spin-path-info"),
        ];
        assert_eq!(as_str(&replies), expected, "{app}");
        let (status, log) = served.stop();
        assert!(status.success(), "{app}: {status} {log:?}");
    }
}

/// 2,000 clients at once, each on its own connection, store and read back a key; no request
/// fails. Then get-keys streams all 2,000 keys (two pages of the default 1,000), and after
/// SIGTERM every key is on disk for `kvhost kv`.
#[test]
fn p3_apps_serve_2000_concurrent_clients_and_the_data_stays_on_disk() {
    const CLIENTS: usize = 2_000;
    for app in APPS {
        let dir = tempfile::tempdir().unwrap();
        let served = serve(dir.path(), &guest(app), &[]);
        let address = served.address;
        let (failures, keys) = runtime().block_on(async move {
            let failures = clients_at_once(address, CLIENTS, |i, mut client| async move {
                let (key, value) = (format!("/kv/key-{i:04}"), format!("value-{i}"));
                let put = client.send("PUT", &key, value.as_bytes()).await?;
                let get = client.send("GET", &key, b"").await?;
                if (put.status, get.status) != (204, 200) || get.text() != value {
                    return Err(format!("client {i}: {put:?} {get:?}"));
                }
                Ok(())
            })
            .await;
            let keys = send(address, "GET", "/keys", b"").await;
            (failures, keys)
        });
        assert!(
            failures.is_empty(),
            "{app}: {} of {CLIENTS} clients failed, e.g. {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
        assert_eq!(keys.0, 200, "{app}");
        let expected: String = (0..CLIENTS).map(|i| format!("key-{i:04}\n")).collect();
        assert!(
            keys.1 == expected,
            "{app}: get-keys returned {} lines",
            keys.1.lines().count()
        );
        let (status, _) = served.stop();
        assert!(status.success(), "{app}: exits 0 on SIGTERM: {status}");

        let get = kv(dir.path(), &["get", "default", "key-1234"]);
        assert_eq!(String::from_utf8_lossy(&get.stdout), "value-1234", "{app}");
        let list = kv(dir.path(), &["list", "default"]);
        assert_eq!(
            String::from_utf8_lossy(&list.stdout).lines().count(),
            CLIENTS,
            "{app}"
        );
    }
}

/// A handler that computes past --request-timeout gets 504 and one that calls a stub traps
/// with a 500 naming the interface; either instance is discarded, requests on other
/// instances go on meanwhile, and the server keeps serving.
#[test]
fn a_trap_or_a_deadline_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(
        dir.path(),
        &guest("spin5"),
        &["--request-timeout", "2s", "--metrics", "127.0.0.1:0"],
    );
    let address = served.address;
    let metrics = served.metrics.expect("metrics address");
    let (spin, variable, others, after, metrics_text) = runtime().block_on(async move {
        let spin = tokio::spawn(send(address, "GET", "/spin", b""));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let variable = send(address, "GET", "/variable", b"").await;
        let mut others = Vec::new();
        for i in 0..20 {
            let path = format!("/kv/other-{i}");
            others.push(exchange(address, &[("PUT", &path, b"x"), ("GET", &path, b"")]).await);
        }
        let spin = spin.await.expect("spin request");
        let after = exchange(
            address,
            &[("GET", "/kv/other-3", b""), ("GET", "/hello", b"")],
        )
        .await;
        let metrics_text = send(metrics, "GET", "/metrics", b"").await;
        (spin, variable, others, after, metrics_text)
    });
    assert_eq!(spin.0, 504, "{spin:?}");
    assert!(spin.1.contains("--request-timeout 2s"), "{spin:?}");
    assert_eq!(variable.0, 500, "{variable:?}");
    assert!(
        variable
            .1
            .contains("does not provide the interface spin:variables/variables@3.0.0"),
        "{variable:?}"
    );
    for replies in &others {
        assert_eq!(as_str(replies), [(204, ""), (200, "x")]);
    }
    assert_eq!(as_str(&after), [(200, "x"), (200, "hello")]);
    assert!(
        metrics_text
            .1
            .contains("kvhost_http_requests_total{status=\"5xx\"} 2"),
        "{}",
        metrics_text.1
    );
    let (status, log) = served.stop();
    assert!(status.success(), "{status}");
    assert!(
        log.iter().any(|l| l.contains("instance discarded")),
        "the discarded instances are logged: {log:?}"
    );
}

/// With every slot busy and no queue, a request to a WASIp3 app is answered 503 at once.
#[test]
fn a_full_p3_server_answers_503() {
    let dir = tempfile::tempdir().unwrap();
    let OneSlot {
        slow: spin,
        busy,
        later,
    } = with_one_slot(
        dir.path(),
        &guest("spin5"),
        "2s",
        ("/spin", "/hello"),
        Duration::from_millis(500),
    );
    assert_eq!(busy.0, 503, "{busy:?}");
    assert!(busy.1.contains("--max-concurrency"), "{busy:?}");
    assert_eq!(spin.0, 504, "{spin:?}");
    assert_eq!((later.0, later.1.as_str()), (200, "hello"));
}

/// Bad use of the v3 API: a get-keys stream dropped after one key, a store used after it was
/// closed, thousands of opens. Each gives an error (or fails its own request), never a host
/// panic, and the server serves on.
#[test]
fn bad_use_of_spin_key_value_v3_gives_errors() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), &guest("spin5"), &[]);
    let replies = runtime().block_on(exchange(
        served.address,
        &[
            ("PUT", "/kv/a", b"1"),
            ("PUT", "/kv/b", b"2"),
            ("GET", "/keys-first", b""),
            ("GET", "/opens/5000", b""),
            ("GET", "/opens/10", b""),
            ("GET", "/kv/a", b""),
        ],
    ));
    assert_eq!(
        as_str(&replies),
        [
            (204, ""),
            (204, ""),
            (200, "dropped"),
            (200, "1024 Error_StoreTableFull"),
            (200, "10 none"),
            (200, "1"),
        ]
    );
    // Using a closed store is caught by the guest's own bindings: its request fails (a
    // guest trap), the host goes on.
    // A trap (abort) fails its request with a bare "internal error"; the backtrace is logged.
    let (closed, aborted, after) = runtime().block_on(async {
        let closed = send(served.address, "GET", "/closed", b"").await;
        let aborted = send(served.address, "GET", "/abort", b"").await;
        let after = send(served.address, "GET", "/kv/b", b"").await;
        (closed, aborted, after)
    });
    assert!(
        closed.0 == 500 || closed.1.starts_with("Error"),
        "{closed:?}"
    );
    assert_eq!(aborted.0, 500, "{aborted:?}");
    assert!(aborted.1.starts_with("internal error"), "{aborted:?}");
    assert!(!aborted.1.contains("wasm"), "{aborted:?}");
    assert_eq!((after.0, after.1.as_str()), (200, "2"));
    let (status, log) = served.stop();
    assert!(status.success(), "{status}");
    assert!(
        log.iter().any(|l| l.contains("WARN instance discarded")),
        "{log:?}"
    );
    assert!(log.iter().any(|l| l.contains("unreachable")), "{log:?}");
    // The guest's own runtime reports its trap as a panic of its (unnamed) wasm thread; the
    // host's threads must never panic.
    assert!(
        !log.iter()
            .any(|l| l.contains("panicked") && l.contains("tokio")),
        "{log:?}"
    );
}

/// Instances are reused by default (far fewer instances than requests); with
/// --instance-max-requests 1 every request gets a fresh one.
#[test]
fn instances_are_reused_unless_told_not_to() {
    const REQUESTS: usize = 40;
    for (flags, fresh) in [
        (&[][..], false),
        (&["--instance-max-requests", "1"][..], true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["--metrics", "127.0.0.1:0"];
        args.extend_from_slice(flags);
        let served = serve(dir.path(), &guest("spin5"), &args);
        let (address, metrics) = (served.address, served.metrics.expect("metrics"));
        let (replies, metrics_text) = runtime().block_on(async move {
            let requests: Vec<String> = (0..REQUESTS).map(|i| format!("/hit/k{i}")).collect();
            let requests: Vec<(&str, &str, &[u8])> = requests
                .iter()
                .map(|path| ("POST", path.as_str(), &b"v"[..]))
                .collect();
            let replies = exchange(address, &requests).await;
            (replies, send(metrics, "GET", "/metrics", b"").await)
        });
        assert!(replies
            .iter()
            .all(|(status, body)| *status == 200 && body == "v"));
        let started: usize = metrics_text
            .1
            .lines()
            .find_map(|line| line.strip_prefix("kvhost_instances_started_total "))
            .and_then(|count| count.parse().ok())
            .expect("the instance counter is exported");
        if fresh {
            assert_eq!(started, REQUESTS, "one instance per request");
        } else {
            assert!(started <= 2, "{started} instances for {REQUESTS} requests");
        }
        drop(served);
    }
}
