//! End-to-end tests of `kvhost serve` with a real Spin app: guests/spin/app.py, built with
//! the pinned spin-sdk and componentize-py by scripts/build-guests.sh, served by the kvhost
//! binary and driven over loopback HTTP.

mod support;

use std::process::Command;
use std::time::Duration;

use support::http::{clients_at_once, Client};
use support::served::{kv, runtime, send, serve, with_one_slot, OneSlot};
use support::{cache_dir, guest, KVHOST};

/// The acceptance test: 2,000 clients at once, each on its own connection, store and
/// read back a key through the Spin SDK's wasi_keyvalue_store and bump a shared counter; no
/// request fails, and after a graceful stop every key is on disk for `kvhost kv`.
#[test]
fn spin_app_serves_2000_concurrent_clients_and_the_data_stays_on_disk() {
    const CLIENTS: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), &guest("spin"), &[]);
    let address = served.address;
    let failures = runtime().block_on(clients_at_once(
        address,
        CLIENTS,
        |i, mut client| async move {
            let (key, value) = (format!("/kv/key-{i}"), format!("value-{i}"));
            let put = client.send("PUT", &key, value.as_bytes()).await?;
            let get = client.send("GET", &key, b"").await?;
            let count = client.send("POST", "/count/hits", b"").await?;
            if (put.status, get.status, count.status) != (204, 200, 200) || get.text() != value {
                return Err(format!("client {i}: {put:?} {get:?} {count:?}"));
            }
            Ok(())
        },
    ));
    assert!(
        failures.is_empty(),
        "{} of {CLIENTS} clients failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let (status, _) = served.stop();
    assert!(
        status.success(),
        "kvhost serve exits 0 on SIGTERM: {status}"
    );

    let get = kv(dir.path(), &["get", "default", "key-1234"]);
    assert_eq!(String::from_utf8_lossy(&get.stdout), "value-1234");
    let hits = kv(dir.path(), &["get", "default", "hits"]);
    assert_eq!(String::from_utf8_lossy(&hits.stdout), CLIENTS.to_string());
    let list = kv(dir.path(), &["list", "default"]);
    assert_eq!(
        String::from_utf8_lossy(&list.stdout).lines().count(),
        CLIENTS + 1
    );
}

/// A call into an interface kvhost does not provide (Spin variables) fails that request with
/// a 500 naming the interface; the server keeps serving; metrics count it all.
#[test]
fn an_unprovided_interface_fails_only_the_request_that_calls_it() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), &guest("spin"), &["--metrics", "127.0.0.1:0"]);
    let (address, metrics) = (served.address, served.metrics.expect("metrics address"));
    let (variable, after, put, metrics_text) = runtime().block_on(async move {
        let variable = send(address, "GET", "/variable", b"").await;
        let put = send(address, "PUT", "/kv/a", b"1").await;
        let after = send(address, "GET", "/kv/a", b"").await;
        let metrics_text = send(metrics, "GET", "/metrics", b"").await;
        (variable, after, put, metrics_text)
    });
    assert_eq!(variable.0, 500, "{variable:?}");
    let named = "does not provide the interface fermyon:spin/variables@2.0.0";
    assert!(variable.1.contains(named), "{variable:?}");
    assert_eq!((put.0, after.0, after.1.as_str()), (204, 200, "1"));
    for line in [
        "kvhost_http_requests_total{status=\"2xx\"} 2",
        "kvhost_http_requests_total{status=\"5xx\"} 1",
        "kvhost_http_request_duration_seconds_count 3",
        "kvhost_kv_operations_total{bucket=\"default\",op=\"set\",outcome=\"ok\"} 1",
        "kvhost_kv_operations_total{bucket=\"default\",op=\"get\",outcome=\"ok\"} 1",
    ] {
        assert!(
            metrics_text.1.lines().any(|l| l == line),
            "metrics lack {line:?}:\n{}",
            metrics_text.1
        );
    }
    let (status, log) = served.stop();
    assert!(status.success());
    assert!(
        log.iter()
            .any(|l| l.contains("WARN") && l.contains("fermyon:spin/variables@2.0.0")),
        "the failure is logged at warn: {log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("path=\"/kv/a\"") && l.contains("status=200")),
        "one info line per request: {log:?}"
    );
}

/// With every slot busy and no queue, a request is answered 503 at once; a request past
/// --request-timeout is stopped and answered 504; afterwards the server serves normally.
#[test]
fn a_full_server_answers_503_and_a_slow_request_504() {
    let dir = tempfile::tempdir().unwrap();
    let OneSlot { slow, busy, later } = with_one_slot(
        dir.path(),
        &guest("spin"),
        "1s",
        ("/sleep/5000", "/kv/x"),
        Duration::from_millis(300),
    );
    assert_eq!(busy.0, 503, "{busy:?}");
    assert!(busy.1.contains("--max-concurrency"), "{busy:?}");
    assert_eq!(slow.0, 504, "{slow:?}");
    assert!(slow.1.contains("--request-timeout 1s"), "{slow:?}");
    assert_eq!(later.0, 404, "{later:?}");
}

/// SIGTERM during a request: the request completes, then kvhost exits 0 and stops listening.
#[test]
fn sigterm_lets_the_in_flight_request_finish() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), &guest("spin"), &[]);
    let address = served.address;
    let rt = runtime();
    let slow = rt.spawn(send(address, "GET", "/sleep/1500", b""));
    std::thread::sleep(Duration::from_millis(500));
    let (status, log) = served.stop();
    let slow = rt.block_on(slow).expect("slow request");
    assert_eq!((slow.0, slow.1.as_str()), (200, "slept\n"));
    assert!(status.success(), "{status} {log:?}");
    assert!(log.iter().any(|l| l.contains("SIGTERM")), "{log:?}");
    assert!(std::net::TcpStream::connect(address).is_err());
}

/// Spin's own key-value API (spin_sdk.key_value) works on the same bucket as wasi:keyvalue:
/// written through one, read through the other, listed by get-keys.
#[test]
fn spins_own_key_value_api_shares_the_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), &guest("spin"), &[]);
    let address = served.address;
    let replies = runtime().block_on(async move {
        vec![
            send(address, "PUT", "/spin-kv/via-spin", b"s").await,
            send(address, "PUT", "/kv/via-wasi", b"w").await,
            send(address, "GET", "/kv/via-spin", b"").await,
            send(address, "GET", "/spin-kv/via-wasi", b"").await,
            send(address, "GET", "/spin-kv/missing", b"").await,
            send(address, "GET", "/spin-keys", b"").await,
            send(address, "GET", "/spin-open/default", b"").await,
            send(address, "GET", "/spin-open/nope", b"").await,
        ]
    });
    let expected = [
        (204, ""),
        (204, ""),
        (200, "s"),
        (200, "w"),
        (404, "no such key\n"),
        (200, "via-spin\nvia-wasi\n"),
        (200, "opened"),
        (200, "Error_NoSuchStore"),
    ];
    let replies: Vec<_> = replies.iter().map(|(s, b)| (*s, b.as_str())).collect();
    assert_eq!(replies, expected);
    drop(served);
}

/// A component that is not an HTTP handler is refused at start, naming the export looked for.
#[test]
fn a_component_without_an_http_handler_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(KVHOST)
        .args(["serve", "--listen", "127.0.0.1:0", "--cache-dir"])
        .arg(cache_dir())
        .arg(guest("draft2"))
        .current_dir(dir.path())
        .output()
        .expect("kvhost serve runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "exports neither wasi:http/incoming-handler@0.2.x nor wasi:http/handler@0.3.0"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("wasi:cli/run@0.2"), "{stderr}");
}

/// A zero or absurdly long --request-timeout is refused at start with a clear message (it
/// used to answer every request 504, or panic in every request).
#[test]
fn out_of_range_request_timeouts_are_refused() {
    for (value, says) in [
        ("0", "above zero"),
        ("10000000000000000000s", "out of range"),
    ] {
        let output = Command::new(KVHOST)
            .args(["serve", "--request-timeout", value])
            .arg(guest("spin"))
            .output()
            .expect("kvhost serve runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{value}: {stderr}");
        assert!(stderr.contains(says), "{value}: {stderr}");
    }
}

/// The minimal WAT guest used by the serve benchmark answers correctly (so the benchmark
/// measures a working handler), on many keep-alive requests of one connection.
#[test]
fn the_minimal_hello_component_answers_hello() {
    let dir = tempfile::tempdir().unwrap();
    let hello = support::hello::hello_component();
    let served = serve(dir.path(), &hello, &[]);
    let address = served.address;
    let replies = runtime().block_on(async move {
        let mut client = Client::connect(address).await.expect("connects");
        let mut replies = Vec::new();
        for _ in 0..100 {
            let reply = client.send("GET", "/", b"").await.expect("answers");
            replies.push((reply.status, reply.text()));
        }
        replies
    });
    assert!(
        replies.iter().all(|r| *r == (200, "hello\n".to_string())),
        "{replies:?}"
    );
    let (status, _) = served.stop();
    assert!(status.success());
}
