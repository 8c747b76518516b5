//! `apiregistration.k8s.io/v1` APIServices: one per served group-version, kept in step with
//! discovery (built-in groups at start, CRD groups as CRDs come and go), each served
//! locally and therefore `Available`, as kube-apiserver's aggregator registers them.

use std::collections::BTreeSet;

use flotilla_core::status::ApiError;
use flotilla_core::user::UserInfo;
use serde_json::{Value, json};

use crate::handlers::WriteOptions;
use crate::objects::{self, meta_str};
use crate::registry::{ResourceInfo, Snapshot};
use crate::state::{ApiState, SharedState};
use crate::store::update::update_with;

pub(crate) const GROUP: &str = "apiregistration.k8s.io";
/// Marks APIServices this server manages (the value says why, as kube-apiserver's).
pub(crate) const AUTOMANAGED_LABEL: &str = "kube-aggregator.kubernetes.io/automanaged";

/// `(groupPriorityMinimum, versionPriority)` of a built-in group-version, as
/// kube-apiserver orders them; custom resource groups get (1000, 100).
fn priority(group: &str, version: &str) -> (i64, i64) {
    let group_priority = match group {
        "" | "apiregistration.k8s.io" => 18000,
        "apps" => 17800,
        "events.k8s.io" => 17750,
        "authentication.k8s.io" => 17700,
        "authorization.k8s.io" => 17600,
        "autoscaling" => 17500,
        "batch" => 17400,
        "certificates.k8s.io" => 17300,
        "networking.k8s.io" => 17200,
        "policy" => 17100,
        "rbac.authorization.k8s.io" => 17000,
        "apiextensions.k8s.io" => 16700,
        "coordination.k8s.io" => 16500,
        "discovery.k8s.io" => 16200,
        _ => return (1000, 100),
    };
    let version_priority = match (group, version) {
        ("", _) => 1,
        ("autoscaling", "v2") => 30,
        (_, v) if v.contains("beta") => 9,
        _ => 15,
    };
    (group_priority, version_priority)
}

/// `v1.apps`, and `v1.` for the core group.
pub(crate) fn name_of(group: &str, version: &str) -> String {
    format!("{version}.{group}")
}

/// The served group-versions, each with whether it comes from a CRD.
fn served(snapshot: &Snapshot) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for g in &snapshot.groups {
        for v in &g.versions {
            let from_crd = snapshot
                .group_version(&g.name, v)
                .iter()
                .all(|r| r.crd.is_some());
            out.push((g.name.clone(), v.clone(), from_crd));
        }
    }
    out
}

/// The APIService of one group-version (spec and labels).
fn desired(group: &str, version: &str, from_crd: bool) -> Value {
    let (group_priority, version_priority) = priority(group, version);
    json!({
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {
            "name": name_of(group, version),
            "labels": {AUTOMANAGED_LABEL: if from_crd { "true" } else { "onstart" }},
        },
        "spec": {
            "group": group,
            "version": version,
            "groupPriorityMinimum": group_priority,
            "versionPriority": version_priority,
        },
    })
}

/// `current`'s status with the `Available` condition of a local APIService (its transition
/// time kept when it already was).
fn available_status(current: &Value) -> Value {
    let conditions = current
        .pointer("/status/conditions")
        .and_then(Value::as_array);
    let kept = conditions.and_then(|c| {
        c.iter()
            .find(|c| c["type"] == "Available" && c["status"] == "True" && c["reason"] == "Local")
    });
    let condition = kept.cloned().unwrap_or_else(|| {
        json!({
            "type": "Available",
            "status": "True",
            "lastTransitionTime": objects::now_rfc3339(),
            "reason": "Local",
            "message": "Local APIServices are always available",
        })
    });
    json!({"conditions": [condition]})
}

/// Makes the stored APIServices match what is served.
pub(crate) async fn reconcile(state: &ApiState) -> Result<(), ApiError> {
    let snapshot = state.registry.snapshot();
    let Some(info) = snapshot.by_kind(GROUP, "v1", "APIService") else {
        return Ok(());
    };
    let opts = WriteOptions::internal("kube-apiserver");
    let user = UserInfo::default();
    let mut wanted = BTreeSet::new();
    for (group, version, from_crd) in served(&snapshot) {
        let name = name_of(&group, &version);
        let body = desired(&group, &version, from_crd);
        update_with(state, &info, "", &name, &opts, "", &user, true, |current| {
            Ok(match current {
                None => body.clone(),
                Some(c) => {
                    let mut next = c.clone();
                    next["spec"] = body["spec"].clone();
                    next["metadata"]["labels"][AUTOMANAGED_LABEL] =
                        body["metadata"]["labels"][AUTOMANAGED_LABEL].clone();
                    next
                }
            })
        })
        .await?;
        update_with(
            state,
            &info,
            "",
            &name,
            &opts,
            "status",
            &user,
            false,
            |current| {
                let mut next = current.cloned().unwrap_or_default();
                next["status"] = available_status(&next);
                Ok(next)
            },
        )
        .await?;
        wanted.insert(name);
    }
    remove_stale(state, &info, &wanted).await
}

/// Deletes managed APIServices whose group-version is no longer served.
async fn remove_stale(
    state: &ApiState,
    info: &ResourceInfo,
    wanted: &BTreeSet<String>,
) -> Result<(), ApiError> {
    for (obj, revision) in state.store.list(&info, "").await? {
        let managed = obj
            .pointer(&format!(
                "/metadata/labels/{}",
                AUTOMANAGED_LABEL.replace('/', "~1")
            ))
            .is_some();
        if managed && !wanted.contains(meta_str(&obj, "name")) {
            match state.store.delete_now(info, &obj, revision).await {
                Ok(_) => {}
                Err(e) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Re-reconciles whenever what is served changes (CRDs established or removed).
pub(crate) fn spawn(state: SharedState) {
    let mut changes = state.registry.subscribe();
    tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            if let Err(e) = reconcile(&state).await {
                tracing::warn!(error = %e, "reconciling APIServices");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_priorities_follow_kube_apiserver() {
        assert_eq!(name_of("", "v1"), "v1.");
        assert_eq!(name_of("apps", "v1"), "v1.apps");
        assert_eq!(priority("", "v1"), (18000, 1));
        assert_eq!(priority("autoscaling", "v2"), (17500, 30));
        assert_eq!(priority("core.oam.dev", "v1beta1"), (1000, 100));
        let d = desired("core.oam.dev", "v1beta1", true);
        assert_eq!(d["metadata"]["labels"][AUTOMANAGED_LABEL], "true");
        assert_eq!(d["spec"]["group"], "core.oam.dev");
    }

    #[test]
    fn available_condition_keeps_its_transition_time() {
        let first = available_status(&json!({}));
        let again = available_status(&json!({"status": first.clone()}));
        assert_eq!(first, again);
        assert_eq!(first["conditions"][0]["status"], "True");
    }

    #[test]
    fn every_served_group_version_is_listed() {
        let registry = crate::registry::Registry::new();
        let gvs = served(&registry.snapshot());
        assert!(gvs.contains(&("".into(), "v1".into(), false)));
        assert!(gvs.contains(&("apps".into(), "v1".into(), false)));
        assert!(gvs.contains(&(GROUP.into(), "v1".into(), false)));
    }
}
