//! Discovery: `/api`, `/api/v1`, `/apis`, `/apis/{group}[/{version}]` as plain JSON, and
//! aggregated discovery (`apidiscovery.k8s.io` v2 / v2beta1) when the client asks for it.

use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::codec::{json_bytes_response, parse_accept};
use crate::registry::{ResourceInfo, Snapshot};

/// The aggregated-discovery version the client asked for (`v2` or `v2beta1`), if any.
pub(crate) fn aggregated_version(headers: &HeaderMap) -> Option<String> {
    for range in parse_accept(headers) {
        if range.mime != "application/json" {
            continue;
        }
        if range.param("g") == Some("apidiscovery.k8s.io")
            && range.param("as") == Some("APIGroupDiscoveryList")
        {
            if let Some(v) = range.param("v").filter(|v| *v == "v2" || *v == "v2beta1") {
                return Some(v.to_string());
            }
            continue;
        }
        // A plain JSON range before any aggregated one: the client prefers plain.
        range.param("as")?;
    }
    None
}

fn respond(body: &Value, content_type: &str) -> Response {
    let mut resp = json_bytes_response(
        StatusCode::OK,
        serde_json::to_vec(body).unwrap_or_default(),
        content_type,
    );
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    resp
}

fn preferred(snapshot: &Snapshot, group: &str) -> Option<String> {
    snapshot.groups.iter().find(|g| g.name == group).map(|g| {
        // The storage version is preferred (autoscaling/v2).
        g.versions
            .iter()
            .find(|v| {
                snapshot
                    .group_version(group, v)
                    .iter()
                    .any(|r| !r.is_virtual && r.storage_version == **v)
            })
            .unwrap_or(&g.versions[0])
            .clone()
    })
}

/// `GET /api`
pub(crate) fn api_versions(
    headers: &HeaderMap,
    snapshot: &Snapshot,
    server_address: &str,
) -> Response {
    if let Some(v) = aggregated_version(headers) {
        let list = aggregated(snapshot, &v, true);
        return respond(&list, &aggregated_content_type(&v));
    }
    respond(
        &json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        }),
        "application/json",
    )
}

fn aggregated_content_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
}

/// `GET /apis`
pub(crate) fn api_groups(headers: &HeaderMap, snapshot: &Snapshot) -> Response {
    if let Some(v) = aggregated_version(headers) {
        let list = aggregated(snapshot, &v, false);
        return respond(&list, &aggregated_content_type(&v));
    }
    let groups: Vec<Value> = snapshot
        .groups
        .iter()
        .filter(|g| !g.name.is_empty())
        .map(|g| group_json(snapshot, &g.name))
        .collect();
    respond(
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
        "application/json",
    )
}

fn group_json(snapshot: &Snapshot, group: &str) -> Value {
    let versions = snapshot
        .groups
        .iter()
        .find(|g| g.name == group)
        .map(|g| g.versions.clone())
        .unwrap_or_default();
    let pref = preferred(snapshot, group).unwrap_or_default();
    let mut ordered = vec![pref.clone()];
    ordered.extend(versions.into_iter().filter(|v| *v != pref));
    json!({
        "name": group,
        "versions": ordered.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect::<Vec<_>>(),
        "preferredVersion": {"groupVersion": format!("{group}/{pref}"), "version": pref},
    })
}

/// `GET /apis/{group}`
pub(crate) fn api_group(snapshot: &Snapshot, group: &str) -> Option<Response> {
    snapshot
        .groups
        .iter()
        .find(|g| g.name == group && !group.is_empty())?;
    let mut body = group_json(snapshot, group);
    body["kind"] = json!("APIGroup");
    body["apiVersion"] = json!("v1");
    Some(respond(&body, "application/json"))
}

fn subresource_entries(r: &ResourceInfo) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    if r.scale.is_some() {
        out.push((
            "scale".to_string(),
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}),
        ));
    }
    if r.status {
        out.push((
            "status".to_string(),
            json!({"kind": r.kind, "verbs": ["get", "patch", "update"]}),
        ));
    }
    if crate::csr::is_csr(r) {
        out.push((
            "approval".to_string(),
            json!({"kind": r.kind, "verbs": ["get", "patch", "update"]}),
        ));
    }
    if r.group == crate::cluster_gateway::GROUP && r.resource == crate::cluster_gateway::RESOURCE {
        out.push((
            crate::cluster_gateway::PROXY.to_string(),
            json!({"kind": "ClusterGatewayProxyOptions", "verbs": crate::cluster_gateway::PROXY_VERBS}),
        ));
    }
    if r.is_builtin() && r.group.is_empty() && r.resource == "serviceaccounts" {
        out.push((
            "token".to_string(),
            json!({"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest", "verbs": ["create"]}),
        ));
    }
    out
}

/// `GET /api/v1`, `GET /apis/{group}/{version}`
pub(crate) fn resource_list(snapshot: &Snapshot, group: &str, version: &str) -> Option<Response> {
    let resources = snapshot.group_version(group, version);
    if resources.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    for r in &resources {
        let mut entry = json!({
            "name": r.resource,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        list.push(entry);
        for (sub, mut e) in subresource_entries(r) {
            e["name"] = json!(format!("{}/{sub}", r.resource));
            e["singularName"] = json!("");
            e["namespaced"] = json!(r.namespaced);
            list.push(e);
        }
    }
    Some(respond(
        &json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": flotilla_core::resource::api_version(group, version),
            "resources": list,
        }),
        "application/json",
    ))
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let mut e = json!({
        "resource": r.resource,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        e["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        e["categories"] = json!(r.categories);
    }
    let subs: Vec<Value> = subresource_entries(r)
        .into_iter()
        .map(|(sub, e)| {
            json!({
                "subresource": sub,
                "responseKind": {
                    "group": e.get("group").and_then(Value::as_str).unwrap_or(&r.group),
                    "version": e.get("version").and_then(Value::as_str).unwrap_or(&r.version),
                    "kind": e["kind"],
                },
                "verbs": e["verbs"],
            })
        })
        .collect();
    if !subs.is_empty() {
        e["subresources"] = json!(subs);
    }
    e
}

/// The aggregated discovery document for the core group (`legacy`) or all named groups.
pub(crate) fn aggregated(snapshot: &Snapshot, version: &str, legacy: bool) -> Value {
    let mut items = Vec::new();
    for g in &snapshot.groups {
        if legacy != g.name.is_empty() {
            continue;
        }
        let pref = preferred(snapshot, &g.name).unwrap_or_default();
        let mut ordered = vec![pref.clone()];
        ordered.extend(g.versions.iter().filter(|v| **v != pref).cloned());
        let versions: Vec<Value> = ordered
            .iter()
            .map(|v| {
                let resources: Vec<Value> = snapshot
                    .group_version(&g.name, v)
                    .iter()
                    .map(|r| aggregated_resource(r))
                    .collect();
                json!({"version": v, "resources": resources, "freshness": "Current"})
            })
            .collect();
        let mut metadata = json!({"creationTimestamp": null});
        if !g.name.is_empty() {
            metadata["name"] = json!(g.name);
        }
        items.push(json!({"metadata": metadata, "versions": versions}));
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_accept_detection() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"),
        );
        assert_eq!(aggregated_version(&h).as_deref(), Some("v2"));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, */*"),
        );
        assert_eq!(aggregated_version(&h), None);
    }

    #[test]
    fn aggregated_document_shape() {
        let registry = crate::registry::Registry::new();
        let snap = registry.snapshot();
        let apps = aggregated(&snap, "v2", false);
        let apps_group = apps["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["metadata"]["name"] == "apps")
            .unwrap();
        let deploy = apps_group["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(deploy["scope"], "Namespaced");
        assert_eq!(deploy["categories"][0], "all");
        assert_eq!(deploy["shortNames"][0], "deploy");
        assert_eq!(deploy["subresources"][0]["subresource"], "scale");
        let autoscaling = apps["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["metadata"]["name"] == "autoscaling")
            .unwrap();
        assert_eq!(autoscaling["versions"][0]["version"], "v2");
        let core = aggregated(&snap, "v2", true);
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        assert!(core["items"][0]["metadata"].get("name").is_none());
    }
}
