//! Placement: topology policies → the clusters (and namespaces) a deploy step targets. Pure.

use std::collections::BTreeMap;

use flotilla_apis::LOCAL_CLUSTER;
use serde::Deserialize;
use serde_json::Value;

/// Why a topology could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Error {
    /// A named cluster is not registered.
    #[error("failed to get cluster {0}")]
    ClusterNotFound(String),
    /// A label selector matched nothing and `allowEmpty` is false.
    #[error("failed to find any cluster matches given labels")]
    NoClusterMatches,
    /// The policy's properties do not have the topology shape.
    #[error("topology policy {policy}: {message}")]
    InvalidProperties {
        /// Policy name.
        policy: String,
        /// What is wrong.
        message: String,
    },
}

/// `Result` of placing.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// `properties` of a topology policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TopologyProperties {
    /// Cluster names (wins when set).
    #[serde(default)]
    pub clusters: Vec<String>,
    /// Cluster labels to match.
    #[serde(default)]
    pub cluster_label_selector: Option<BTreeMap<String, String>>,
    /// Deprecated alias of `clusterLabelSelector`.
    #[serde(default)]
    pub cluster_selector: Option<BTreeMap<String, String>>,
    /// Target namespace override.
    #[serde(default)]
    pub namespace: Option<String>,
    /// A selector matching nothing is not an error.
    #[serde(default)]
    pub allow_empty: bool,
}

/// Parses a topology policy's properties.
pub(crate) fn parse(policy: &str, properties: Option<&Value>) -> Result<TopologyProperties> {
    match properties {
        None | Some(Value::Null) => Ok(TopologyProperties::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| Error::InvalidProperties {
            policy: policy.to_string(),
            message: e.to_string(),
        }),
    }
}

/// A registered cluster as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// Cluster name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// The cluster an object is pinned to (its `app.oam.dev/cluster` label), if any.
pub(crate) fn pin(object: &serde_json::Value) -> Option<&str> {
    object["metadata"]["labels"][flotilla_apis::labels::APP_CLUSTER]
        .as_str()
        .filter(|c| !c.is_empty())
}

/// Every cluster some object is pinned to.
pub(crate) fn pinned_clusters<'a>(
    objects: impl Iterator<Item = &'a super::render::RenderedObject>,
) -> std::collections::BTreeSet<String> {
    objects
        .filter_map(|o| pin(&o.object).map(str::to_string))
        .collect()
}

/// Kinds whose health needs a cluster's controllers (which the hub, `local`, does not run).
pub(crate) fn is_workload_kind(kind: &str) -> bool {
    matches!(
        kind,
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" | "CronJob" | "Pod"
    )
}

/// One target of a deploy step.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Placement {
    /// Cluster name (`local`: the hub).
    pub cluster: String,
    /// Namespace override for every namespaced object; `None` keeps the rendered namespace.
    pub namespace: Option<String>,
}

impl Placement {
    /// The hub itself.
    pub(crate) fn local() -> Placement {
        Placement {
            cluster: LOCAL_CLUSTER.to_string(),
            namespace: None,
        }
    }
}

/// The placements of one topology policy against the registered `clusters`.
pub(crate) fn place(
    topology: &TopologyProperties,
    clusters: &[ClusterInfo],
) -> Result<Vec<Placement>> {
    let namespace = topology.namespace.clone().filter(|n| !n.is_empty());
    let mut names: Vec<String> = if !topology.clusters.is_empty() {
        for name in &topology.clusters {
            if name != LOCAL_CLUSTER && !clusters.iter().any(|c| &c.name == name) {
                return Err(Error::ClusterNotFound(name.clone()));
            }
        }
        topology.clusters.clone()
    } else if let Some(selector) = topology
        .cluster_label_selector
        .as_ref()
        .or(topology.cluster_selector.as_ref())
    {
        let matched: Vec<String> = clusters
            .iter()
            .filter(|c| selector.iter().all(|(k, v)| c.labels.get(k) == Some(v)))
            .map(|c| c.name.clone())
            .collect();
        if matched.is_empty() && !topology.allow_empty {
            return Err(Error::NoClusterMatches);
        }
        matched
    } else {
        vec![LOCAL_CLUSTER.to_string()]
    };
    names.sort();
    names.dedup();
    Ok(names
        .into_iter()
        .map(|cluster| Placement {
            cluster,
            namespace: namespace.clone(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn clusters() -> Vec<ClusterInfo> {
        let c = |name: &str, labels: &[(&str, &str)]| ClusterInfo {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        vec![
            c("beijing-1", &[("region", "cn")]),
            c("beijing-2", &[("region", "cn")]),
            c("us-west-1", &[("provider", "AWS")]),
        ]
    }

    fn names(p: &[Placement]) -> Vec<&str> {
        p.iter().map(|p| p.cluster.as_str()).collect()
    }

    #[test]
    fn topology_cases() {
        let cases: Vec<(Value, std::result::Result<Vec<&str>, &str>)> = vec![
            (
                json!({"clusters": ["beijing-2", "beijing-1"]}),
                Ok(vec!["beijing-1", "beijing-2"]),
            ),
            (
                json!({"clusters": ["beijing-1", "mars"]}),
                Err("failed to get cluster mars"),
            ),
            (
                json!({"clusterLabelSelector": {"provider": "AWS"}}),
                Ok(vec!["us-west-1"]),
            ),
            (
                json!({"clusterSelector": {"region": "cn"}}),
                Ok(vec!["beijing-1", "beijing-2"]),
            ),
            (
                json!({"clusterLabelSelector": {"provider": "GCP"}}),
                Err("failed to find any cluster matches given labels"),
            ),
            (
                json!({"clusterLabelSelector": {"provider": "GCP"}, "allowEmpty": true}),
                Ok(vec![]),
            ),
            (
                json!({"clusters": ["us-west-1"], "clusterLabelSelector": {"region": "cn"}}),
                Ok(vec!["us-west-1"]),
            ),
            (json!({}), Ok(vec!["local"])),
            (json!({"clusters": ["local"]}), Ok(vec!["local"])),
        ];
        for (props, expected) in cases {
            let topology = parse("t", Some(&props)).unwrap();
            let got = place(&topology, &clusters());
            match expected {
                Ok(want) => assert_eq!(names(&got.unwrap()), want, "{props}"),
                Err(msg) => assert_eq!(got.unwrap_err().to_string(), msg, "{props}"),
            }
        }
    }

    #[test]
    fn namespace_override_is_carried() {
        let topology = parse(
            "t",
            Some(&json!({"clusters": ["beijing-1"], "namespace": "prod"})),
        )
        .unwrap();
        let got = place(&topology, &clusters()).unwrap();
        assert_eq!(got[0].namespace.as_deref(), Some("prod"));
    }
}
