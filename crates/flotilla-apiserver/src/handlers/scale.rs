//! The `/scale` subresource: an `autoscaling/v1 Scale` view of a workload's replicas.

use axum::response::Response;
use flotilla_core::selector::LabelSelector;
use flotilla_core::status::ApiError;
use http::StatusCode;
use serde_json::{Value, json};

use super::patch::{ParsedPatch, apply_patch, parse_patch};
use super::{Req, with_warnings};
use crate::codec::json_response;
use crate::objects::{self, meta_mut, meta_str};
use crate::registry::{ResourceInfo, ScalePaths};
use crate::state::SharedState;
use crate::store::update::update_with;

fn pointer(path: &str) -> String {
    path.trim_start_matches('.')
        .split('.')
        .fold(String::new(), |mut acc, p| {
            acc.push('/');
            acc.push_str(p);
            acc
        })
}

/// The Scale view of an object.
pub(crate) fn scale_of(info: &ResourceInfo, paths: &ScalePaths, obj: &Value) -> Value {
    let spec = obj
        .pointer(&pointer(&paths.spec_replicas))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let status = obj
        .pointer(&pointer(&paths.status_replicas))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let selector = if paths.label_selector.is_empty() {
        obj.pointer("/spec/selector")
            .and_then(|s| LabelSelector::from_json(s).ok())
            .map(|s| s.to_string())
            .unwrap_or_default()
    } else {
        obj.pointer(&pointer(&paths.label_selector))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let m = objects::meta(obj);
    let mut meta = json!({
        "name": m.get("name"),
        "uid": m.get("uid"),
        "resourceVersion": m.get("resourceVersion"),
        "creationTimestamp": m.get("creationTimestamp"),
    });
    if info.namespaced {
        meta["namespace"] = json!(m.get("namespace"));
    }
    let mut status_obj = json!({"replicas": status});
    if !selector.is_empty() {
        status_obj["selector"] = json!(selector);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": spec},
        "status": status_obj,
    })
}

fn set_replicas(obj: &mut Value, paths: &ScalePaths, replicas: i64) {
    let ptr = pointer(&paths.spec_replicas);
    let parts: Vec<&str> = ptr.trim_start_matches('/').split('/').collect();
    let mut cur = obj;
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            if let Some(m) = cur.as_object_mut() {
                m.insert((*p).to_string(), json!(replicas));
            }
            return;
        }
        if !cur.get(*p).is_some_and(Value::is_object) {
            cur[*p] = json!({});
        }
        cur = &mut cur[*p];
    }
}

/// GET / PUT / PATCH of `.../{name}/scale`.
pub(crate) async fn handle(state: SharedState, req: Req) -> Result<Response, ApiError> {
    let info = req.resource.clone();
    let paths = info
        .scale
        .clone()
        .ok_or_else(|| ApiError::not_found(&info.group, &info.resource, &req.info.name))?;
    match req.info.verb.as_str() {
        "get" => {
            let (obj, _) = state
                .store
                .get_existing(&info, &req.info.namespace, &req.info.name)
                .await?;
            Ok(json_response(
                StatusCode::OK,
                &scale_of(&info, &paths, &obj),
            ))
        }
        "update" | "patch" => {
            let opts = req.write_options()?;
            let body = if req.info.verb == "update" {
                Some(crate::codec::decode_object(&req.headers, &req.body)?)
            } else {
                None
            };
            let patch = if req.info.verb == "patch" {
                let p = parse_patch(&req, &scale_info())?;
                if matches!(p, ParsedPatch::Apply(_)) {
                    return Err(ApiError::unsupported_media_type(
                        "application/apply-patch+yaml",
                    ));
                }
                Some(p)
            } else {
                None
            };
            let updated = update_with(
                &state,
                &info,
                &req.info.namespace,
                &req.info.name,
                &opts,
                "scale",
                &req.user,
                false,
                |current| {
                    let current = current.expect("scale never creates");
                    let scale = scale_of(&info, &paths, current);
                    let wanted = match (&body, &patch) {
                        (Some(b), _) => b.clone(),
                        (None, Some(p)) => apply_patch(&scale_info(), &scale, p)?,
                        _ => scale.clone(),
                    };
                    let replicas = wanted.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
                    let n = replicas.as_i64().ok_or_else(|| {
                        ApiError::bad_request(format!("Scale in version \"v1\" cannot be handled as a Scale: spec.replicas must be an integer, got {replicas}"))
                    })?;
                    if n < 0 {
                        return Err(ApiError::invalid(
                            "autoscaling",
                            "Scale",
                            meta_str(current, "name"),
                            vec![crate::validation::invalid("spec.replicas", &replicas, "must be greater than or equal to 0")],
                        ));
                    }
                    let rv = meta_str(&wanted, "resourceVersion").to_string();
                    let mut next = current.clone();
                    set_replicas(&mut next, &paths, n);
                    if rv.is_empty() || body.is_none() {
                        meta_mut(&mut next).remove("resourceVersion");
                    } else {
                        meta_mut(&mut next).insert("resourceVersion".into(), json!(rv));
                    }
                    Ok(next)
                },
            )
            .await?;
            let scale = scale_of(&info, &paths, &updated.object);
            Ok(with_warnings(
                json_response(StatusCode::OK, &scale),
                &updated.warnings,
            ))
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

/// A description of the Scale kind itself (for patch parsing: strategic merge works like
/// merge on Scale).
fn scale_info() -> ResourceInfo {
    ResourceInfo {
        group: "autoscaling".into(),
        version: "v1".into(),
        resource: "scale".into(),
        kind: "Scale".into(),
        singular: "scale".into(),
        namespaced: true,
        short_names: vec![],
        categories: vec![],
        verbs: &[],
        status: false,
        scale: None,
        storage_version: "v1".into(),
        crd: None,
        is_virtual: false,
        tracks_generation: false,
    }
}
