//! End-to-end tests of `kvhost serve` with a real Spin app: guests/spin/app.py, built with
//! the pinned spin-sdk and componentize-py by scripts/build-guests.sh, served by the kvhost
//! binary and driven over loopback HTTP.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

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
    served.stop_cleanly();
}

/// Reads from `stream` until the server closes it (or 10 s pass); returns what was read and
/// whether it was closed.
fn read_until_closed(stream: &mut TcpStream) -> (String, bool) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut read = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return (String::from_utf8_lossy(&read).into_owned(), true),
            Ok(n) => read.extend_from_slice(&buffer[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&read).into_owned(), true)
            }
            Err(_) => return (String::from_utf8_lossy(&read).into_owned(), false),
        }
    }
}

/// A client that never finishes its request head, one that sends nothing and one idle after
/// a request are all closed after --header-timeout, not held forever.
#[test]
fn slow_and_idle_clients_are_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(
        dir.path(),
        &support::hello::hello_component(),
        &["--header-timeout", "1s"],
    );
    let started = Instant::now();
    let mut half_sent = TcpStream::connect(served.address).unwrap();
    half_sent
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    let mut silent = TcpStream::connect(served.address).unwrap();
    let mut idle = TcpStream::connect(served.address).unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    for (name, stream) in [
        ("half-sent", &mut half_sent),
        ("silent", &mut silent),
        ("idle", &mut idle),
    ] {
        let (read, closed) = read_until_closed(stream);
        assert!(closed, "{name} connection still open after 10 s: {read:?}");
        if name == "idle" {
            assert!(read.starts_with("HTTP/1.1 200"), "{read:?}");
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    served.stop_cleanly();
}

/// Past --max-connections, a new connection is answered 503 and closed; once one closes,
/// new clients are served again.
#[test]
fn connections_past_the_cap_are_answered_503() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(
        dir.path(),
        &support::hello::hello_component(),
        &["--max-connections", "3", "--metrics", "127.0.0.1:0"],
    );
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(served.address).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut over = TcpStream::connect(served.address).unwrap();
    let (read, closed) = read_until_closed(&mut over);
    assert!(closed && read.starts_with("HTTP/1.1 503"), "{read:?}");
    assert!(read.contains("--max-connections"), "{read:?}");
    drop(held);
    let rt = runtime();
    let served_again = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        rt.block_on(send(served.address, "GET", "/", b"")).0 == 200
    });
    assert!(
        served_again,
        "no request was served after the connections closed"
    );
    let metrics = rt.block_on(send(served.metrics.unwrap(), "GET", "/metrics", b""));
    assert!(
        metrics
            .1
            .contains("kvhost_http_connections_rejected_total 1"),
        "{}",
        metrics.1
    );
    served.stop_cleanly();
}

/// SIGTERM closes connections without a whole request at once: kvhost exits in well under
/// its 30 s --shutdown-timeout.
#[test]
fn shutdown_does_not_wait_for_half_sent_requests() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), &support::hello::hello_component(), &[]);
    let mut half_sent = TcpStream::connect(served.address).unwrap();
    half_sent
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    let _silent = TcpStream::connect(served.address).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let (status, log) = served.stop();
    assert!(status.success(), "{status} {log:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A body over --max-request-body is refused with 413 before the component runs; one within
/// it is served.
#[test]
fn request_bodies_over_the_limit_get_413() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(
        dir.path(),
        &support::hello::hello_component(),
        &["--max-request-body", "1KiB"],
    );
    let rt = runtime();
    let within = rt.block_on(send(served.address, "POST", "/", &[b'x'; 1024]));
    assert_eq!(within, (200, "hello\n".to_string()));
    let over = rt.block_on(send(served.address, "POST", "/", &[b'x'; 1025]));
    assert_eq!(over.0, 413, "{over:?}");
    assert!(
        over.1.contains("--max-request-body (1024 bytes)"),
        "{over:?}"
    );
    served.stop_cleanly();
}

/// Instances share --max-total-memory: when it is used up, a request gets 503 naming it
/// (and the server goes on).
#[test]
fn instances_share_the_total_memory_cap() {
    let dir = tempfile::tempdir().unwrap();
    // The hello component's one memory is 64 KiB.
    let served = serve(
        dir.path(),
        &support::hello::hello_component(),
        &["--max-total-memory", "32KiB"],
    );
    let reply = runtime().block_on(send(served.address, "GET", "/", b""));
    assert_eq!(reply.0, 503, "{reply:?}");
    assert!(
        reply.1.contains("--max-total-memory (32768 bytes"),
        "{reply:?}"
    );
    served.stop_cleanly();
}

/// A trap's details (the wasm backtrace) go to the log, never to the client, whose 500 says
/// only "internal error".
#[test]
fn a_trap_is_logged_and_the_client_hears_internal_error() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), &guest("spin"), &[]);
    let reply = runtime().block_on(send(served.address, "GET", "/abort", b""));
    assert_eq!(reply.0, 500, "{reply:?}");
    assert!(reply.1.starts_with("internal error"), "{reply:?}");
    assert!(!reply.1.contains("wasm"), "{reply:?}");
    let (status, log) = served.stop();
    assert!(status.success());
    assert!(
        log.iter().any(|l| l.contains("WARN the component failed")),
        "{log:?}"
    );
    assert!(log.iter().any(|l| l.contains("unreachable")), "{log:?}");
}

/// A client that hangs up in the middle of a response is logged as one short line, not as a
/// component failure with a backtrace, whether or not the app then fails writing to it.
#[test]
fn a_client_hanging_up_mid_response_is_one_short_log_line() {
    for app in ["spin", "spin5"] {
        let dir = tempfile::tempdir().unwrap();
        let served = serve(dir.path(), &guest(app), &[]);
        for _ in 0..3 {
            let mut client = TcpStream::connect(served.address).unwrap();
            client
                .write_all(b"GET /big/64000000 HTTP/1.1\r\nhost: x\r\n\r\n")
                .unwrap();
            let mut head = [0u8; 12];
            client.read_exact(&mut head).unwrap();
            assert_eq!(&head, b"HTTP/1.1 200", "{app}");
        }
        std::thread::sleep(Duration::from_millis(500));
        let reply = runtime().block_on(send(served.address, "GET", "/big/5", b""));
        assert_eq!(reply, (200, "xxxxx".to_string()), "{app}");
        let (status, log) = served.stop();
        assert!(status.success(), "{app}");
        assert!(
            !log.iter().any(|l| l.contains("WARN")),
            "{app}: a hang-up was logged as a warning: {log:?}"
        );
        // spin-sdk 3.x fails writing to the closed stream (a trap); 5.x's copy task stops.
        let hang_ups = log
            .iter()
            .filter(|l| l.contains("INFO a client hung up"))
            .count();
        assert_eq!(
            hang_ups,
            if app == "spin" { 3 } else { 0 },
            "{app}: {log:?}"
        );
    }
}
