//! `ManagedCluster` (cluster.open-cluster-management.io/v1, cluster-scoped).

use k8s_openapi::ClusterResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::application::Condition;
use crate::resource::{empty, fleet_resource};

/// A member cluster registered with the hub. Its name is the cluster name used by topology
/// policies; its labels are what `clusterLabelSelector` matches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedCluster {
    /// `cluster.open-cluster-management.io/v1`.
    #[serde(default = "empty")]
    pub api_version: String,
    /// `ManagedCluster`.
    #[serde(default = "empty")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: ManagedClusterSpec,
    /// Observed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ManagedClusterStatus>,
}
fleet_resource!(
    ManagedCluster,
    "cluster.open-cluster-management.io",
    "v1",
    "ManagedCluster",
    "managedclusters",
    ClusterResourceScope
);

/// `spec` of a [`ManagedCluster`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterSpec {
    /// The hub accepts the cluster (the `HUB ACCEPTED` column).
    #[serde(default)]
    pub hub_accepts_client: bool,
    /// The member's API endpoints (the `MANAGED CLUSTER URLS` column).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_cluster_client_configs: Vec<ClientConfig>,
    /// Lease duration for health probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_duration_seconds: Option<i32>,
}

/// One API endpoint of a member.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfig {
    /// `https://host:port`.
    #[serde(default)]
    pub url: String,
    /// Base64 PEM of the member's CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
}

/// `status` of a [`ManagedCluster`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterStatus {
    /// `ManagedClusterJoined`, `ManagedClusterConditionAvailable`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Condition type: the member joined the hub.
pub const CONDITION_JOINED: &str = "ManagedClusterJoined";
/// Condition type: the member's `/readyz` answers.
pub const CONDITION_AVAILABLE: &str = "ManagedClusterConditionAvailable";

impl ManagedClusterStatus {
    /// Whether the cluster is Available: its `ManagedClusterConditionAvailable` is `True`.
    pub fn is_available(&self) -> bool {
        self.conditions
            .iter()
            .find(|c| c.condition_type == CONDITION_AVAILABLE)
            .is_some_and(|c| c.status == "True")
    }
}

impl ManagedCluster {
    /// Whether the cluster is Available ([`ManagedClusterStatus::is_available`]).
    pub fn is_available(&self) -> bool {
        self.status
            .as_ref()
            .is_some_and(ManagedClusterStatus::is_available)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(conditions: &[(&str, &str)]) -> ManagedCluster {
        let conditions = conditions
            .iter()
            .map(|(t, s)| Condition {
                condition_type: t.to_string(),
                status: s.to_string(),
                ..Default::default()
            })
            .collect();
        ManagedCluster {
            status: Some(ManagedClusterStatus { conditions }),
            ..Default::default()
        }
    }

    #[test]
    fn available_only_when_its_condition_is_true() {
        assert!(!ManagedCluster::default().is_available(), "no status");
        assert!(!cluster(&[(CONDITION_JOINED, "True")]).is_available());
        assert!(!cluster(&[(CONDITION_AVAILABLE, "Unknown")]).is_available());
        assert!(!cluster(&[(CONDITION_AVAILABLE, "False")]).is_available());
        assert!(
            cluster(&[(CONDITION_JOINED, "True"), (CONDITION_AVAILABLE, "True")]).is_available()
        );
    }
}
