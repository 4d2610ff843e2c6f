//! `rediss://`: TLS with certificate checks, passwords, and errors that never show them.

use std::time::Duration;

use kvhost::backend::redis::{RedisBucket, RedisOptions, RedisTarget};
use kvhost::{Bucket, Error};
use kvhost_testkit::RedisServer;

fn bucket(url: String, ca: Option<Vec<u8>>) -> RedisBucket {
    let target = RedisTarget::Standalone {
        url,
        replicas: Vec::new(),
    };
    let options = RedisOptions {
        timeout: Duration::from_secs(3),
        tls_root_ca: ca,
    };
    RedisBucket::new("tls", &target, options, "test").expect("a valid target")
}

fn other_message(result: Result<Option<Vec<u8>>, Error>) -> String {
    match result {
        Err(Error::Other(message)) => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_the_servers_ca_and_a_password() {
    let server = RedisServer::start_tls(&["--requirepass", "s3cret-pw"]);
    let port = server.tls_port().unwrap();
    let ca = std::fs::read(server.ca_file()).unwrap();

    let good = bucket(
        format!("rediss://:s3cret-pw@127.0.0.1:{port}/0"),
        Some(ca.clone()),
    );
    good.set("k".into(), b"over tls".to_vec()).await.unwrap();
    assert_eq!(good.get("k").await.unwrap(), Some(b"over tls".to_vec()));

    // A certificate nobody vouches for is refused (the system roots do not know the test CA).
    let untrusted = bucket(format!("rediss://:s3cret-pw@127.0.0.1:{port}/0"), None);
    let message = other_message(untrusted.get("k").await);
    assert!(message.starts_with("redis unavailable:"), "{message}");
    assert!(!message.contains("s3cret-pw"), "{message}");

    // A wrong password: a clear error without either password.
    let wrong = bucket(format!("rediss://:wrong-pw@127.0.0.1:{port}/0"), Some(ca));
    let message = other_message(wrong.get("k").await);
    assert!(!message.contains("wrong-pw"), "{message}");
    assert!(
        message.contains("WRONGPASS") || message.contains("auth"),
        "{message}"
    );

    // The plain port of the same server needs the password too.
    let plain = bucket(format!("redis://127.0.0.1:{}/0", server.port()), None);
    let message = other_message(plain.get("k").await);
    assert!(
        message.contains("NOAUTH") || message.contains("auth"),
        "{message}"
    );
}
