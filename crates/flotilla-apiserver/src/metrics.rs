//! `/metrics` in Prometheus text format: request count and latency by verb and resource,
//! open watches, the storage revision.

use std::sync::atomic::AtomicI64;
use std::time::Instant;

use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::request_info::RequestInfo;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    resource: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    verb: String,
    resource: String,
}

/// The server's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    watches: Gauge,
    revision: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers more metrics (e.g. the controllers' beside the server) in `/metrics`.
pub type ExtraMetrics = Box<dyn FnOnce(&mut Registry) + Send>;

impl Metrics {
    pub(crate) fn new() -> Metrics {
        Self::with_extra(None)
    }

    /// The server's metrics plus whatever `extra` registers.
    pub(crate) fn with_extra(extra: Option<ExtraMetrics>) -> Metrics {
        let mut registry = Registry::default();
        if let Some(register) = extra {
            register(&mut registry);
        }
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let watches = Gauge::default();
        let revision = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "apiserver_request",
            "API requests by verb, resource and code",
            requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "API request latency by verb and resource",
            latency.clone(),
        );
        registry.register(
            "apiserver_registered_watchers",
            "Open watch streams",
            watches.clone(),
        );
        registry.register(
            "flotilla_storage_revision",
            "The storage revision",
            revision.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            watches,
            revision,
        }
    }

    pub(crate) fn watch_started(&self) {
        self.watches.inc();
    }

    pub(crate) fn watch_ended(&self) {
        self.watches.dec();
    }

    fn observe(&self, verb: &str, resource: &str, code: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                verb: verb.into(),
                resource: resource.into(),
                code: code.to_string(),
            })
            .inc();
        if verb != "watch" {
            self.latency
                .get_or_create(&LatencyLabels {
                    verb: verb.into(),
                    resource: resource.into(),
                })
                .observe(seconds);
        }
    }

    /// The text exposition.
    pub(crate) fn render(&self, revision: i64) -> String {
        self.revision.set(revision);
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Records one request: awaits its `response` and counts it under what `info` says the
/// request was about.
pub(crate) async fn track(
    metrics: &Metrics,
    info: &RequestInfo,
    response: impl Future<Output = Response>,
) -> Response {
    let started = Instant::now();
    let response = response.await;
    let resource = if !info.is_resource_request {
        String::new()
    } else if info.subresource.is_empty() {
        info.resource.clone()
    } else {
        format!("{}/{}", info.resource, info.subresource)
    };
    let verb = if info.is_resource_request {
        info.verb.clone()
    } else {
        info.verb.to_ascii_uppercase()
    };
    metrics.observe(
        &verb,
        &resource,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
