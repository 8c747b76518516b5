//! Workload metrics of a member cluster in kube-state-metrics' names and labels, served on the
//! member's `/metrics`: read from the member simulator's caches of Deployments and Pods (as
//! kube-state-metrics reads its informers' caches) and encoded on every scrape.
//!
//! Series: `kube_deployment_spec_replicas`, `kube_deployment_status_replicas`,
//! `kube_deployment_status_replicas_ready`, `kube_deployment_status_replicas_available`,
//! `kube_deployment_status_replicas_updated` (labels `namespace`, `deployment`);
//! `kube_pod_status_phase` (`namespace`, `pod`, `phase`: 1 for the pod's phase, 0 for the
//! others); `kube_node_info` for the member's one simulated node (`node`, `kubelet_version`,
//! `os_image`, `container_runtime_version`).

use std::sync::{Arc, RwLock};

use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde_json::Value;

// The slim views the member simulator caches (no managedFields, no last-applied copy): the
// exporter reads only names, counters and phases.
use crate::membersim::slim::{SimDeployment as Deployment, SimPod as Pod};

/// The phases `kube_pod_status_phase` reports, as kube-state-metrics does.
pub(crate) const POD_PHASES: [&str; 5] = ["Pending", "Succeeded", "Failed", "Unknown", "Running"];

#[derive(Default)]
struct Stores {
    deployments: Option<Store<Deployment>>,
    pods: Option<Store<Pod>>,
    kubelet_version: String,
}

/// The exporter of one member: register it in the member's registry and hand it to the
/// member simulator (`SimulatorOptions::state_metrics`), whose caches it reads.
#[derive(Clone)]
pub struct StateMetrics {
    node_name: String,
    stores: Arc<RwLock<Stores>>,
}

impl std::fmt::Debug for StateMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMetrics")
            .field("node_name", &self.node_name)
            .finish_non_exhaustive()
    }
}

impl StateMetrics {
    /// An exporter for the member `cluster_name` (its simulated node takes that name).
    pub fn new(cluster_name: &str) -> StateMetrics {
        StateMetrics {
            node_name: cluster_name.to_string(),
            stores: Arc::default(),
        }
    }

    /// Adds the exporter to a Prometheus registry (the member's `/metrics`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.clone()));
    }
}

impl StateMetrics {
    /// Reads the member simulator's Deployment and Pod caches from now on (each simulator
    /// start hands over its new caches): the exporter keeps no copy and opens no watch of its
    /// own, as it would beside a real kubelet's informers.
    pub(crate) async fn read_caches(
        &self,
        member_client: &kube::Client,
        deployments: Store<Deployment>,
        pods: Store<Pod>,
    ) {
        let version = member_client
            .apiserver_version()
            .await
            .map(|v| v.git_version)
            .unwrap_or_default();
        if let Ok(mut stores) = self.stores.write() {
            *stores = Stores {
                deployments: Some(deployments),
                pods: Some(pods),
                kubelet_version: version,
            };
        }
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One gauge family: `rows` are (labels, value).
fn gauge_family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Vec<(String, String)>, i64)],
) -> Result<(), std::fmt::Error> {
    let mut family =
        encoder.encode_descriptor(name, help, None, ConstGauge::new(0i64).metric_type())?;
    for (labels, value) in rows {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

type DeploymentField = fn(&Deployment) -> Option<i64>;

fn status_counter(d: &Deployment, name: &str) -> Option<i64> {
    d.status.get(name).and_then(Value::as_i64)
}

const DEPLOYMENT_SERIES: [(&str, &str, DeploymentField); 5] = [
    (
        "kube_deployment_spec_replicas",
        "Number of desired pods for a deployment.",
        |d| d.spec.replicas.or(Some(1)),
    ),
    (
        "kube_deployment_status_replicas",
        "The number of replicas per deployment.",
        |d| status_counter(d, "replicas"),
    ),
    (
        "kube_deployment_status_replicas_ready",
        "The number of ready replicas per deployment.",
        |d| status_counter(d, "readyReplicas"),
    ),
    (
        "kube_deployment_status_replicas_available",
        "The number of available replicas per deployment.",
        |d| status_counter(d, "availableReplicas"),
    ),
    (
        "kube_deployment_status_replicas_updated",
        "The number of updated replicas per deployment.",
        |d| status_counter(d, "updatedReplicas"),
    ),
];

impl Collector for StateMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(stores) = self.stores.read() else {
            return Ok(());
        };
        let deployments = stores
            .deployments
            .as_ref()
            .map(|s| s.state())
            .unwrap_or_default();
        for (name, help, field) in DEPLOYMENT_SERIES {
            let rows: Vec<_> = deployments
                .iter()
                .map(|d| {
                    let ns = d.metadata.namespace.as_deref().unwrap_or("");
                    let n = d.metadata.name.as_deref().unwrap_or("");
                    let value = field(d).unwrap_or(0);
                    (labels(&[("namespace", ns), ("deployment", n)]), value)
                })
                .collect();
            gauge_family(&mut encoder, name, help, &rows)?;
        }
        let pods = stores.pods.as_ref().map(|s| s.state()).unwrap_or_default();
        let mut rows = Vec::new();
        for pod in &pods {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("");
            let n = pod.metadata.name.as_deref().unwrap_or("");
            let current = pod.status.phase.as_deref().unwrap_or("Pending");
            for phase in POD_PHASES {
                let labels = labels(&[("namespace", ns), ("pod", n), ("phase", phase)]);
                rows.push((labels, i64::from(phase == current)));
            }
        }
        gauge_family(
            &mut encoder,
            "kube_pod_status_phase",
            "The pods current phase.",
            &rows,
        )?;
        let node = labels(&[
            ("node", &self.node_name),
            ("kubelet_version", &stores.kubelet_version),
            ("os_image", "flotilla simulated member"),
            ("container_runtime_version", "flotilla-sim://1"),
        ]);
        gauge_family(
            &mut encoder,
            "kube_node_info",
            "Information about a cluster node.",
            &[(node, 1)],
        )
    }
}
