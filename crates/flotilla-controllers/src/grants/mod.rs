//! The grants controller (see README.md in this folder): keeps, for every `FleetRoleBinding`
//! on the hub, a RoleBinding or ClusterRoleBinding on each selected member and the hub's
//! `clustergateways/proxy` permission for those clusters.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use crate::application::member_clients::{Identity, MemberClients};
use crate::cluster::managed_cluster;

mod member_watch;

/// Label on every member binding naming the grant it comes from.
pub(crate) const GRANT_LABEL: &str = "auth.flotilla.io/grant";
/// The field manager of every write.
const FIELD_MANAGER: &str = "flotilla-grants";
/// How often every grant is compared with the members' bindings even when nothing changed on
/// the hub or on the watched members (a binding edited on a member by hand, or deleted while
/// its watch was away and not relisted, comes back within this).
const RESYNC: Duration = Duration::from_secs(300);
/// How soon a pass is retried after a member could not be synced.
const RETRY: Duration = Duration::from_secs(5);
/// How long a burst of hub changes is gathered into one pass.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// The API resource of `FleetRoleBinding`.
pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("auth.flotilla.io", "v1alpha1", "FleetRoleBinding"),
        "fleetrolebindings",
    )
}

/// One grant as the controller reads it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Grant {
    /// Object name.
    pub name: String,
    /// Object uid (for owner references on the hub's RBAC objects).
    pub uid: String,
    /// RBAC subjects (`{kind: User|Group, name}`).
    pub subjects: Vec<Value>,
    /// Clusters by name.
    pub clusters: Vec<String>,
    /// Clusters by label (all must match).
    pub selector: BTreeMap<String, String>,
    /// A RoleBinding in this namespace, or a ClusterRoleBinding when empty.
    pub namespace: String,
    /// The member ClusterRole bound.
    pub cluster_role: String,
    /// Read-only: the hub grants only `get` through the gateway.
    pub readonly: bool,
}

impl Grant {
    /// Reads a `FleetRoleBinding`.
    pub(crate) fn from_object(object: &DynamicObject) -> Grant {
        let spec = object.data.get("spec").cloned().unwrap_or_default();
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        Grant {
            name: object.metadata.name.clone().unwrap_or_default(),
            uid: object.metadata.uid.clone().unwrap_or_default(),
            subjects: spec["subjects"].as_array().cloned().unwrap_or_default(),
            clusters: strings(&spec["clusters"]),
            selector: spec["clusterSelector"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
            namespace: spec["namespace"].as_str().unwrap_or("").to_string(),
            cluster_role: spec["clusterRole"].as_str().unwrap_or("view").to_string(),
            readonly: spec["readonly"].as_bool().unwrap_or(false),
        }
    }

    /// Whether the grant selects cluster `name` with `labels`.
    pub(crate) fn selects(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.clusters.iter().any(|c| c == name)
            || (!self.selector.is_empty()
                && self.selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }

    /// The name of the binding on members and of the hub's ClusterRole and binding.
    pub(crate) fn binding_name(&self) -> String {
        format!("flotilla-grant:{}", self.name)
    }

    /// The member binding this grant wants.
    pub(crate) fn member_binding(&self) -> Value {
        let mut metadata = json!({
            "name": self.binding_name(),
            "labels": {GRANT_LABEL: self.name},
        });
        let kind = if self.namespace.is_empty() {
            "ClusterRoleBinding"
        } else {
            metadata["namespace"] = json!(self.namespace);
            "RoleBinding"
        };
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": kind,
            "metadata": metadata,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": self.cluster_role},
            "subjects": self.subjects,
        })
    }
}

/// Who the controller acts as on members: the hub credential may only impersonate, so the
/// binding writes run as an identity in `system:masters` there.
fn member_identity() -> Identity {
    Identity::hub_component("grants-controller", &["system:masters"])
}

/// Runs the grants controller until the hub fails: a pass at start, after every change of a
/// `FleetRoleBinding` or a `ManagedCluster` (joined, detached, labels changed; watched through
/// kube-runtime watchers), when a grant binding goes from a member that holds some
/// (`member_watch.rs`), [`RETRY`] after a member could not be synced, and every [`RESYNC`].
pub(crate) async fn run(hub_client: kube::Client) -> anyhow::Result<()> {
    let members = MemberClients::new(hub_client.clone());
    let (changed, mut changes) = tokio::sync::mpsc::channel::<()>(1);
    let grants = Api::<DynamicObject>::all_with(hub_client.clone(), &api_resource());
    tokio::spawn(signal_changes(grants, changed.clone()));
    tokio::spawn(signal_changes(
        managed_cluster::api(&hub_client),
        changed.clone(),
    ));
    let mut watches = member_watch::MemberWatches::new(members.clone(), changed);
    // Clusters that may hold grant bindings; `None` until the first pass has looked at all.
    let mut bound: Option<BTreeSet<String>> = None;
    loop {
        let wait = match reconcile_all(&hub_client, &members, &mut bound).await {
            Ok(Synced::All) => RESYNC,
            Ok(Synced::NotAll) => RETRY,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "grants: reconcile failed; retrying");
                RETRY
            }
        };
        if let Some(bound) = &bound {
            watches.follow(bound);
        }
        if tokio::time::timeout(wait, changes.recv()).await == Ok(None) {
            anyhow::bail!("grants: the hub watches ended");
        }
        tokio::time::sleep(DEBOUNCE).await;
        while changes.try_recv().is_ok() {}
    }
}

/// Sends a signal on `changed` for every event of a watch on `api` (re-listing after errors).
async fn signal_changes(api: Api<DynamicObject>, changed: tokio::sync::mpsc::Sender<()>) {
    use futures::StreamExt as _;
    use kube::runtime::{WatchStreamExt as _, watcher};
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        if event.is_ok() {
            // A full channel already holds a pending pass.
            let _ = changed.try_send(());
        }
    }
}

/// Whether a pass synced every member it had to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Synced {
    /// All of them.
    All,
    /// Some member failed; it is tried again soon.
    NotAll,
}

/// One pass: every cluster's bindings and every grant's hub permission. Members that neither
/// are selected now nor were last pass are left alone (`bound`), so a fleet without grants costs
/// the members nothing.
pub(crate) async fn reconcile_all(
    hub_client: &kube::Client,
    members: &MemberClients,
    bound: &mut Option<BTreeSet<String>>,
) -> anyhow::Result<Synced> {
    let grants: Vec<Grant> = Api::<DynamicObject>::all_with(hub_client.clone(), &api_resource())
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(Grant::from_object)
        .collect();
    let clusters = managed_cluster::api(hub_client)
        .list(&ListParams::default())
        .await?;
    let mut selected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut to_sync: Vec<(String, Vec<&Grant>)> = Vec::new();
    for cluster in &clusters.items {
        let name = cluster.metadata.name.clone().unwrap_or_default();
        let labels = cluster.metadata.labels.clone().unwrap_or_default();
        let wanted: Vec<&Grant> = grants
            .iter()
            .filter(|g| g.selects(&name, &labels))
            .collect();
        for g in &wanted {
            selected
                .entry(g.name.clone())
                .or_default()
                .push(name.clone());
        }
        let was_bound = bound.as_ref().is_none_or(|b| b.contains(&name));
        if !wanted.is_empty() || was_bound {
            to_sync.push((name, wanted));
        }
    }
    // Members are synced concurrently: a slow or unreachable one delays no other.
    let results = futures::future::join_all(
        to_sync
            .iter()
            .map(|(name, wanted)| sync_member(members, name, wanted)),
    )
    .await;
    let mut now_bound: BTreeSet<String> = bound.clone().unwrap_or_default();
    let mut synced = Synced::All;
    for ((name, wanted), result) in to_sync.iter().zip(results) {
        match result {
            Ok(()) if wanted.is_empty() => {
                now_bound.remove(name);
            }
            Ok(()) => {
                now_bound.insert(name.clone());
            }
            Err(e) => {
                // Try again soon.
                synced = Synced::NotAll;
                now_bound.insert(name.clone());
                tracing::debug!(cluster = %name, error = %format!("{e:#}"), "grants: member not synced");
            }
        }
    }
    *bound = Some(now_bound);
    for grant in &grants {
        let clusters = selected.get(&grant.name).cloned().unwrap_or_default();
        hub_permission(hub_client, grant, &clusters).await?;
    }
    Ok(synced)
}

/// Applies the wanted bindings on one member and deletes the grant bindings no grant wants.
async fn sync_member(
    members: &MemberClients,
    cluster: &str,
    wanted: &[&Grant],
) -> anyhow::Result<()> {
    let client = members.as_user(cluster, &member_identity()).await?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut keep: BTreeSet<(String, String)> = BTreeSet::new();
    for grant in wanted {
        let binding = grant.member_binding();
        let name = grant.binding_name();
        if grant.namespace.is_empty() {
            let api: Api<ClusterRoleBinding> = Api::all(client.clone());
            api.patch(&name, &params, &Patch::Apply(&binding)).await?;
        } else {
            let api: Api<RoleBinding> = Api::namespaced(client.clone(), &grant.namespace);
            api.patch(&name, &params, &Patch::Apply(&binding)).await?;
        }
        keep.insert((grant.namespace.clone(), name));
    }
    let labelled = ListParams::default().labels(GRANT_LABEL);
    for crb in Api::<ClusterRoleBinding>::all(client.clone())
        .list(&labelled)
        .await?
        .items
    {
        let name = crb.metadata.name.unwrap_or_default();
        if !keep.contains(&(String::new(), name.clone())) {
            Api::<ClusterRoleBinding>::all(client.clone())
                .delete(&name, &DeleteParams::default())
                .await?;
        }
    }
    for rb in Api::<RoleBinding>::all(client.clone())
        .list(&labelled)
        .await?
        .items
    {
        let ns = rb.metadata.namespace.unwrap_or_default();
        let name = rb.metadata.name.unwrap_or_default();
        if !keep.contains(&(ns.clone(), name.clone())) {
            Api::<RoleBinding>::namespaced(client.clone(), &ns)
                .delete(&name, &DeleteParams::default())
                .await?;
        }
    }
    Ok(())
}

/// The hub ClusterRole (`clustergateways/proxy` for the selected clusters) and its binding,
/// owned by the grant so they go when it is deleted.
async fn hub_permission(
    hub_client: &kube::Client,
    grant: &Grant,
    clusters: &[String],
) -> anyhow::Result<()> {
    let owner = json!([{
        "apiVersion": "auth.flotilla.io/v1alpha1", "kind": "FleetRoleBinding",
        "name": grant.name, "uid": grant.uid, "controller": true,
    }]);
    // The hub gates by cluster; the member's bound role decides the verbs (reviews are POSTs).
    let verbs = ["*"];
    // An empty resourceNames list would mean every cluster: no rule until one is selected.
    let rules = if clusters.is_empty() {
        json!([])
    } else {
        json!([{
            "apiGroups": ["cluster.core.oam.dev"],
            "resources": ["clustergateways/proxy"],
            "resourceNames": clusters,
            "verbs": verbs,
        }])
    };
    let name = grant.binding_name();
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "ownerReferences": owner, "labels": {GRANT_LABEL: grant.name}},
        "rules": rules,
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "ownerReferences": owner, "labels": {GRANT_LABEL: grant.name}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": grant.subjects,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(hub_client.clone())
        .patch(&name, &params, &Patch::Apply(&role))
        .await?;
    Api::<ClusterRoleBinding>::all(hub_client.clone())
        .patch(&name, &params, &Patch::Apply(&binding))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_by_name_and_label() {
        let grant = Grant {
            name: "g".into(),
            uid: String::new(),
            subjects: vec![],
            clusters: vec!["a".into()],
            selector: BTreeMap::from([("env".to_string(), "prod".to_string())]),
            namespace: "default".into(),
            cluster_role: "view".into(),
            readonly: true,
        };
        let prod = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        assert!(grant.selects("a", &BTreeMap::new()));
        assert!(grant.selects("b", &prod));
        assert!(!grant.selects("c", &BTreeMap::new()));
        let binding = grant.member_binding();
        assert_eq!(binding["kind"], "RoleBinding");
        assert_eq!(binding["metadata"]["namespace"], "default");
        assert_eq!(binding["metadata"]["labels"][GRANT_LABEL], "g");
    }
}
