//! Slim views of the objects the workload controllers cache: only the fields the simulator
//! reads, deserialized straight from the watch stream (unknown fields are skipped), with
//! `managedFields` and the `last-applied-configuration` annotation dropped. A reflector store of
//! these costs a fraction of one of full objects (see docs/benchmarks.md, member simulator).

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The annotation `kubectl apply` keeps its last input in (a copy of the whole object).
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `ObjectMeta` without what the simulator never reads.
fn slim_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let mut meta = ObjectMeta::deserialize(d)?;
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
    Ok(meta)
}

/// A JSON value kept as its compact text (a pod template is read only to copy it).
fn json_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(if v.is_null() {
        String::new()
    } else {
        v.to_string()
    })
}

macro_rules! slim_resource {
    ($ty:ident, $group:literal, $kind:literal, $plural:literal, $scope:ty) => {
        impl Resource for $ty {
            type DynamicType = ();
            type Scope = $scope;
            fn kind(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($kind)
            }
            fn group(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($group)
            }
            fn version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed("v1")
            }
            fn plural(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($plural)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

/// `spec.strategy` of a Deployment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Strategy {
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub rolling_update: Option<RollingUpdate>,
}

/// `spec.strategy.rollingUpdate`: ints or percentages.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RollingUpdate {
    #[serde(default)]
    pub max_surge: Option<Value>,
    #[serde(default)]
    pub max_unavailable: Option<Value>,
}

/// What the simulator reads of a Deployment's spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeploymentSpec {
    #[serde(default)]
    pub replicas: Option<i64>,
    #[serde(default)]
    pub selector: Value,
    /// `spec.template` as JSON text.
    #[serde(default, deserialize_with = "json_text")]
    pub template: String,
    #[serde(default)]
    pub strategy: Strategy,
    #[serde(default)]
    pub revision_history_limit: Option<i64>,
    #[serde(default)]
    pub min_ready_seconds: Option<i64>,
    #[serde(default)]
    pub paused: Option<bool>,
}

/// A Deployment as the simulator caches it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SimDeployment {
    #[serde(deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: DeploymentSpec,
    #[serde(default)]
    pub status: Value,
}
slim_resource!(
    SimDeployment,
    "apps",
    "Deployment",
    "deployments",
    k8s_openapi::NamespaceResourceScope
);

/// What the simulator reads of a ReplicaSet's spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReplicaSetSpec {
    #[serde(default)]
    pub replicas: Option<i64>,
    /// `spec.template` as JSON text.
    #[serde(default, deserialize_with = "json_text")]
    pub template: String,
}

/// What the simulator reads of a ReplicaSet's status.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReplicaSetStatus {
    #[serde(default)]
    pub replicas: i64,
    #[serde(default)]
    pub fully_labeled_replicas: i64,
    #[serde(default)]
    pub ready_replicas: i64,
    #[serde(default)]
    pub available_replicas: i64,
    #[serde(default)]
    pub observed_generation: i64,
}

/// A ReplicaSet as the simulator caches it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SimReplicaSet {
    #[serde(deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ReplicaSetSpec,
    #[serde(default)]
    pub status: ReplicaSetStatus,
}
slim_resource!(
    SimReplicaSet,
    "apps",
    "ReplicaSet",
    "replicasets",
    k8s_openapi::NamespaceResourceScope
);

impl SimReplicaSet {
    /// `spec.replicas` (default 1).
    pub(crate) fn desired(&self) -> i64 {
        self.spec.replicas.unwrap_or(1).max(0)
    }
    /// `deployment.kubernetes.io/revision` (0 when absent).
    pub(crate) fn revision(&self) -> i64 {
        annotation(&self.metadata, crate::membersim::replicasets::REVISION)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0)
    }
}

/// One container of a Pod spec.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Container {
    pub name: String,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
}

/// A container port (named ports resolve Service `targetPort`s).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContainerPort {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub container_port: i64,
}

/// One port of a Service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServicePort {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub port: i64,
    #[serde(default)]
    pub target_port: Option<Value>,
    #[serde(default)]
    pub protocol: Option<String>,
}

/// What the endpoint controllers read of a Service's spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServiceSpec {
    #[serde(default)]
    pub selector: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    #[serde(default)]
    pub publish_not_ready_addresses: Option<bool>,
}

/// A Service as the endpoint controllers cache it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SimService {
    #[serde(deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ServiceSpec,
}
slim_resource!(
    SimService,
    "",
    "Service",
    "services",
    k8s_openapi::NamespaceResourceScope
);

/// What the simulator reads of a Pod's spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodSpec {
    #[serde(default)]
    pub node_name: Option<String>,
    #[serde(default)]
    pub containers: Vec<Container>,
}

/// A Pod condition's type and status.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
}

/// What the simulator reads of a Pod's status.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodStatus {
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default, rename = "podIP")]
    pub pod_ip: Option<String>,
    #[serde(default, rename = "hostIP")]
    pub host_ip: Option<String>,
    #[serde(default)]
    pub start_time: Option<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// A Pod as the simulator caches it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SimPod {
    #[serde(deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PodSpec,
    #[serde(default)]
    pub status: PodStatus,
}
slim_resource!(
    SimPod,
    "",
    "Pod",
    "pods",
    k8s_openapi::NamespaceResourceScope
);

impl SimPod {
    /// Condition `Ready` is `True`.
    pub(crate) fn is_ready(&self) -> bool {
        self.status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    }
    /// Being deleted or finished: no longer counts towards its owner.
    pub(crate) fn is_inactive(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
            || matches!(
                self.status.phase.as_deref(),
                Some("Succeeded") | Some("Failed")
            )
    }
    /// The uid of the controller owner, if any.
    pub(crate) fn controller_uid(&self) -> Option<&str> {
        controller_uid(&self.metadata)
    }
}

/// An annotation's value.
pub(crate) fn annotation<'a>(meta: &'a ObjectMeta, name: &str) -> Option<&'a str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(name))
        .map(String::as_str)
}

/// The labels (empty when none).
pub(crate) fn labels(meta: &ObjectMeta) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    meta.labels.as_ref().unwrap_or(&EMPTY)
}

/// The uid of the owner reference with `controller: true`.
pub(crate) fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn slim_pod_drops_what_is_not_read() {
        let pod: SimPod = serde_json::from_value(json!({
            "metadata": {
                "name": "p", "namespace": "default",
                "annotations": {LAST_APPLIED: "{...}", "keep": "me"},
                "managedFields": [{"manager": "kubectl", "operation": "Update"}],
            },
            "spec": {"containers": [{"name": "c", "image": "nginx", "env": [{"name": "A"}]}]},
            "status": {"phase": "Running", "podIP": "10.1.2.3",
                       "conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap();
        assert!(pod.metadata.managed_fields.is_none());
        assert_eq!(annotation(&pod.metadata, "keep"), Some("me"));
        assert_eq!(annotation(&pod.metadata, LAST_APPLIED), None);
        assert!(pod.is_ready());
        assert_eq!(pod.status.pod_ip.as_deref(), Some("10.1.2.3"));
    }

    #[test]
    fn templates_are_kept_as_text() {
        let d: SimDeployment = serde_json::from_value(json!({
            "metadata": {"name": "d"},
            "spec": {"replicas": 2, "template": {"metadata": {"labels": {"a": "b"}}}},
        }))
        .unwrap();
        assert_eq!(d.spec.template, r#"{"metadata":{"labels":{"a":"b"}}}"#);
    }
}
