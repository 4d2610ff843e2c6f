//! The numbers `kvhost serve --metrics ADDR` and the admin API expose, in Prometheus' text format.
//!
//! Everything is a plain atomic counter, updated on the request path without locks (bucket
//! counters are found through a read-mostly map, written once per bucket name). Rendering
//! reads the counters one by one, so a scrape is a consistent-enough snapshot, not an atomic
//! one: the usual contract of Prometheus client libraries.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use kvhost::observe::{Observer, Op, Outcome};
use parking_lot::RwLock;

/// Upper bounds (seconds) of the request latency histogram's buckets.
const LATENCY_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The status classes requests are counted by.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Counters of one bucket: one per (operation, outcome).
type BucketCounters = [[AtomicU64; Outcome::ALL.len()]; Op::ALL.len()];

/// All of `kvhost serve`'s metrics.
#[derive(Default)]
pub struct Metrics {
    requests: [AtomicU64; STATUS_CLASSES.len()],
    /// Requests per latency bucket, not cumulative (one increment per request); the
    /// cumulative `le` counts Prometheus wants are summed when rendering.
    latency_buckets: [AtomicU64; LATENCY_BOUNDS.len()],
    latency_count: AtomicU64,
    latency_micros_sum: AtomicU64,
    /// Requests turned away with 503 because every slot and the queue were full.
    pub rejected: AtomicU64,
    /// Requests being handled now.
    pub in_flight: AtomicU64,
    /// Requests waiting for a slot now.
    pub queued: AtomicU64,
    /// Component instances started (one per request for WASIp2; fewer when reused).
    pub instances: AtomicU64,
    /// Connections open now.
    pub connections: AtomicU64,
    /// Connections turned away (503, then closed) at `--max-connections`.
    pub connections_rejected: AtomicU64,
    buckets: RwLock<BTreeMap<String, Arc<BucketCounters>>>,
    watchers: RwLock<BTreeMap<(String, String), Arc<WatchCounters>>>,
}

/// The numbers of one watcher on one bucket.
#[derive(Default)]
pub struct WatchCounters {
    /// Changes its handler took.
    pub delivered: AtomicU64,
    /// Deliveries tried again after a failure.
    pub retried: AtomicU64,
    /// Changes given up on and parked in the dead-letter bucket.
    pub parked: AtomicU64,
    /// Times it started over from a snapshot (new, or fell behind the retention).
    pub resyncs: AtomicU64,
    /// Changes read and not delivered yet.
    pub lag_events: AtomicU64,
    /// When it was last caught up (microseconds since the Unix epoch); 0: it is caught up now.
    pub behind_since_micros: AtomicU64,
}

impl Metrics {
    /// Counts a finished request with its status code and latency (time to the response head).
    pub fn request(&self, status: u16, latency: Duration) {
        let class = usize::from(status / 100).clamp(1, STATUS_CLASSES.len()) - 1;
        self.requests[class].fetch_add(1, Relaxed);
        let seconds = latency.as_secs_f64();
        // Slower than every bound: counted only in `+Inf` (the total count).
        if let Some(bucket) = LATENCY_BOUNDS.iter().position(|bound| seconds <= *bound) {
            self.latency_buckets[bucket].fetch_add(1, Relaxed);
        }
        self.latency_count.fetch_add(1, Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_micros_sum.fetch_add(micros, Relaxed);
    }

    /// The counters of watcher `watcher` on `bucket`.
    pub fn watcher(&self, watcher: &str, bucket: &str) -> Arc<WatchCounters> {
        let key = (watcher.to_string(), bucket.to_string());
        if let Some(counters) = self.watchers.read().get(&key) {
            return Arc::clone(counters);
        }
        Arc::clone(self.watchers.write().entry(key).or_default())
    }

    fn bucket(&self, name: &str) -> Arc<BucketCounters> {
        if let Some(counters) = self.buckets.read().get(name) {
            return Arc::clone(counters);
        }
        let mut buckets = self.buckets.write();
        Arc::clone(buckets.entry(name.to_string()).or_default())
    }

    /// Key-value operations so far, by bucket and operation (every outcome counted), for the
    /// console's live panel; operations never called are left out.
    pub fn bucket_totals(&self) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
        self.buckets
            .read()
            .iter()
            .map(|(bucket, counters)| {
                let totals = Op::ALL
                    .iter()
                    .map(|op| {
                        let total = counters[op.index()].iter().map(|c| c.load(Relaxed)).sum();
                        (op.name(), total)
                    })
                    .filter(|(_, total)| *total > 0)
                    .collect();
                (bucket.clone(), totals)
            })
            .collect()
    }

    /// The metrics in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) -> std::fmt::Result {
        writeln!(
            out,
            "# HELP kvhost_http_requests_total HTTP requests answered, by status class."
        )?;
        writeln!(out, "# TYPE kvhost_http_requests_total counter")?;
        for (class, count) in STATUS_CLASSES.iter().zip(&self.requests) {
            let count = count.load(Relaxed);
            writeln!(
                out,
                "kvhost_http_requests_total{{status=\"{class}\"}} {count}"
            )?;
        }
        writeln!(
            out,
            "# HELP kvhost_http_request_duration_seconds Time to the response head."
        )?;
        writeln!(out, "# TYPE kvhost_http_request_duration_seconds histogram")?;
        let mut cumulative = 0;
        for (bound, count) in LATENCY_BOUNDS.iter().zip(&self.latency_buckets) {
            cumulative += count.load(Relaxed);
            writeln!(
                out,
                "kvhost_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            )?;
        }
        let count = self.latency_count.load(Relaxed);
        let sum = self.latency_micros_sum.load(Relaxed) as f64 / 1e6;
        writeln!(
            out,
            "kvhost_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        )?;
        writeln!(out, "kvhost_http_request_duration_seconds_sum {sum}")?;
        writeln!(out, "kvhost_http_request_duration_seconds_count {count}")?;
        let gauges = [
            (
                "kvhost_http_requests_rejected_total",
                "counter",
                "Requests answered 503 because every slot and the queue were full.",
                &self.rejected,
            ),
            (
                "kvhost_http_requests_in_flight",
                "gauge",
                "Requests being handled.",
                &self.in_flight,
            ),
            (
                "kvhost_http_requests_queued",
                "gauge",
                "Requests waiting for a slot.",
                &self.queued,
            ),
            (
                "kvhost_instances_started_total",
                "counter",
                "Component instances started (WASIp3 instances serve several requests).",
                &self.instances,
            ),
            (
                "kvhost_http_connections",
                "gauge",
                "Client connections open.",
                &self.connections,
            ),
            (
                "kvhost_http_connections_rejected_total",
                "counter",
                "Connections answered 503 and closed because --max-connections were open.",
                &self.connections_rejected,
            ),
        ];
        for (name, kind, help, value) in gauges {
            writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                value.load(Relaxed)
            )?;
        }
        self.render_watchers(out)?;
        writeln!(out, "# HELP kvhost_kv_operations_total Key-value operations, by bucket, operation and outcome.")?;
        writeln!(out, "# TYPE kvhost_kv_operations_total counter")?;
        for (bucket, counters) in self.buckets.read().iter() {
            let bucket = escape_label(bucket);
            for op in Op::ALL {
                for outcome in Outcome::ALL {
                    let count = counters[op.index()][outcome.index()].load(Relaxed);
                    if count > 0 {
                        let (op, outcome) = (op.name(), outcome.name());
                        writeln!(out, "kvhost_kv_operations_total{{bucket=\"{bucket}\",op=\"{op}\",outcome=\"{outcome}\"}} {count}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl Metrics {
    fn render_watchers(&self, out: &mut String) -> std::fmt::Result {
        let watchers = self.watchers.read();
        if watchers.is_empty() {
            return Ok(());
        }
        let now = now_micros();
        let series: [Series; 6] = [
            (
                "kvhost_watch_events_delivered_total",
                "counter",
                "Changes a watcher's handler took.",
                |c, _| c.delivered.load(Relaxed) as f64,
            ),
            (
                "kvhost_watch_events_retried_total",
                "counter",
                "Deliveries tried again after the handler failed.",
                |c, _| c.retried.load(Relaxed) as f64,
            ),
            (
                "kvhost_watch_events_parked_total",
                "counter",
                "Changes given up on and parked in the dead-letter bucket.",
                |c, _| c.parked.load(Relaxed) as f64,
            ),
            (
                "kvhost_watch_resyncs_total",
                "counter",
                "Times a watcher started over from a snapshot.",
                |c, _| c.resyncs.load(Relaxed) as f64,
            ),
            (
                "kvhost_watch_lag_events",
                "gauge",
                "Changes read and not yet delivered.",
                |c, _| c.lag_events.load(Relaxed) as f64,
            ),
            (
                "kvhost_watch_lag_seconds",
                "gauge",
                "How long the watcher has not been caught up.",
                |c, now| {
                    let since = c.behind_since_micros.load(Relaxed);
                    if since == 0 {
                        0.0
                    } else {
                        now.saturating_sub(since) as f64 / 1e6
                    }
                },
            ),
        ];
        for (name, kind, help, value) in series {
            writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}")?;
            for ((watcher, bucket), counters) in watchers.iter() {
                let (watcher, bucket) = (escape_label(watcher), escape_label(bucket));
                writeln!(
                    out,
                    "{name}{{watcher=\"{watcher}\",bucket=\"{bucket}\"}} {}",
                    value(counters, now)
                )?;
            }
        }
        Ok(())
    }
}

/// One watcher series: name, type, help, and its value from the counters at a time.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&WatchCounters, u64) -> f64,
);

/// Microseconds since the Unix epoch.
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
        })
}

impl Observer for Metrics {
    fn observe(&self, bucket: &str, op: Op, error: Option<&kvhost::Error>) {
        let outcome = match error {
            None => Outcome::Ok,
            Some(error) => {
                tracing::warn!(bucket, op = op.name(), "key-value error: {error}");
                Outcome::of::<()>(&Err(error.clone()))
            }
        };
        self.bucket(bucket)[op.index()][outcome.index()].fetch_add(1, Relaxed);
    }
}

/// A label value with `\`, `"` and newlines escaped as the text format requires.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_requests_latency_and_kv_operations() {
        let metrics = Metrics::default();
        metrics.request(200, Duration::from_millis(3));
        metrics.request(503, Duration::from_micros(100));
        metrics.observe("cache", Op::Get, None);
        metrics.observe("cache", Op::Get, None);
        metrics.observe("a\"b", Op::Open, Some(&kvhost::Error::AccessDenied));
        let text = metrics.render();
        for line in [
            "kvhost_http_requests_total{status=\"2xx\"} 1",
            "kvhost_http_requests_total{status=\"5xx\"} 1",
            "kvhost_http_request_duration_seconds_bucket{le=\"0.001\"} 1",
            "kvhost_http_request_duration_seconds_bucket{le=\"0.005\"} 2",
            "kvhost_http_request_duration_seconds_count 2",
            "kvhost_kv_operations_total{bucket=\"cache\",op=\"get\",outcome=\"ok\"} 2",
            "kvhost_kv_operations_total{bucket=\"a\\\"b\",op=\"open\",outcome=\"access-denied\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        let totals = metrics.bucket_totals();
        assert_eq!(totals["cache"]["get"], 2);
        assert_eq!(totals["a\"b"]["open"], 1);
        assert!(!totals["cache"].contains_key("set"));
    }
}
