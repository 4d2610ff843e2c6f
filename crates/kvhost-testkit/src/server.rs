//! `redis-server` processes for tests: started on loopback ephemeral ports, each in a temp dir,
//! killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::reaper;

const INSTALL_HINT: &str = "run ./scripts/setup-redis.sh (installs Debian's redis-server)";

/// One `redis-server` process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    tls_port: Option<u16>,
    dir: TempDir,
    args: Vec<String>,
}

impl RedisServer {
    /// A fresh server with no persistence.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// A fresh server that also speaks TLS on [`RedisServer::tls_port`], with a certificate
    /// for 127.0.0.1 signed by a throwaway CA ([`RedisServer::ca_file`]), made with `openssl`.
    pub fn start_tls(extra: &[&str]) -> RedisServer {
        let certs = tempfile::Builder::new()
            .prefix("kvhost-tls-")
            .tempdir()
            .expect("a temp dir for certificates");
        make_certificates(certs.path());
        let tls_port = free_port();
        let file = |name: &str| certs.path().join(name).display().to_string();
        let tls_port_arg = tls_port.to_string();
        let (cert, key, ca) = (file("server.pem"), file("server.key"), file("ca.pem"));
        let mut args = vec![
            "--tls-port",
            &tls_port_arg,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ];
        args.extend_from_slice(extra);
        let mut server = RedisServer::start_with(&args);
        server.tls_port = Some(tls_port);
        for name in ["ca.pem", "server.pem", "server.key"] {
            std::fs::copy(certs.path().join(name), server.dir().join(name))
                .expect("certificates copied next to the server");
        }
        server
    }

    /// The TLS port of a server made by [`RedisServer::start_tls`].
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// The CA certificate (PEM) of a server made by [`RedisServer::start_tls`].
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir().join("ca.pem")
    }

    /// A fresh server with extra `redis-server` arguments (e.g. `["--appendonly", "yes"]`).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let mut args: Vec<String> = [
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "yes",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "redis.log",
        ]
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
        args.extend(extra.iter().map(std::string::ToString::to_string));
        for _attempt in 0..20 {
            let mut server = RedisServer {
                child: None,
                port: free_port(),
                tls_port: None,
                dir: tempfile::Builder::new()
                    .prefix("kvhost-redis-")
                    .tempdir()
                    .expect("a temp dir for redis-server"),
                args: args.clone(),
            };
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on any of 20 ephemeral ports (see its redis.log)");
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its working directory (data files, `redis.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server (SIGKILL) and waits for it; its data dir stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            reaper::forget(child.id());
        }
    }

    /// Starts the server again on the same port with the same data dir.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.spawn() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not restart on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `redis-cli -p PORT ARGS...` and returns its standard output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(self.port, args)
    }

    /// Starts the process and waits until it is ready; `false` if it exited (port taken).
    ///
    /// Ready means *this* process logged that it accepts connections and the port answers
    /// PING. A PING alone is not enough: another test may have bound the same ephemeral port
    /// a moment earlier, and its server would answer while ours fails to bind and exits.
    fn spawn(&mut self) -> bool {
        let log_path = self.dir.path().join("redis.log");
        // A restart appends to the same log: only what this process writes counts.
        let log_start = std::fs::metadata(&log_path)
            .map_or(0, |meta| usize::try_from(meta.len()).unwrap_or(usize::MAX));
        let logged_ready = || {
            std::fs::read(&log_path).is_ok_and(|log| {
                log.get(log_start..).is_some_and(|ours| {
                    String::from_utf8_lossy(ours).contains("Ready to accept connections")
                })
            })
        };
        let mut command = Command::new("redis-server");
        command
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(err) => panic!("cannot start redis-server ({err}): {INSTALL_HINT}"),
        };
        reaper::track(child.id(), self.dir.path());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                reaper::forget(child.id());
                return false;
            }
            if logged_ready() && ping(self.port) {
                self.child = Some(child);
                return true;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                reaper::forget(child.id());
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!(
                    "redis-server on port {} did not answer within 10 s:\n{log}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A CA (`ca.pem`) and a server certificate for IP 127.0.0.1 (`server.pem`, `server.key`).
fn make_certificates(dir: &Path) {
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n")
        .expect("the certificate extension file");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &["-keyout", "server.key", "-out", "server.csr"],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-extfile",
            "san.ext",
        ],
    ];
    for (i, mut step) in steps.into_iter().enumerate() {
        step.extend(["-days", "2"]);
        if i < 2 {
            let subject = if i == 0 {
                "/CN=kvhost test CA"
            } else {
                "/CN=127.0.0.1"
            };
            step.extend(["-subj", subject]);
        }
        let output = Command::new("openssl")
            .args(&step)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|err| panic!("cannot run openssl ({err})"));
        assert!(
            output.status.success(),
            "openssl {step:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("an ephemeral loopback port")
}

/// Whether a Redis on `port` answers PING.
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut line = String::new();
    // A server with a password answers NOAUTH: it is up all the same.
    BufReader::new(&mut stream).read_line(&mut line).is_ok()
        && (line.starts_with("+PONG") || line.starts_with("-NOAUTH"))
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run redis-cli ({err}): {INSTALL_HINT}"));
    assert!(
        output.status.success(),
        "redis-cli {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// One standalone server shared by every caller in this process (killed at exit).
pub fn shared_server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// One 3-master cluster shared by every caller in this process (killed at exit).
pub fn shared_cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| RedisCluster::start(3, 0))
}

/// A Redis Cluster of real servers, created with `redis-cli --cluster create`.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// `masters` masters, each with `replicas` replicas, all slots covered and agreed on.
    pub fn start(masters: usize, replicas: usize) -> RedisCluster {
        let count = masters * (1 + replicas);
        let nodes: Vec<RedisServer> = (0..count)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                    // A replica's first sync starts at once, not after Redis' default 5 s
                    // wait for other replicas to share the transfer.
                    "--repl-diskless-sync-delay",
                    "0",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let mut args: Vec<&str> = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        let replicas_arg = replicas.to_string();
        args.extend(["--cluster-replicas", replicas_arg.as_str(), "--cluster-yes"]);
        redis_cli(nodes[0].port(), &args);
        let cluster = RedisCluster { nodes };
        cluster.wait_until_ok(Duration::from_secs(30));
        cluster.wait_until_replicas_synced(Duration::from_secs(30));
        cluster
    }

    /// Waits until every running replica has finished its first sync with its master
    /// (`master_link_status:up`): before that, a `WAIT` on the master counts no replica.
    fn wait_until_replicas_synced(&self, within: Duration) {
        self.wait_until_every_node(within, "a replica did not sync with its master", |port| {
            let info = bulk_reply(port, "INFO replication");
            info.contains("role:master") || info.contains("master_link_status:up")
        });
    }

    /// Waits until every running node reports `cluster_state:ok` and agrees on all slots.
    pub fn wait_until_ok(&self, within: Duration) {
        self.wait_until_every_node(within, "the cluster did not become ok", |port| {
            let info = bulk_reply(port, "CLUSTER INFO");
            info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
        });
    }

    /// Polls until `ready(port)` holds for every running node; past `within`, panics with
    /// `failure` and the port of a node that was not ready.
    fn wait_until_every_node(&self, within: Duration, failure: &str, ready: impl Fn(u16) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            let waiting = self
                .nodes
                .iter()
                .filter(|node| node.child.is_some())
                .find(|node| !ready(node.port()));
            let Some(node) = waiting else {
                return;
            };
            assert!(
                Instant::now() < deadline,
                "{failure} (node on port {})",
                node.port()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every node's URL (seed nodes for a client).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes, in creation order (the first `masters` are the masters at creation).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Mutable access to a node (to stop or restart it).
    pub fn node_mut(&mut self, index: usize) -> &mut RedisServer {
        &mut self.nodes[index]
    }

    /// The ports of the nodes that are masters now.
    pub fn master_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|node| node.child.is_some())
            .filter(|node| node.cli(&["ROLE"]).starts_with("master"))
            .map(RedisServer::port)
            .collect()
    }
}

/// The bulk-string reply to `command` (e.g. `CLUSTER INFO`) over a raw connection (no
/// redis-cli process per poll); empty if the node does not answer.
fn bulk_reply(port: u16, command: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream
        .write_all(format!("{command}\r\n").as_bytes())
        .is_err()
    {
        return String::new();
    }
    let mut reader = BufReader::new(&mut stream);
    let mut header = String::new();
    if reader.read_line(&mut header).is_err() {
        return String::new();
    }
    let Some(len) = header
        .strip_prefix('$')
        .and_then(|len| len.trim().parse::<usize>().ok())
    else {
        return String::new();
    };
    let mut body = vec![0; len];
    if reader.read_exact(&mut body).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&body).into_owned()
}
