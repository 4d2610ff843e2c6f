//! The admin listener: a JSON API over the buckets and the web console that uses it, on an
//! address of its own (`kvhost serve --admin ADDR`, or `kvhost admin` with no app).
//!
//! - [`api`]: the endpoints (docs/admin.md), over the same registry the components use.
//! - [`console`]: the console's page, script and style, built into the binary.
//! - [`http`]: responses with the security headers, query strings.
//! - [`token`]: the bearer token, checked in constant time.
//! - [`discovery`]: `admin.json` in the data dir, how `kvhost kv` finds a running server.
//!
//! Security: loopback unless a non-loopback address is given (then a warning); every API
//! request needs the token; no cookies and no CORS headers, so another origin's page can
//! neither read an answer nor send the token; a strict Content-Security-Policy; at most
//! [`MAX_CONNECTIONS`] connections, each with [`HEADER_TIMEOUT`] to send a request's head.

mod api;
mod console;
pub mod discovery;
mod http;
mod token;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hyper::server::conn::http1;
use kvhost::{Config, Registry};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use wasmtime_wasi_http::io::TokioIo;

use self::api::Api;
pub use self::api::BucketInfo;
use self::discovery::{Discovered, Published};
use self::token::Token;
use crate::cli::AdminArgs;
use crate::hyper_timer::TokioTimer;
use crate::metrics::Metrics;
use crate::Outcome;

/// Most admin connections open at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 64;
/// How long an admin client may take to send a request's head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to run the admin listener.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// Where the token comes from (default: a fresh one).
    pub token_file: Option<PathBuf>,
}

/// A running admin listener; stops (and removes its discovery file) when dropped.
pub struct Running {
    accepting: JoinHandle<()>,
    _published: Published,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// Starts the admin listener over `registry` (configured by `config`), counting into
/// `metrics`, and publishes its address and token in the data dir.
pub async fn start(
    settings: &AdminSettings,
    config: &Config,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
) -> Result<Running> {
    let token = match &settings.token_file {
        Some(path) => Token::read(path)?,
        None => Token::generate()?,
    };
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {} for the admin API", settings.listen))?;
    let address = listener.local_addr()?;
    if !address.ip().is_loopback() {
        tracing::warn!(
            "the admin API listens on {address}, which other machines can reach: anyone with \
             the token can read and change every bucket, over plain HTTP"
        );
    }
    let published = discovery::publish(
        &config.data_dir,
        &Discovered {
            url: format!("http://{address}"),
            token: token.expose().to_string(),
            pid: std::process::id(),
        },
    )?;
    tracing::info!(
        "admin console and API on http://{address}/ (the token is in {})",
        published.path().display()
    );
    let api = Arc::new(Api {
        registry,
        buckets: BucketInfo::all(config),
        metrics,
        token,
    });
    Ok(Running {
        accepting: tokio::spawn(accept(listener, api)),
        _published: published,
    })
}

/// Accepts admin connections, at most [`MAX_CONNECTIONS`] at once.
async fn accept(listener: TcpListener, api: Arc<Api>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: wait, do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let api = Arc::clone(&api);
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let service =
                hyper::service::service_fn(move |request| Arc::clone(&api).handle(request));
            let served = http1::Builder::new()
                .timer(TokioTimer)
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(err) = served {
                tracing::debug!("admin connection ended: {err}");
            }
        });
    }
}

/// `kvhost admin`: the admin API and console over the configured buckets, with no app, until
/// SIGINT or SIGTERM.
pub async fn run(args: AdminArgs) -> Result<Outcome> {
    let metrics = Arc::new(Metrics::default());
    let config = crate::setup::configure(&args.config, &[], &[])?;
    let mut registry = crate::setup::open_registry(&config)?;
    registry.set_observer(metrics.clone());
    let registry = Arc::new(registry);
    let settings = AdminSettings {
        listen: args.listen,
        token_file: args.admin_token_file,
    };
    let running = start(&settings, &config, Arc::clone(&registry), metrics).await?;
    let signal = crate::signals::stop_requested().await;
    tracing::info!("{}: stopping", signal.name());
    drop(running);
    registry
        .flush()
        .await
        .context("cannot flush the buckets on shutdown")?;
    Ok(Outcome::Done)
}

/// The data dir's discovery file, for `kvhost kv`.
pub fn discovered(data_dir: &Path) -> Result<Option<Discovered>> {
    discovery::find(data_dir)
}
