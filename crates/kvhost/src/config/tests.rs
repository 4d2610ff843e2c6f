//! Unit tests of the configuration model.

use super::*;

fn parse(text: &str) -> Result<Config, String> {
    Config::from_toml_str(text, "kvhost.toml").map_err(|err| err.to_string())
}

#[test]
fn watchers_and_watch_retention() {
    let config = parse(
        "[buckets.src]\nwatch_retention = 10\n[[watchers]]\ncomponent = \"w.wasm\"\nbuckets = [\"src\"]\nprefixes = [\"a/\"]\n",
    )
    .unwrap();
    assert_eq!(config.buckets["src"].watch_retention, Some(10));
    assert_eq!(config.watchers[0].prefixes, ["a/"]);
    let defaulted = parse("[[watchers]]\ncomponent = \"w.wasm\"\n").unwrap();
    assert_eq!(defaulted.watchers[0].buckets, ["default"]);
    let redis =
        parse("[buckets.r]\nbackend = \"redis\"\nurl = \"redis://x\"\nwatch_retention = 5\n")
            .unwrap();
    assert_eq!(redis.buckets["r"].watch_retention, Some(5));
    for (text, wanted) in [
        (
            "[[watchers]]\ncomponent = \"w.wasm\"\nbuckets = [\"nope\"]\n",
            "watchers[0].buckets",
        ),
        (
            "[[watchers]]\ncomponent = \"w.wasm\"\nbuckets = []\n",
            "at least one bucket",
        ),
        ("[[watchers]]\ncomponent = \"w.wasm\"\ncolor = 1\n", "color"),
        ("[buckets.a]\nwatch_retention = 0\n", "at least 1"),
    ] {
        let err = parse(text).unwrap_err();
        assert!(err.contains(wanted), "{text}: {err}");
    }
}

#[test]
fn dot_names_and_flush_interval_on_immediate_buckets_are_refused() {
    for name in [".", ".."] {
        let err = check_bucket_name(name).unwrap_err();
        assert!(err.contains("names a directory"), "{err}");
    }
    check_bucket_name(".hidden").unwrap();
    check_bucket_name("a.b").unwrap();
    let err = parse("[buckets.\"..\"]\n").unwrap_err();
    assert!(err.contains("names a directory"), "{err}");
    let err = parse("[buckets.a]\nflush_interval_ms = 50\n").unwrap_err();
    assert!(
        err.contains("only relaxed buckets take flush_interval_ms"),
        "{err}"
    );
    let err =
        parse("[buckets.a]\ndurability = \"immediate\"\nflush_interval_ms = 50\n").unwrap_err();
    assert!(err.contains("only relaxed buckets"), "{err}");
    parse("[buckets.a]\ndurability = \"relaxed\"\nflush_interval_ms = 50\n").unwrap();
}

#[test]
fn architecture_example_parses() {
    let config = parse(
        r#"
        data_dir = "state"
        allow = ["default", "cache"]
        [buckets.default]
        durability = "immediate"
        [buckets.cache]
        backend = "memory"
        [buckets.logs]
        durability = "relaxed"
        flush_interval_ms = 50
        [limits]
        max_key_bytes = 512
        "#,
    )
    .unwrap();
    assert_eq!(config.data_dir, PathBuf::from("state"));
    assert_eq!(config.buckets["cache"].backend, BackendKind::Memory);
    assert_eq!(config.buckets["logs"].durability, Durability::Relaxed);
    assert_eq!(
        config.buckets["logs"].flush_interval,
        Duration::from_millis(50)
    );
    assert_eq!(config.limits.max_key_bytes, 512);
    assert_eq!(config.limits.list_page_keys, 1000);
}

#[test]
fn empty_config_has_the_default_bucket() {
    assert_eq!(parse("").unwrap(), Config::default());
}

#[test]
fn errors_quote_key_value_and_file() {
    let err = parse("[buckets.a]\ndurability = \"sometimes\"\n").unwrap_err();
    assert!(err.starts_with("kvhost.toml:"), "{err}");
    assert!(
        err.contains("sometimes") && err.contains("durability"),
        "{err}"
    );

    let err = parse("colour = \"blue\"\n").unwrap_err();
    assert!(err.contains("colour"), "{err}");

    let err = parse("[buckets.a]\nbackend = \"cassandra\"\n").unwrap_err();
    assert!(err.contains("cassandra"), "{err}");

    let err = parse("[buckets.a]\nbackend = \"memory\"\ndurability = \"relaxed\"\n").unwrap_err();
    assert!(err.contains("buckets.a.durability"), "{err}");

    let err = parse("allow = [\"nope\"]\n").unwrap_err();
    assert!(err.contains("allow") && err.contains("nope"), "{err}");

    let err = parse("[buckets.\"a b\"]\n").unwrap_err();
    assert!(err.contains("\"a b\""), "{err}");

    let err = parse("[limits]\nlist_page_keys = 0\n").unwrap_err();
    assert!(err.contains("limits.list_page_keys"), "{err}");

    let err = parse("[limits]\nmax_key_bytes = -1\n").unwrap_err();
    assert!(err.contains("max_key_bytes"), "{err}");
}

#[test]
fn redis_buckets_parse_and_never_show_their_urls() {
    let config = parse(
        r#"
        [buckets.shared]
        backend = "redis"
        url = "redis://:hunter2@127.0.0.1:6379/0"
        replicas = ["redis://:hunter2@127.0.0.1:6380/0"]
        timeout_ms = 250
        [buckets.big]
        backend = "redis-cluster"
        nodes = ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]
        "#,
    )
    .unwrap();
    let shared = config.buckets["shared"].redis.as_ref().unwrap();
    assert_eq!(shared.timeout, Duration::from_millis(250));
    assert_eq!(shared.replicas.len(), 1);
    let big = &config.buckets["big"];
    assert_eq!(big.backend, BackendKind::RedisCluster);
    assert_eq!(big.redis.as_ref().unwrap().timeout, DEFAULT_REDIS_TIMEOUT);
    assert!(!format!("{config:?}").contains("hunter2"));

    for (text, wanted) in [
        ("[buckets.a]\nbackend = \"redis\"\n", "buckets.a.url"),
        (
            "[buckets.a]\nbackend = \"redis-cluster\"\nnodes = []\n",
            "buckets.a.nodes",
        ),
        (
            "[buckets.a]\nurl = \"redis://h\"\n",
            "only redis buckets take url",
        ),
        (
            "[buckets.a]\nbackend = \"redis\"\nurl = \"redis://h\"\ndurability = \"relaxed\"\n",
            "only embedded",
        ),
        (
            "[buckets.a]\nbackend = \"redis\"\nurl = \"redis://h\"\nnodes = [\"redis://h\"]\n",
            "only redis-cluster",
        ),
        (
            "[buckets.a]\nbackend = \"memory\"\ntimeout_ms = 5\n",
            "timeout_ms",
        ),
    ] {
        let err = parse(text).unwrap_err();
        assert!(err.contains(wanted), "{text}: {err}");
    }
    // A parse error names the line, never quotes it: it may hold a password.
    for (text, wanted) in [
        (
            "[buckets.a]\nbackend = \"redis\"\nurl = \"redis://u:hunter2@h:1/0\" x\n",
            "line 3, column",
        ),
        (
            "[buckets.a]\nbackend = \"redis\"\npassword = \"hunter2\"\n",
            "line 3, column 1, at `password`: unknown field `password`",
        ),
        (
            "[buckets.a]\nbackend = \"redis\"\nurl = [\"redis://:hunter2@h/0\"]\n",
            "line 3, column 7",
        ),
    ] {
        let err = parse(text).unwrap_err();
        assert!(err.contains(wanted), "{text}: {err}");
        assert!(!err.contains("hunter2"), "password echoed: {err}");
    }
}

#[test]
fn urls_lose_their_user_info() {
    for (text, redacted) in [
        ("redis://u:hunter2@h:1/0", "redis://***@h:1/0"),
        ("redis://:hun/ter2@h:1/0", "redis://***@h:1/0"),
        ("redis://:hun?te#r2@h", "redis://***@h"),
        ("at \"rediss://:a@b@h/0\", x", "at \"rediss://***@h/0\", x"),
        (
            "redis://h:1/0 and redis://u:p@h",
            "redis://h:1/0 and redis://***@h",
        ),
        ("no url here: a@b", "no url here: a@b"),
    ] {
        assert_eq!(redact_urls(text), redacted, "{text}");
    }
}

#[test]
fn relative_data_dir_follows_the_file() {
    let dir = std::env::temp_dir().join(format!("kvhost-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("kvhost.toml");
    std::fs::write(&file, "data_dir = \"data\"\n").unwrap();
    let config = Config::load(&file).unwrap();
    assert_eq!(config.data_dir, dir.join("data"));
    std::fs::remove_dir_all(&dir).unwrap();
}
