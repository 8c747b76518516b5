//! The multi-cluster Services part of `flotilla status APP`: for each Service the app exports
//! or imports (a `ServiceExport` or `ServiceImport` among its components' objects), which
//! clusters export it (and whether the export is valid) and, in each cluster that imports it,
//! how many ready endpoints each exporting cluster contributes (the `amcs-<name>`
//! EndpointSlices). Members are read through the hub's cluster gateway as the signed-in user.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use flotilla_controllers::mcs::imports::{
    MANAGED_BY_LABEL, SERVICE_NAME_LABEL, SOURCE_CLUSTER_LABEL,
};
use flotilla_controllers::mcs::observe::mcs_resource;
use flotilla_controllers::mcs::{IMPORTED_SERVICE_PREFIX, MANAGER};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

/// How long one member may take to answer.
const MEMBER_TIMEOUT: Duration = Duration::from_secs(10);

/// A Service by namespace and name.
pub(crate) type ServiceKey = (String, String);

/// What one cluster holds of one multi-cluster Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterView {
    pub cluster: String,
    /// The ServiceExport's state (`valid`, `conflict (...)`, ...), if the cluster exports.
    pub export: Option<String>,
    /// Ready endpoints per exporting cluster, if the cluster imports.
    pub import: Option<BTreeMap<String, usize>>,
    /// Why the cluster could not be read.
    pub error: Option<String>,
}

/// The (namespace, name) of every ServiceExport / ServiceImport among the app's component
/// objects (`k8s-objects` components); objects without a namespace are in the app's.
pub(crate) fn mcs_services(app: &Value) -> Vec<ServiceKey> {
    let app_namespace = app["metadata"]["namespace"].as_str().unwrap_or("default");
    let mut keys: Vec<ServiceKey> = app["spec"]["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.pointer("/properties/objects").and_then(Value::as_array))
        .flatten()
        .filter(|o| {
            o["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with(flotilla_apis::MCS_GROUP))
                && matches!(o["kind"].as_str(), Some("ServiceExport" | "ServiceImport"))
        })
        .filter_map(|o| {
            let name = o["metadata"]["name"].as_str()?;
            let namespace = o["metadata"]["namespace"].as_str().unwrap_or(app_namespace);
            Some((namespace.to_string(), name.to_string()))
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// A ServiceExport's conditions in a word or two.
pub(crate) fn export_state(export: &Value) -> String {
    let conditions = export["status"]["conditions"].as_array();
    let find = |ty: &str| conditions.into_iter().flatten().find(|c| c["type"] == ty);
    if let Some(c) = find("Conflict").filter(|c| c["status"] == "True") {
        return format!("conflict: {}", c["message"].as_str().unwrap_or(""));
    }
    match find("Valid") {
        Some(c) if c["status"] == "True" => "valid".into(),
        Some(c) => format!("invalid: {}", c["reason"].as_str().unwrap_or("")),
        None => "pending".into(),
    }
}

/// Ready endpoints per source cluster in `amcs-<name>` slices.
pub(crate) fn endpoints_by_cluster(slices: &[EndpointSlice]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for slice in slices {
        let labels = slice.metadata.labels.clone().unwrap_or_default();
        let Some(source) = labels.get(SOURCE_CLUSTER_LABEL) else {
            continue;
        };
        let ready = slice
            .endpoints
            .iter()
            .flatten()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
            .count();
        *counts.entry(source.clone()).or_insert(0) += ready;
    }
    counts
}

/// The `Multi-cluster Services:` section (empty when the app has none).
pub(crate) fn render(services: &[(ServiceKey, Vec<ClusterView>)]) -> String {
    if services.is_empty() {
        return String::new();
    }
    let mut out = String::from("Multi-cluster Services:\n");
    for ((namespace, name), views) in services {
        let _ = writeln!(out, "  - Name: {name}  Namespace: {namespace}");
        let exports: Vec<String> = views
            .iter()
            .filter_map(|v| Some(format!("{} ({})", v.cluster, v.export.as_ref()?)))
            .collect();
        let _ = writeln!(out, "    Exported from: {}", or_none(&exports));
        let imports: Vec<String> = views
            .iter()
            .filter_map(|v| Some((v.cluster.as_str(), v.import.as_ref()?)))
            .map(|(cluster, counts)| {
                let total: usize = counts.values().sum();
                let each: Vec<String> = counts.iter().map(|(c, n)| format!("{c} {n}")).collect();
                format!("{cluster} ({total} endpoints: {})", or_none(&each))
            })
            .collect();
        let _ = writeln!(out, "    Imported into: {}", or_none(&imports));
        for v in views {
            if let Some(e) = &v.error {
                let _ = writeln!(out, "    Not read: {} ({e})", v.cluster);
            }
        }
    }
    out
}

fn or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// Reads every cluster for the app's multi-cluster Services and renders the section.
pub(crate) async fn section(hub_client: &kube::Client, app: &Value) -> String {
    let services = mcs_services(app);
    if services.is_empty() {
        return String::new();
    }
    let clusters = match crate::get::cluster_names(hub_client).await {
        Ok(c) => c,
        Err(e) => return format!("Multi-cluster Services:\n  (clusters not read: {e})\n"),
    };
    let mut rendered = Vec::new();
    for key in services {
        let views = futures::future::join_all(
            clusters
                .iter()
                .map(|cluster| read_cluster(hub_client, cluster, &key)),
        )
        .await;
        let views = views
            .into_iter()
            .filter(|v| v.export.is_some() || v.import.is_some() || v.error.is_some())
            .collect();
        rendered.push((key, views));
    }
    render(&rendered)
}

async fn read_cluster(hub_client: &kube::Client, cluster: &str, key: &ServiceKey) -> ClusterView {
    let client = crate::get::member_client_for(hub_client, cluster);
    let read = tokio::time::timeout(MEMBER_TIMEOUT, read_views(&client, key)).await;
    let (export, import, error) = match read {
        Ok(Ok((export, import))) => (export, import, None),
        Ok(Err(e)) => (None, None, Some(crate::get::kubectl_error(&e))),
        Err(_) => (None, None, Some("no answer".into())),
    };
    ClusterView {
        cluster: cluster.to_string(),
        export,
        import,
        error,
    }
}

type Views = (Option<String>, Option<BTreeMap<String, usize>>);

async fn read_views(
    client: &kube::Client,
    (namespace, name): &ServiceKey,
) -> Result<Views, kube::Error> {
    let exports: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &mcs_resource("ServiceExport", "serviceexports"),
    );
    let imports: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &mcs_resource("ServiceImport", "serviceimports"),
    );
    let export = exports
        .get_opt(name)
        .await?
        .map(|e| export_state(&serde_json::to_value(e).unwrap_or_default()));
    if imports.get_opt(name).await?.is_none() {
        return Ok((export, None));
    }
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let selector = format!(
        "{SERVICE_NAME_LABEL}={IMPORTED_SERVICE_PREFIX}{name},{MANAGED_BY_LABEL}={MANAGER}"
    );
    let list = slices
        .list(&ListParams::default().labels(&selector))
        .await?;
    Ok((export, Some(endpoints_by_cluster(&list.items))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_exports_and_imports_among_component_objects() {
        let app = json!({"metadata": {"namespace": "apps"}, "spec": {"components": [
            {"name": "a", "type": "k8s-objects", "properties": {"objects": [
                {"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
                 "metadata": {"name": "web", "namespace": "shop"}},
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}]}},
            {"name": "b", "type": "k8s-objects", "properties": {"objects": [
                {"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport",
                 "metadata": {"name": "web", "namespace": "shop"}},
                {"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport",
                 "metadata": {"name": "db"}}]}},
            {"name": "c", "type": "webservice", "properties": {"image": "x"}}]}});
        assert_eq!(
            mcs_services(&app),
            vec![
                ("apps".to_string(), "db".to_string()),
                ("shop".to_string(), "web".to_string())
            ]
        );
    }

    #[test]
    fn renders_exporters_and_endpoints_per_importer() {
        let conflict = json!({"status": {"conditions": [
            {"type": "Valid", "status": "True"},
            {"type": "Conflict", "status": "True", "reason": "PortConflict", "message": "ports differ"}]}});
        assert_eq!(export_state(&conflict), "conflict: ports differ");
        assert_eq!(export_state(&json!({})), "pending");
        let view =
            |cluster: &str, export: Option<&str>, import: Option<&[(&str, usize)]>| ClusterView {
                cluster: cluster.into(),
                export: export.map(str::to_string),
                import: import.map(|i| i.iter().map(|(c, n)| (c.to_string(), *n)).collect()),
                error: None,
            };
        let text = render(&[(
            ("shop".into(), "web".into()),
            vec![
                view("a", Some("valid"), None),
                view("b", Some("valid"), None),
                view("c", None, Some(&[("a", 2), ("b", 1)])),
            ],
        )]);
        assert_eq!(
            text,
            "Multi-cluster Services:\n  - Name: web  Namespace: shop\n    Exported from: a (valid), b (valid)\n    Imported into: c (3 endpoints: a 2, b 1)\n"
        );
        assert_eq!(render(&[]), "");
    }
}
