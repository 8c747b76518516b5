//! Prometheus metrics of the application controller.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// `flotilla_controller_reconcile_duration_seconds{controller, outcome}`.
static RECONCILE: LazyLock<Family<Labels, Histogram>> =
    LazyLock::new(|| Family::new_with_constructor(histogram as fn() -> Histogram));

/// `flotilla_dispatch_duration_seconds{cluster}`: one component applied and read back.
static DISPATCH: LazyLock<Family<Labels, Histogram>> =
    LazyLock::new(|| Family::new_with_constructor(histogram as fn() -> Histogram));

/// `flotilla_drift_corrections_total{cluster, kind}`: dispatched objects put back.
static DRIFT: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);

/// Registers the application controller's metrics in the hub's Prometheus registry.
pub fn register_metrics(registry: &mut Registry) {
    registry.register(
        "flotilla_controller_reconcile_duration_seconds",
        "Duration of one reconcile, by controller and outcome (ok, error)",
        RECONCILE.clone(),
    );
    registry.register(
        "flotilla_dispatch_duration_seconds",
        "Duration of dispatching one component to one cluster (apply and health read)",
        DISPATCH.clone(),
    );
    registry.register(
        "flotilla_drift_corrections",
        "Dispatched objects changed or deleted on a member and put back, by cluster and kind",
        DRIFT.clone(),
    );
}

/// Counts one drift correction.
pub(crate) fn count_drift_correction(cluster: &str, kind: &str) {
    DRIFT
        .get_or_create(&vec![
            ("cluster".to_string(), cluster.to_string()),
            ("kind".to_string(), kind.to_string()),
        ])
        .inc();
}

/// Records one application reconcile.
pub(crate) fn observe_reconcile(elapsed: Duration, ok: bool) {
    RECONCILE
        .get_or_create(&vec![
            ("controller".to_string(), "application".to_string()),
            (
                "outcome".to_string(),
                if ok { "ok" } else { "error" }.to_string(),
            ),
        ])
        .observe(elapsed.as_secs_f64());
}

/// Records one dispatch to a cluster.
pub(crate) fn observe_dispatch(cluster: &str, elapsed: Duration) {
    DISPATCH
        .get_or_create(&vec![("cluster".to_string(), cluster.to_string())])
        .observe(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exposed() {
        let mut registry = Registry::default();
        register_metrics(&mut registry);
        observe_reconcile(Duration::from_millis(20), true);
        observe_dispatch("beijing-1", Duration::from_millis(7));
        count_drift_correction("beijing-1", "Deployment");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains(
            "flotilla_controller_reconcile_duration_seconds_count{controller=\"application\",outcome=\"ok\"} 1"
        ), "{text}");
        assert!(
            text.contains("flotilla_dispatch_duration_seconds_count{cluster=\"beijing-1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "flotilla_drift_corrections_total{cluster=\"beijing-1\",kind=\"Deployment\"} 1"
            ),
            "{text}"
        );
    }
}
