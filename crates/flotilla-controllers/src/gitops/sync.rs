//! Compare and sync: each manifest of the revision is prepared for the destination (namespace,
//! tracking annotation), read live, compared; a sync server-side applies the ones out of sync
//! (kinds in dependency order: namespaces and CRDs first) and, with prune, deletes objects this
//! Application synced before that left Git.

use flotilla_apis::{ResourceResult, ResourceStatus, TRACKING_ANNOTATION};
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::compare;
use super::destination::Target;
use super::manifests;
use crate::application::dispatch::{self, KindCache, KindInfo};

/// The field manager of synced objects.
pub(crate) const FIELD_MANAGER: &str = "argocd-controller";

/// One object: in Git, live, or both.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    /// The object as it is applied (namespace and tracking annotation filled in).
    pub object: Value,
    /// Plural and scope, or why the destination does not serve the kind.
    pub kind: Result<KindInfo, String>,
    /// The live object.
    pub live: Option<Value>,
    /// Why the live object cannot be touched (another Application's, unreadable).
    pub blocked: Option<String>,
    /// Where live differs from Git.
    pub diffs: Vec<String>,
    /// Synced before, gone from Git, still live.
    pub orphan: bool,
}

impl Planned {
    /// Live matches Git (an orphan never does).
    pub(crate) fn in_sync(&self) -> bool {
        !self.orphan && self.live.is_some() && self.diffs.is_empty() && self.blocked.is_none()
    }

    /// `group`, `version`.
    pub(crate) fn group_version(&self) -> (String, String) {
        let api_version = self.object["apiVersion"].as_str().unwrap_or_default();
        match api_version.rsplit_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        }
    }

    fn text(&self, pointer: &str) -> String {
        self.object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    /// Kind, namespace, name.
    pub(crate) fn identity(&self) -> (String, String, String) {
        (
            self.text("/kind"),
            self.text("/metadata/namespace"),
            self.text("/metadata/name"),
        )
    }

    /// `kind/name` in kubectl's words, for result messages.
    fn describe(&self) -> String {
        let (kind, _, name) = self.identity();
        format!("{}/{name}", kind.to_ascii_lowercase())
    }

    /// The entry of `status.resources`.
    pub(crate) fn resource_status(&self) -> ResourceStatus {
        let (group, version) = self.group_version();
        let (kind, namespace, name) = self.identity();
        ResourceStatus {
            group,
            version,
            kind,
            namespace,
            name,
            status: if self.in_sync() {
                "Synced"
            } else {
                "OutOfSync"
            }
            .into(),
            health: None,
            requires_pruning: self.orphan.then_some(true),
            diff: self.diffs.clone(),
        }
    }
}

/// `<app-namespace>_<app-name>`: the prefix of the tracking annotation.
pub(crate) fn app_id(namespace: &str, name: &str) -> String {
    format!("{namespace}_{name}")
}

fn tracking_value(app_id: &str, object: &Value) -> String {
    let key = manifests::key(object);
    format!("{app_id}:{key}")
}

fn tracked_by(live: &Value) -> Option<String> {
    live["metadata"]["annotations"][TRACKING_ANNOTATION]
        .as_str()
        .map(|v| v.split(':').next().unwrap_or_default().to_string())
}

async fn read_live(
    target: &Target,
    object: &Value,
    info: &KindInfo,
) -> Result<Option<Value>, dispatch::Error> {
    let text = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    dispatch::get(
        &target.client,
        text("/apiVersion"),
        text("/kind"),
        info,
        text("/metadata/namespace"),
        text("/metadata/name"),
    )
    .await
}

fn prepare(mut object: Value, info: &KindInfo, namespace: &str, app_id: &str) -> Value {
    if info.namespaced {
        if object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
        {
            let ns = if namespace.is_empty() {
                "default"
            } else {
                namespace
            };
            object["metadata"]["namespace"] = json!(ns);
        }
    } else if let Some(meta) = object["metadata"].as_object_mut() {
        meta.remove("namespace");
    }
    let value = tracking_value(app_id, &object);
    if !object["metadata"]["annotations"].is_object() {
        object["metadata"]["annotations"] = json!({});
    }
    object["metadata"]["annotations"][TRACKING_ANNOTATION] = json!(value);
    object
}

/// Reads and compares one object; `Err` only when the cluster cannot be reached.
async fn observe_one(
    target: &Target,
    kinds: &KindCache,
    object: Value,
    app_id: &str,
    orphan: bool,
) -> Result<Option<Planned>, String> {
    let api_version = object["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let kind_name = object["kind"].as_str().unwrap_or_default().to_string();
    let kind = kinds
        .resolve(&target.client, &target.cluster, &api_version, &kind_name)
        .await;
    let mut planned = Planned {
        object,
        kind: Err(String::new()),
        live: None,
        blocked: None,
        diffs: Vec::new(),
        orphan,
    };
    let info = match kind {
        Ok(info) => info,
        Err(e) if e.is_unreachable() => return Err(format!("cluster {}: {e}", target.cluster)),
        Err(e) => {
            planned.kind = Err(e.to_string());
            return Ok((!orphan).then_some(planned));
        }
    };
    if !orphan {
        planned.object = prepare(planned.object, &info, &target.namespace, app_id);
    }
    match read_live(target, &planned.object, &info).await {
        Ok(live) => planned.live = live,
        Err(e) if e.is_unreachable() => return Err(format!("cluster {}: {e}", target.cluster)),
        Err(e) => planned.blocked = Some(e.to_string()),
    }
    planned.kind = Ok(info);
    if let Some(live) = &planned.live {
        match tracked_by(live) {
            // Synced before but now another Application's (or nobody's): not ours to prune.
            Some(owner) if orphan && owner != app_id => return Ok(None),
            None if orphan => return Ok(None),
            Some(owner) if owner != app_id => {
                planned.blocked = Some(format!(
                    "{} is managed by application {owner}",
                    planned.describe()
                ));
            }
            _ => {}
        }
        if !orphan {
            planned.diffs = compare::differences(&planned.object, live);
        }
    } else if orphan {
        return Ok(None);
    }
    Ok(Some(planned))
}

/// Every object of the revision, plus the ones synced before (`previous`) that left Git and
/// are still live. `Err`: the destination could not be reached.
pub(crate) async fn observe(
    target: &Target,
    kinds: &KindCache,
    desired: &[manifests::Manifest],
    previous: &[ResourceStatus],
    app_id: &str,
) -> Result<Vec<Planned>, String> {
    let mut out = Vec::new();
    for manifest in desired {
        if let Some(p) = observe_one(target, kinds, manifest.object.clone(), app_id, false).await? {
            out.push(p);
        }
    }
    for old in previous {
        let api_version = if old.group.is_empty() {
            old.version.clone()
        } else {
            format!("{}/{}", old.group, old.version)
        };
        let object = json!({"apiVersion": api_version, "kind": old.kind,
            "metadata": {"name": old.name, "namespace": old.namespace}});
        let key = manifests::key(&object);
        if out.iter().any(|p| manifests::key(&p.object) == key) {
            continue;
        }
        if let Some(p) = observe_one(target, kinds, object, app_id, true).await? {
            out.push(p);
        }
    }
    Ok(out)
}

/// Apply order: namespaces, then CRDs, then RBAC and config, then workloads, then the rest.
fn kind_rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        "ServiceAccount" | "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding" => 2,
        "Secret" | "ConfigMap" | "PersistentVolumeClaim" => 3,
        "Service" => 4,
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" | "CronJob" => 5,
        _ => 6,
    }
}

fn result(planned: &Planned, status: &str, message: String) -> ResourceResult {
    let (group, version) = planned.group_version();
    let (kind, namespace, name) = planned.identity();
    ResourceResult {
        group,
        version,
        kind,
        namespace,
        name,
        status: status.into(),
        message,
        sync_phase: "Sync".into(),
    }
}

async fn apply_one(target: &Target, planned: &Planned) -> ResourceResult {
    if planned.in_sync() {
        return result(
            planned,
            "Synced",
            format!("{} unchanged", planned.describe()),
        );
    }
    let info = match (&planned.kind, &planned.blocked) {
        (Err(e), _) | (Ok(_), Some(e)) => return result(planned, "SyncFailed", e.clone()),
        (Ok(info), None) => info,
    };
    let (kind, namespace, name) = planned.identity();
    let api_version = planned.object["apiVersion"].as_str().unwrap_or_default();
    let api = dispatch::api_for(&target.client, api_version, &kind, info, &namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api
        .patch(&name, &params, &Patch::Apply(&planned.object))
        .await
    {
        Ok(_) => {
            let verb = if planned.live.is_some() {
                "configured"
            } else {
                "created"
            };
            result(planned, "Synced", format!("{} {verb}", planned.describe()))
        }
        Err(e) => result(
            planned,
            "SyncFailed",
            crate::cluster::describe_kube_error(&e),
        ),
    }
}

async fn prune_one(target: &Target, planned: &Planned, prune: bool) -> ResourceResult {
    let description = planned.describe();
    if !prune {
        return result(
            planned,
            "PruneSkipped",
            format!("{description} ignored (requires pruning)"),
        );
    }
    let Ok(info) = &planned.kind else {
        return result(
            planned,
            "SyncFailed",
            format!("{description}: unknown kind"),
        );
    };
    let (kind, namespace, name) = planned.identity();
    let api_version = planned.object["apiVersion"].as_str().unwrap_or_default();
    let api = dispatch::api_for(&target.client, api_version, &kind, info, &namespace);
    match api.delete(&name, &DeleteParams::background()).await {
        Ok(_) => result(planned, "Pruned", format!("{description} pruned")),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            result(planned, "Pruned", format!("{description} pruned"))
        }
        Err(e) => result(
            planned,
            "SyncFailed",
            crate::cluster::describe_kube_error(&e),
        ),
    }
}

/// Creates the destination namespace (`CreateNamespace=true`) if it is missing.
pub(crate) async fn create_namespace(target: &Target) -> Result<(), String> {
    if target.namespace.is_empty() {
        return Ok(());
    }
    dispatch::ensure_namespace(&target.client, &target.namespace)
        .await
        .map_err(|e| format!("creating namespace {}: {e}", target.namespace))
}

/// Applies what is out of sync and prunes (or reports) orphans; one result per object.
pub(crate) async fn run(target: &Target, planned: &[Planned], prune: bool) -> Vec<ResourceResult> {
    let mut order: Vec<&Planned> = planned.iter().filter(|p| !p.orphan).collect();
    order.sort_by_key(|p| kind_rank(&p.identity().0));
    let mut results = Vec::new();
    for p in order {
        results.push(apply_one(target, p).await);
    }
    for p in planned.iter().filter(|p| p.orphan) {
        results.push(prune_one(target, p, prune).await);
    }
    results
}

/// Deletes every live object this Application synced (the resources finalizer).
pub(crate) async fn delete_all(target: &Target, planned: &[Planned]) -> Vec<ResourceResult> {
    let mut results = Vec::new();
    for p in planned
        .iter()
        .filter(|p| p.live.is_some() && p.blocked.is_none())
    {
        let mut orphan = p.clone();
        orphan.orphan = true;
        results.push(prune_one(target, &orphan, true).await);
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_objects_get_the_destination_namespace_and_a_tracking_id() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let info = KindInfo::of("v1", "ConfigMap");
        let got = prepare(cm, &info, "web", "argocd_guestbook");
        assert_eq!(got["metadata"]["namespace"], "web");
        assert_eq!(
            got["metadata"]["annotations"][TRACKING_ANNOTATION],
            "argocd_guestbook:/ConfigMap:web/c"
        );
        assert_eq!(tracked_by(&got).as_deref(), Some("argocd_guestbook"));
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "namespace": "x"}});
        let got = prepare(ns, &KindInfo::of("v1", "Namespace"), "web", "a_b");
        assert!(got["metadata"].get("namespace").is_none());
    }

    #[test]
    fn namespaces_and_crds_go_first() {
        let mut kinds = vec![
            "Deployment",
            "Namespace",
            "ConfigMap",
            "CustomResourceDefinition",
        ];
        kinds.sort_by_key(|k| kind_rank(k));
        assert_eq!(
            kinds,
            [
                "Namespace",
                "CustomResourceDefinition",
                "ConfigMap",
                "Deployment"
            ]
        );
    }
}
