//! Converging one importing member: for each ServiceImport, Service `amcs-<name>` (ClusterIP,
//! the exported ports, no selector) and one EndpointSlice per exporting cluster
//! (`amcs-<name>-<cluster>`, labels `kubernetes.io/service-name`,
//! `multicluster.kubernetes.io/source-cluster`, `endpointslice.kubernetes.io/managed-by`)
//! listing that cluster's ready Pods; slices of clusters no longer exporting (or no longer
//! available) and objects of removed imports are deleted; the import's `status.clusters`
//! names the exporting clusters.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::observe::mcs_resource;
use super::{Export, IMPORTED_SERVICE_PREFIX, Import, MANAGER};

/// EndpointSlice label: the Service it belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// EndpointSlice label: the cluster its endpoints live in.
pub const SOURCE_CLUSTER_LABEL: &str = "multicluster.kubernetes.io/source-cluster";
/// EndpointSlice label: who manages it.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Service label: who manages it.
pub(crate) const SERVICE_MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

type Joined<'a> = BTreeMap<(String, String), Vec<&'a Export>>;

/// Converges every import of one member (failures are logged; the next pass retries).
pub(crate) async fn converge(
    member_client: &kube::Client,
    cluster: &str,
    imports: &[Import],
    joined: &Joined<'_>,
) {
    let mut wanted_services: BTreeSet<(String, String)> = BTreeSet::new();
    let mut wanted_slices: BTreeSet<(String, String)> = BTreeSet::new();
    for import in imports {
        let service_name = format!("{IMPORTED_SERVICE_PREFIX}{}", import.name);
        let exports = joined
            .get(&(import.namespace.clone(), import.name.clone()))
            .cloned()
            .unwrap_or_default();
        if let Some(first) = exports.first() {
            wanted_services.insert((import.namespace.clone(), service_name.clone()));
            apply_service(member_client, &import.namespace, &service_name, first).await;
        }
        for export in &exports {
            let slice = slice_of(&service_name, export);
            let name = slice["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            wanted_slices.insert((import.namespace.clone(), name.clone()));
            apply_if_changed::<EndpointSlice>(member_client, &import.namespace, &name, slice).await;
        }
        let clusters: Vec<&str> = exports.iter().map(|e| e.cluster.as_str()).collect();
        write_import_status(member_client, import, &clusters).await;
    }
    delete_unwanted::<EndpointSlice>(
        member_client,
        cluster,
        &format!("{MANAGED_BY_LABEL}={MANAGER}"),
        &wanted_slices,
    )
    .await;
    delete_unwanted::<Service>(
        member_client,
        cluster,
        &format!("{SERVICE_MANAGED_BY_LABEL}={MANAGER}"),
        &wanted_services,
    )
    .await;
}

/// The EndpointSlice of one exporting cluster.
pub(crate) fn slice_of(service_name: &str, export: &Export) -> Value {
    let endpoints: Vec<Value> = export
        .endpoints
        .iter()
        .map(|(pod, ip)| {
            json!({
                "addresses": [ip],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "targetRef": {"kind": "Pod", "namespace": export.namespace, "name": pod},
            })
        })
        .collect();
    let ports: Vec<Value> = export
        .ports
        .iter()
        .map(|p| json!({"name": p.name, "port": p.target_port, "protocol": p.protocol}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{service_name}-{}", export.cluster),
            "namespace": export.namespace,
            "labels": {
                SERVICE_NAME_LABEL: service_name,
                SOURCE_CLUSTER_LABEL: export.cluster,
                MANAGED_BY_LABEL: MANAGER,
            },
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    })
}

async fn apply_service(member_client: &kube::Client, namespace: &str, name: &str, export: &Export) {
    let ports: Vec<Value> = export
        .ports
        .iter()
        .map(|p| {
            let mut port =
                json!({"port": p.port, "targetPort": p.target_port, "protocol": p.protocol});
            if !p.name.is_empty() {
                port["name"] = json!(p.name);
            }
            port
        })
        .collect();
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {SERVICE_MANAGED_BY_LABEL: MANAGER},
        },
        "spec": {"type": "ClusterIP", "ports": ports},
    });
    apply_if_changed::<Service>(member_client, namespace, name, service).await;
}

/// Server-side applies `wanted` unless the live object already has its labels and content.
async fn apply_if_changed<K>(
    member_client: &kube::Client,
    namespace: &str,
    name: &str,
    wanted: Value,
) where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(member_client.clone(), namespace);
    if let Ok(Some(live)) = api.get_opt(name).await
        && let Ok(live) = serde_json::to_value(&live)
        && covers(&live, &wanted)
    {
        return;
    }
    let params = PatchParams::apply(MANAGER).force();
    if let Err(e) = api.patch(name, &params, &Patch::Apply(&wanted)).await {
        tracing::warn!(%namespace, %name, error = %e, "applying a multi-cluster Service object");
    }
}

/// Whether `live` has every field of `wanted` (except apiVersion/kind) with the same value.
fn covers(live: &Value, wanted: &Value) -> bool {
    match (live, wanted) {
        (Value::Object(l), Value::Object(w)) => w
            .iter()
            .filter(|(k, _)| *k != "apiVersion" && *k != "kind")
            .all(|(k, v)| l.get(k).is_some_and(|lv| covers(lv, v))),
        (Value::Array(l), Value::Array(w)) => {
            l.len() == w.len() && l.iter().zip(w).all(|(a, b)| covers(a, b))
        }
        _ => live == wanted,
    }
}

async fn delete_unwanted<K>(
    member_client: &kube::Client,
    cluster: &str,
    selector: &str,
    wanted: &BTreeSet<(String, String)>,
) where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    let all: Api<K> = Api::all(member_client.clone());
    let Ok(list) = all
        .list_metadata(&ListParams::default().labels(selector))
        .await
    else {
        return;
    };
    for item in list.items {
        let namespace = item.metadata.namespace.clone().unwrap_or_default();
        let name = item.metadata.name.clone().unwrap_or_default();
        if wanted.contains(&(namespace.clone(), name.clone())) {
            continue;
        }
        let api: Api<K> = Api::namespaced(member_client.clone(), &namespace);
        if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
            tracing::warn!(%cluster, %namespace, %name, error = %e, "deleting a stale multi-cluster Service object");
        }
    }
}

async fn write_import_status(member_client: &kube::Client, import: &Import, clusters: &[&str]) {
    let api: Api<DynamicObject> = Api::namespaced_with(
        member_client.clone(),
        &import.namespace,
        &mcs_resource("ServiceImport", "serviceimports"),
    );
    let wanted: Vec<Value> = clusters.iter().map(|c| json!({"cluster": c})).collect();
    if let Ok(Some(live)) = api.get_opt(&import.name).await
        && live.data.pointer("/status/clusters") == Some(&Value::Array(wanted.clone()))
    {
        return;
    }
    let patch = json!({"status": {"clusters": wanted}});
    if let Err(e) = api
        .patch_status(&import.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(cluster = %import.cluster, import = %import.name, error = %e, "writing ServiceImport status");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_objects_with_extra_fields_cover_the_wanted_ones() {
        let wanted = json!({"kind": "X", "metadata": {"labels": {"a": "1"}}, "endpoints": [{"addresses": ["10.0.0.1"]}]});
        let live = json!({"metadata": {"labels": {"a": "1"}, "uid": "u"}, "endpoints": [{"addresses": ["10.0.0.1"], "zone": "z"}]});
        assert!(covers(&live, &wanted));
        let moved =
            json!({"metadata": {"labels": {"a": "1"}}, "endpoints": [{"addresses": ["10.0.0.2"]}]});
        assert!(!covers(&moved, &wanted));
        let fewer = json!({"metadata": {"labels": {"a": "1"}}, "endpoints": []});
        assert!(!covers(&fewer, &wanted));
    }
}
