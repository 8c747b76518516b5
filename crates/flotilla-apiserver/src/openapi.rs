//! OpenAPI: `/openapi/v2` (an empty document, which every kubectl accepts) and
//! `/openapi/v3` with one document per group-version whose PATCH operations declare the
//! `fieldValidation` query parameter, so kubectl leaves field validation to the server,
//! and whose component schemas ([`crate::openapi_schemas`]) serve `kubectl explain`.
//! Documents are rendered on first request and cached: built-in-only group-versions once
//! per process, the others per registry snapshot (a CRD change makes a new snapshot).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::codec::json_bytes_response;
use crate::registry::Snapshot;
use crate::server::KUBERNETES_VERSION;

/// `GET /openapi/v2`: kubectl asks for protobuf; an empty body decodes as an empty
/// document. JSON clients get an empty swagger document.
pub(crate) fn v2(headers: &HeaderMap) -> Response {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("protobuf") {
        return json_bytes_response(
            StatusCode::OK,
            Vec::new(),
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        );
    }
    let doc = json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION}, "paths": {}, "definitions": {}});
    json_bytes_response(
        StatusCode::OK,
        serde_json::to_vec(&doc).unwrap_or_default(),
        "application/json",
    )
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The document for one group-version.
pub(crate) fn gv_document(snapshot: &Snapshot, group: &str, version: &str) -> Option<Value> {
    let resources = snapshot.group_version(group, version);
    if resources.is_empty() {
        return None;
    }
    let prefix = format!("/{}", gv_path(group, version));
    let mut paths = Map::new();
    let param = |name: &str, loc: &str| json!({"name": name, "in": loc, "schema": {"type": "string", "uniqueItems": true}});
    for r in resources.iter().filter(|r| !r.is_virtual) {
        let gvk = json!({"group": group, "version": version, "kind": r.kind});
        let base = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", r.resource)
        } else {
            format!("{prefix}/{}", r.resource)
        };
        let responses = json!({"200": {"description": "OK"}});
        let mut item_params = vec![param("name", "path")];
        if r.namespaced {
            item_params.push(param("namespace", "path"));
        }
        let op = |id: &str, action: &str, extra: Vec<Value>| {
            json!({
                "operationId": format!("{id}{}", r.kind),
                "parameters": extra,
                "responses": responses,
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
            })
        };
        let write_params = || {
            vec![
                param("dryRun", "query"),
                param("fieldManager", "query"),
                param("fieldValidation", "query"),
            ]
        };
        let mut patch_params = write_params();
        patch_params.push(param("force", "query"));
        paths.insert(
            format!("{base}/{{name}}"),
            json!({
                "get": op("read", "get", vec![]),
                "put": op("replace", "put", write_params()),
                "patch": op("patch", "patch", patch_params.clone()),
                "delete": op("delete", "delete", vec![param("dryRun", "query")]),
                "parameters": item_params,
            }),
        );
        paths.insert(
            base.clone(),
            json!({
                "get": op("list", "list", vec![param("labelSelector", "query"), param("fieldSelector", "query"), param("limit", "query"), param("continue", "query"), param("watch", "query")]),
                "post": op("create", "post", write_params()),
                "delete": op("deletecollection", "deletecollection", vec![]),
            }),
        );
        for sub in ["status", "scale"] {
            let has = if sub == "status" {
                r.status
            } else {
                r.scale.is_some()
            };
            if has {
                let sub_gvk = if sub == "scale" {
                    json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
                } else {
                    gvk.clone()
                };
                let mk = |id: &str, action: &str, extra: Vec<Value>| json!({"operationId": format!("{id}{}{}", r.kind, sub), "parameters": extra, "responses": responses, "x-kubernetes-action": action, "x-kubernetes-group-version-kind": sub_gvk});
                paths.insert(
                    format!("{base}/{{name}}/{sub}"),
                    json!({"get": mk("read", "get", vec![]), "put": mk("replace", "put", write_params()), "patch": mk("patch", "patch", patch_params.clone())}),
                );
            }
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": crate::openapi_schemas::component_schemas(&resources)},
    }))
}

/// One group-version's document, serialized, with its hash.
#[derive(Debug)]
pub(crate) struct Rendered {
    pub bytes: Vec<u8>,
    pub hash: String,
}

/// Rendered documents by (group, version).
pub(crate) type RenderedCache = parking_lot::Mutex<HashMap<(String, String), Arc<Rendered>>>;

/// Documents of group-versions with only built-in kinds: the same in every server.
fn builtin_cache() -> &'static RenderedCache {
    static CACHE: OnceLock<RenderedCache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The document of one group-version, from the cache or rendered now.
pub(crate) fn rendered(snapshot: &Snapshot, group: &str, version: &str) -> Option<Arc<Rendered>> {
    let resources = snapshot.group_version(group, version);
    if resources.is_empty() {
        return None;
    }
    let cache = if resources.iter().all(|r| r.crd.is_none()) {
        builtin_cache()
    } else {
        &snapshot.openapi_cache
    };
    let key = (group.to_string(), version.to_string());
    if let Some(hit) = cache.lock().get(&key) {
        return Some(hit.clone());
    }
    let doc = gv_document(snapshot, group, version)?;
    let bytes = serde_json::to_vec(&doc).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    let hash = digest.iter().take(32).map(|b| format!("{b:02X}")).collect();
    let out = Arc::new(Rendered { bytes, hash });
    cache.lock().insert(key, out.clone());
    Some(out)
}

/// `GET /openapi/v3`
pub(crate) fn v3_index(snapshot: &Snapshot) -> Response {
    let mut paths = Map::new();
    for g in &snapshot.groups {
        for v in &g.versions {
            if let Some(doc) = rendered(snapshot, &g.name, v) {
                let p = gv_path(&g.name, v);
                paths.insert(
                    p.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", doc.hash)}),
                );
            }
        }
    }
    let body = json!({"paths": paths});
    json_bytes_response(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
        "application/json",
    )
}

/// `GET /openapi/v3/{api/v1 | apis/G/V}`
pub(crate) fn v3_document(snapshot: &Snapshot, rest: &str) -> Option<Response> {
    let parts: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let (group, version) = match parts.as_slice() {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return None,
    };
    let doc = rendered(snapshot, group, version)?;
    let mut resp = json_bytes_response(StatusCode::OK, doc.bytes.clone(), "application/json");
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, immutable"),
    );
    resp.headers_mut().insert(
        http::header::ETAG,
        http::HeaderValue::from_str(&format!("\"{}\"", doc.hash))
            .unwrap_or(http::HeaderValue::from_static("\"0\"")),
    );
    Some(resp)
}
