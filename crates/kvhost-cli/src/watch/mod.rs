//! Watchers: `wasi:keyvalue` `watch-service` components called on every change of the
//! buckets they watch (`kvhost watch`, `kvhost serve --watcher`).
//!
//! - [`WatcherSpec`]: `COMPONENT[:BUCKET[,BUCKET]...]` and the prefixes.
//! - [`start`] links each component and starts one [`runner::Runner`] per watched bucket;
//!   [`Watchers::stop`] stops them.
//! - [`run`]: `kvhost watch`.
//!
//! A watcher's name is its component's file stem; its position in each bucket is saved under
//! that name, so a restarted watcher resumes where it stopped. Changes given up on are parked
//! in the bucket [`DEAD_LETTERS`] when one is configured.

mod runner;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use kvhost::{Grants, Registry};
use kvhost_wasi::watch::WatcherPre;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wasmtime::component::Linker;
use wasmtime::Engine;

use self::runner::{Runner, Shared};
use crate::cli::WatchArgs;
use crate::host::{wasm_error, HostState};
use crate::metrics::Metrics;
use crate::{engine, Outcome};

/// The bucket changes are parked in after the handler failed every attempt, if configured.
pub const DEAD_LETTERS: &str = "dead-letters";
/// How long one delivery may take before it counts as failed.
pub const DELIVERY_DEADLINE: Duration = Duration::from_secs(10);

/// One watcher: a component and what it watches.
#[derive(Debug, Clone)]
pub struct WatcherSpec {
    /// The `watch-service` component.
    pub component: PathBuf,
    /// The buckets it watches.
    pub buckets: Vec<String>,
    /// Only keys with one of these prefixes are delivered (empty: every key).
    pub prefixes: Vec<String>,
}

impl WatcherSpec {
    /// `COMPONENT[:BUCKET[,BUCKET]...]`; no buckets means `default`.
    pub fn parse(text: &str) -> Result<WatcherSpec, String> {
        let (component, buckets) = match text.rsplit_once(':') {
            Some((component, buckets)) if !buckets.contains('/') => (component, buckets),
            _ => (text, ""),
        };
        if component.is_empty() {
            return Err(format!(
                "{text:?}: give the component: COMPONENT[:BUCKET[,BUCKET]...]"
            ));
        }
        let buckets: Vec<String> = if buckets.is_empty() {
            vec![kvhost::config::DEFAULT_BUCKET.to_string()]
        } else {
            buckets.split(',').map(str::to_string).collect()
        };
        if buckets.iter().any(String::is_empty) {
            return Err(format!("{text:?}: an empty bucket name"));
        }
        Ok(WatcherSpec {
            component: PathBuf::from(component),
            buckets,
            prefixes: Vec::new(),
        })
    }

    /// The watcher's name: its component's file stem.
    fn name(&self) -> String {
        self.component.file_stem().map_or_else(
            || "watcher".to_string(),
            |stem| stem.to_string_lossy().into_owned(),
        )
    }
}

impl From<&kvhost::WatcherConfig> for WatcherSpec {
    fn from(watcher: &kvhost::WatcherConfig) -> Self {
        WatcherSpec {
            component: watcher.component.clone(),
            buckets: watcher.buckets.clone(),
            prefixes: watcher.prefixes.clone(),
        }
    }
}

/// The config's `[[watchers]]` followed by `flags`.
pub fn configured_and(config: &kvhost::Config, flags: &[WatcherSpec]) -> Vec<WatcherSpec> {
    config
        .watchers
        .iter()
        .map(WatcherSpec::from)
        .chain(flags.iter().cloned())
        .collect()
}

/// Every bucket some watcher watches.
pub fn watched(specs: &[WatcherSpec]) -> Vec<String> {
    let mut buckets: Vec<String> = specs.iter().flat_map(|spec| spec.buckets.clone()).collect();
    buckets.sort();
    buckets.dedup();
    buckets
}

/// Running watchers.
pub struct Watchers {
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Watchers {
    /// Stops every watcher (each finishes the delivery in hand) and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// What [`start`] needs besides the specs.
pub struct Setting<'a> {
    /// The engine (epoch ticker running).
    pub engine: &'a Engine,
    /// The buckets (watched ones with change logs).
    pub registry: &'a Arc<Registry>,
    /// What a watcher may open.
    pub grants: &'a Grants,
    /// Memory cap per instance.
    pub max_memory: usize,
    /// Where compiled components are cached.
    pub cache: Option<&'a Path>,
    /// Counters.
    pub metrics: &'a Arc<Metrics>,
}

/// Compiles and links every watcher and starts one runner per watched bucket.
pub fn start(specs: &[WatcherSpec], setting: &Setting<'_>) -> Result<Watchers> {
    let (stop, stopping) = watch::channel(false);
    let dead_letters = setting.registry.open(DEAD_LETTERS, &Grants::All).ok();
    let mut tasks = Vec::new();
    for spec in specs {
        let component = engine::load_component(setting.engine, &spec.component, setting.cache)?;
        let mut linker = Linker::<HostState>::new(setting.engine);
        let linker_error =
            |err: wasmtime::Error| wasm_error("cannot set up the watcher's linker", &err);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(linker_error)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(linker_error)?;
        kvhost_wasi::add_to_linker_for(&mut linker, &component).map_err(linker_error)?;
        let pre = WatcherPre::new(&linker, &component).map_err(|err| {
            wasm_error(
                &format!(
                    "cannot run {} as a watcher (it must export {})",
                    spec.component.display(),
                    kvhost_wasi::watch::WATCHER_EXPORT
                ),
                &err,
            )
        })?;
        let shared = Arc::new(Shared {
            pre,
            engine: setting.engine.clone(),
            registry: Arc::clone(setting.registry),
            grants: setting.grants.clone(),
            max_memory: setting.max_memory,
            deadline: DELIVERY_DEADLINE,
            dead_letters: dead_letters.clone(),
        });
        let name = spec.name();
        for bucket in &spec.buckets {
            let handle = setting
                .registry
                .open(bucket, &Grants::All)
                .map_err(|err| anyhow!("watcher {name}: bucket {bucket:?}: {err}"))?;
            tracing::info!(watcher = name, bucket, "watching");
            let runner = Runner {
                name: name.clone(),
                bucket: handle,
                prefixes: spec.prefixes.clone(),
                shared: Arc::clone(&shared),
                counters: setting.metrics.watcher(&name, bucket),
                stopping: stopping.clone(),
            };
            tasks.push(tokio::spawn(runner.run()));
        }
    }
    Ok(Watchers { tasks, stop })
}

/// `kvhost watch`: runs the watcher COMPONENT (or, without one, the config's `[[watchers]]`)
/// until SIGINT or SIGTERM.
pub async fn run(args: WatchArgs) -> Result<Outcome> {
    let flagged: Vec<WatcherSpec> = args
        .component
        .iter()
        .map(|component| WatcherSpec {
            component: component.clone(),
            buckets: args.buckets.clone(),
            prefixes: args.prefixes.clone(),
        })
        .collect();
    let metrics = Arc::new(Metrics::default());
    let config = crate::setup::configure(&args.config, &[], &watched(&flagged))?;
    let mut registry = crate::setup::open_registry(&config)?;
    let specs = if flagged.is_empty() {
        configured_and(&config, &[])
    } else {
        flagged
    };
    if specs.is_empty() {
        return Err(anyhow!(
            "no watcher to run: give a COMPONENT and --bucket NAME, or add [[watchers]] to \
             kvhost.toml"
        ));
    }
    registry.set_observer(metrics.clone());
    let registry = Arc::new(registry);
    let engine = engine::engine()?;
    engine::start_epoch_ticker(&engine);
    let cache = engine::cache_dir(args.no_cache, args.cache_dir.as_deref());
    let watchers = start(
        &specs,
        &Setting {
            engine: &engine,
            registry: &registry,
            grants: &Grants::from_config(&config),
            max_memory: args.max_memory,
            cache: cache.as_deref(),
            metrics: &metrics,
        },
    )?;
    let signal = crate::signals::stop_requested().await;
    tracing::info!("{}: stopping the watcher", signal.name());
    watchers.stop().await;
    registry
        .flush()
        .await
        .context("cannot flush the buckets on shutdown")?;
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let spec = WatcherSpec::parse("w.wasm:src,other").unwrap();
        assert_eq!(
            (spec.component.to_str(), spec.buckets.as_slice()),
            (
                Some("w.wasm"),
                &["src".to_string(), "other".to_string()][..]
            )
        );
        assert_eq!(
            WatcherSpec::parse("dir/w.wasm").unwrap().buckets,
            ["default"]
        );
        assert_eq!(WatcherSpec::parse("dir/w.wasm").unwrap().name(), "w");
        assert!(WatcherSpec::parse(":src").is_err());
        assert!(WatcherSpec::parse("w.wasm:a,,b").is_err());
        assert_eq!(watched(&[spec.clone(), spec]), ["other", "src"]);
    }
}
