//! `ManagedCluster` (cluster.open-cluster-management.io/v1) as the cluster registry reads and
//! writes it: a dynamic object, so the registry works against any server serving the OCM CRD.

use flotilla_apis::ManagedClusterStatus;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use serde::Deserialize as _;
use serde_json::{Value, json};

/// The API resource of `ManagedCluster`.
pub(crate) fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cluster.open-cluster-management.io", "v1", "ManagedCluster"),
        "managedclusters",
    )
}

/// `Api<DynamicObject>` for ManagedClusters (cluster-scoped) on the hub.
pub fn api(hub_client: &kube::Client) -> Api<DynamicObject> {
    Api::all_with(hub_client.clone(), &api_resource())
}

/// A condition as stored in `status.conditions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Condition {
    /// `ManagedClusterJoined`, `ManagedClusterConditionAvailable`, ...
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

impl Condition {
    /// A condition with the given fields.
    pub(crate) fn new(type_: &str, status: &str, reason: &str, message: impl Into<String>) -> Self {
        Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// The conditions of a ManagedCluster object.
pub(crate) fn conditions(object: &DynamicObject) -> Vec<Value> {
    object
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The status (`True`/`False`/`Unknown`) of condition `type_`, if present.
pub fn condition_status(object: &DynamicObject, type_: &str) -> Option<String> {
    conditions(object)
        .iter()
        .find(|c| c["type"] == type_)
        .and_then(|c| c["status"].as_str().map(str::to_string))
}

/// Whether the ManagedCluster `object` is Available
/// ([`ManagedClusterStatus::is_available`]); a status that does not parse is not.
pub fn is_available(object: &DynamicObject) -> bool {
    object
        .data
        .get("status")
        .and_then(|status| ManagedClusterStatus::deserialize(status).ok())
        .is_some_and(|status| status.is_available())
}

/// `existing` with `wanted` set, keeping `lastTransitionTime` when the status did not change.
/// Returns `None` when nothing would change (so callers write only on change).
pub(crate) fn set_conditions(
    existing: &[Value],
    wanted: &[Condition],
    now: &str,
) -> Option<Vec<Value>> {
    let mut out = existing.to_vec();
    let mut changed = false;
    for condition in wanted {
        let position = out
            .iter()
            .position(|c| c["type"] == condition.type_.as_str());
        let same_status = position
            .map(|i| out[i]["status"] == condition.status.as_str())
            .unwrap_or(false);
        let transition = match position {
            Some(i) if same_status => out[i]["lastTransitionTime"].clone(),
            _ => Value::String(now.to_string()),
        };
        let value = json!({
            "type": condition.type_,
            "status": condition.status,
            "reason": condition.reason,
            "message": condition.message,
            "lastTransitionTime": transition,
        });
        match position {
            Some(i) if out[i] == value => {}
            Some(i) => {
                out[i] = value;
                changed = true;
            }
            None => {
                out.push(value);
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

/// The current time as Kubernetes writes it (RFC 3339, seconds, `Z`).
pub(crate) fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_apis::{CONDITION_AVAILABLE, CONDITION_JOINED};

    #[test]
    fn availability_is_read_from_the_dynamic_object() {
        let object = |status: Value| {
            let mut object = DynamicObject::new("m1", &api_resource());
            object.data = json!({"status": status});
            object
        };
        let available = json!({"conditions": [
            {"type": CONDITION_JOINED, "status": "True"},
            {"type": CONDITION_AVAILABLE, "status": "True"},
        ]});
        assert!(is_available(&object(available)));
        let unknown = json!({"conditions": [{"type": CONDITION_AVAILABLE, "status": "Unknown"}]});
        assert!(!is_available(&object(unknown)));
        assert!(!is_available(&object(json!({}))));
        assert!(!is_available(&DynamicObject::new("m1", &api_resource())));
    }

    #[test]
    fn set_conditions_writes_only_on_change_and_keeps_transition_time() {
        let wanted = [Condition::new(
            CONDITION_AVAILABLE,
            "True",
            "ManagedClusterAvailable",
            "ok",
        )];
        let first = set_conditions(&[], &wanted, "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0]["lastTransitionTime"], "2026-01-01T00:00:00Z");
        assert!(set_conditions(&first, &wanted, "2026-01-02T00:00:00Z").is_none());

        let message_only = [Condition::new(
            CONDITION_AVAILABLE,
            "True",
            "ManagedClusterAvailable",
            "ok again",
        )];
        let second = set_conditions(&first, &message_only, "2026-01-02T00:00:00Z").unwrap();
        assert_eq!(second[0]["lastTransitionTime"], "2026-01-01T00:00:00Z");

        let down = [Condition::new(
            CONDITION_AVAILABLE,
            "Unknown",
            "ManagedClusterLeaseUpdateStopped",
            "down",
        )];
        let third = set_conditions(&second, &down, "2026-01-03T00:00:00Z").unwrap();
        assert_eq!(third[0]["status"], "Unknown");
        assert_eq!(third[0]["lastTransitionTime"], "2026-01-03T00:00:00Z");
    }

    #[test]
    fn other_conditions_are_kept() {
        let existing = vec![json!({"type": "Other", "status": "True"})];
        let wanted = [Condition::new(
            CONDITION_JOINED,
            "True",
            "ManagedClusterJoined",
            "joined",
        )];
        let out = set_conditions(&existing, &wanted, "t").unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0]["type"], "Other");
    }
}
