//! The megatron's metrics, served at `GET /metrics` in the Prometheus
//! (OpenMetrics) text format: what the core, the commit-status reporter and
//! the HTTP layer count, kept apart from all three so the core knows no HTTP
//! and HTTP knows no sled.
//!
//! Every metric is an atomic (or a family of them behind its own small
//! lock): counting never takes the dispatcher's or the store's locks. Gauges
//! that mirror state the core already keeps (queue depth, workers, store
//! size) are set when a scrape asks, from one look at that state, instead of
//! being kept up to date on every change.
//!
//! Labels are bounded sets: a result, a route *template* (never a raw URL),
//! a method, a status code, a long-poll kind, an outcome. Builder, repo and
//! worker names are never labels, so the series count stays flat however
//! many there are.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::time::Duration;

/// The long-polls the megatron holds: a worker's claim and heartbeat, a
/// followed step log, a build awaited (`GET /api/v1/builds/{id}?wait=true`).
pub const LONG_POLLS: [&str; 4] = ["claim", "heartbeat", "log_follow", "build_wait"];

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartLabel {
    pub part: &'static str,
}

/// One HTTP request: the route's template (`/api/v1/builds/{id}`, or
/// `unmatched`), its method and the answer's status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~33 s: long-polls land in the top buckets.
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

/// Every metric of one megatron. Cheap to share: the metrics are `Arc`s
/// inside, the registry only names them.
pub struct Metrics {
    registry: Registry,
    /// Builds that finished, by result.
    pub builds: Family<ResultLabel, Counter>,
    /// Builds queued and not yet claimed; set at scrape time.
    pub queue_depth: Gauge,
    /// From a build's creation to a worker's claim of its first attempt.
    pub queue_wait: Histogram,
    /// From a build's start (the claim) to its end.
    pub build_duration: Histogram,
    /// From a step's start to its end.
    pub step_duration: Histogram,
    /// Workers that called within the online window; set at scrape time.
    pub workers_online: Gauge,
    /// Workers running a build; set at scrape time.
    pub workers_busy: Gauge,
    /// Long-polls the megatron holds open now, by kind.
    pub long_polls: Family<KindLabel, Gauge>,
    /// HTTP requests answered, by route template, method and status.
    pub http_requests: Family<RequestLabels, Counter>,
    /// Time to an answer's headers, by route template, method and status.
    pub http_latency: HistogramFamily<RequestLabels>,
    /// Bytes of the data dir: the store's trees, step logs and artifacts.
    /// Logs and artifacts come from the last disk-use count; set at scrape.
    pub store_bytes: Family<PartLabel, Gauge>,
    /// Commit statuses sent to forges, by outcome (`posted`, `retry`,
    /// `gave_up`).
    pub status_posts: Family<OutcomeLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("constructicon");
        let seconds = || Histogram::new(exponential_buckets(0.001, 2.0, 22));
        let metrics = Metrics {
            builds: Family::default(),
            queue_depth: Gauge::default(),
            queue_wait: seconds(),
            build_duration: seconds(),
            step_duration: seconds(),
            workers_online: Gauge::default(),
            workers_busy: Gauge::default(),
            long_polls: Family::default(),
            http_requests: Family::default(),
            http_latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            store_bytes: Family::default(),
            status_posts: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "builds",
            "Builds that finished, by result",
            metrics.builds.clone(),
        );
        registry.register(
            "queue_depth",
            "Builds queued and not yet claimed",
            metrics.queue_depth.clone(),
        );
        registry.register_with_unit(
            "queue_wait",
            "Time from a build's creation to its claim by a worker",
            Unit::Seconds,
            metrics.queue_wait.clone(),
        );
        registry.register_with_unit(
            "build_duration",
            "Time from a build's claim to its end",
            Unit::Seconds,
            metrics.build_duration.clone(),
        );
        registry.register_with_unit(
            "step_duration",
            "Time from a step's start to its end",
            Unit::Seconds,
            metrics.step_duration.clone(),
        );
        registry.register(
            "workers_online",
            "Workers that called within the online window",
            metrics.workers_online.clone(),
        );
        registry.register(
            "workers_busy",
            "Workers running a build",
            metrics.workers_busy.clone(),
        );
        registry.register(
            "long_polls",
            "Long-polls held open now, by kind",
            metrics.long_polls.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            metrics.http_requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to an HTTP answer's headers, by route template, method and status",
            Unit::Seconds,
            metrics.http_latency.clone(),
        );
        registry.register_with_unit(
            "store_size",
            "Bytes of the data dir, by part: the store's trees, step logs, artifacts",
            Unit::Bytes,
            metrics.store_bytes.clone(),
        );
        registry.register(
            "status_posts",
            "Commit statuses sent to forges, by outcome",
            metrics.status_posts.clone(),
        );
        // Every series of a known label set starts at zero, so a rate over
        // it is right from the first scrape.
        for result in ["success", "warnings", "failure", "exception", "cancelled"] {
            let _ = metrics.builds.get_or_create_owned(&ResultLabel { result });
        }
        for kind in LONG_POLLS {
            let _ = metrics.long_polls.get_or_create_owned(&KindLabel { kind });
        }
        for outcome in ["posted", "retry", "gave_up"] {
            let _ = metrics
                .status_posts
                .get_or_create_owned(&OutcomeLabel { outcome });
        }
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Counts a finished build and observes its durations and its steps'
    /// (Unix milliseconds, as build records keep them).
    pub fn build_finished(
        &self,
        result: &'static str,
        started: Option<u64>,
        finished: Option<u64>,
        steps: impl Iterator<Item = (Option<u64>, Option<u64>)>,
    ) {
        self.builds.get_or_create(&ResultLabel { result }).inc();
        if let Some(took) = between(started, finished) {
            self.build_duration.observe(took);
        }
        for (started, finished) in steps {
            if let Some(took) = between(started, finished) {
                self.step_duration.observe(took);
            }
        }
    }

    /// Marks a long-poll of `kind` as held until the guard is dropped.
    pub fn hold(&self, kind: &'static str) -> Held {
        let gauge = self.long_polls.get_or_create_owned(&KindLabel { kind });
        gauge.inc();
        Held { gauge }
    }

    /// Counts one HTTP answer.
    pub fn request(&self, labels: RequestLabels, took: Duration) {
        self.http_latency
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        self.http_requests.get_or_create(&labels).inc();
    }

    /// Counts one commit status sent.
    pub fn status_post(&self, outcome: &'static str) {
        self.status_posts
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// Sets one part of the data dir's size.
    pub fn store_size(&self, part: &'static str, bytes: u64) {
        self.store_bytes
            .get_or_create(&PartLabel { part })
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Every metric as OpenMetrics text ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Seconds between two Unix-millisecond times, when both are known.
fn between(start: Option<u64>, end: Option<u64>) -> Option<f64> {
    let (start, end) = (start?, end?);
    Some(end.saturating_sub(start) as f64 / 1000.0)
}

/// A long-poll being held; counted in [`Metrics::long_polls`] while alive.
pub struct Held {
    gauge: Gauge,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_its_labels() {
        let metrics = Metrics::new();
        metrics.build_finished(
            "success",
            Some(1_000),
            Some(1_250),
            [(Some(1_000), Some(1_100))].into_iter(),
        );
        let held = metrics.hold("claim");
        metrics.request(
            RequestLabels {
                method: "GET".into(),
                route: "/api/v1/builds/{id}".into(),
                status: 200,
            },
            Duration::from_millis(3),
        );
        metrics.status_post("posted");
        metrics.store_size("tree", 4096);
        let text = metrics.render();
        for line in [
            "constructicon_builds_total{result=\"success\"} 1",
            "constructicon_build_duration_seconds_sum 0.25",
            "constructicon_step_duration_seconds_count 1",
            "constructicon_long_polls{kind=\"claim\"} 1",
            "constructicon_http_requests_total{method=\"GET\",route=\"/api/v1/builds/{id}\",status=\"200\"} 1",
            "constructicon_status_posts_total{outcome=\"posted\"} 1",
            "constructicon_store_size_bytes{part=\"tree\"} 4096",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        drop(held);
        assert!(metrics
            .render()
            .contains("constructicon_long_polls{kind=\"claim\"} 0"));
    }
}
