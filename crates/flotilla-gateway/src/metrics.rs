//! The gateway's `/metrics` (OpenMetrics text): requests, latency and errors by cluster.

use std::collections::HashMap;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    /// The member that answered (`none` when no member was tried).
    pub cluster: String,
    /// The HTTP status returned to the client.
    pub code: String,
}

/// Labels of per-cluster series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ClusterLabels {
    pub cluster: String,
}

/// Labels of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ErrorLabels {
    pub cluster: String,
    /// `connect`, `transport`, `status_5xx`.
    pub reason: String,
}

/// Every series the gateway exports.
pub(crate) struct GatewayMetrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<ClusterLabels, Histogram>,
    pub errors: Family<ErrorLabels, Counter>,
    pub ejections: Family<ClusterLabels, Counter>,
}

impl GatewayMetrics {
    /// Registers the series.
    pub(crate) fn new() -> GatewayMetrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<ClusterLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
        let errors = Family::<ErrorLabels, Counter>::default();
        let ejections = Family::<ClusterLabels, Counter>::default();
        registry.register(
            "flotilla_gateway_requests",
            "Requests answered, by the cluster that answered and the status returned",
            requests.clone(),
        );
        registry.register(
            "flotilla_gateway_request_duration_seconds",
            "Time from receiving a request to the member's answer, by cluster",
            latency.clone(),
        );
        registry.register(
            "flotilla_gateway_upstream_errors",
            "Failed attempts towards a member (refused, broken, 5xx), by cluster and reason",
            errors.clone(),
        );
        registry.register(
            "flotilla_gateway_ejections",
            "Times a member was taken out after failing 3 requests in a row",
            ejections.clone(),
        );
        GatewayMetrics {
            registry,
            requests,
            latency,
            errors,
            ejections,
        }
    }

    /// The OpenMetrics text.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// One cluster's series, looked up once (a family lookup hashes and allocates the labels).
pub(crate) struct ClusterSeries {
    cluster: String,
    latency: Histogram,
    /// Request counters by the status returned.
    requests: Mutex<HashMap<u16, Counter>>,
}

impl ClusterSeries {
    /// The series of `cluster` in `metrics`.
    pub(crate) fn new(metrics: &GatewayMetrics, cluster: &str) -> ClusterSeries {
        let latency = metrics
            .latency
            .get_or_create(&ClusterLabels {
                cluster: cluster.to_string(),
            })
            .clone();
        ClusterSeries {
            cluster: cluster.to_string(),
            latency,
            requests: Mutex::new(HashMap::new()),
        }
    }

    /// Records one attempt's time.
    pub(crate) fn observe(&self, seconds: f64) {
        self.latency.observe(seconds);
    }

    /// Counts one request answered with `code`.
    pub(crate) fn count(&self, metrics: &GatewayMetrics, code: u16) {
        let mut requests = self.requests.lock();
        let counter = requests.entry(code).or_insert_with(|| {
            metrics
                .requests
                .get_or_create(&RequestLabels {
                    cluster: self.cluster.clone(),
                    code: code.to_string(),
                })
                .clone()
        });
        counter.inc();
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}
