//! DELETE of one object and of collections (deletecollection), through the store.

use axum::response::Response;
use flotilla_core::status::ApiError;
use http::StatusCode;
use serde_json::{Value, json};

use super::Req;
use super::list::{Filter, read_page};
use crate::codec::json_response;
use crate::objects::meta_str;
use crate::state::SharedState;
pub(crate) use crate::store::delete::{DeleteOptions, Deleted, delete_object};

impl DeleteOptions {
    pub(crate) fn from_req(req: &Req) -> Result<DeleteOptions, ApiError> {
        let mut o = DeleteOptions {
            dry_run: req.dry_run()?,
            propagation: req.q("propagationPolicy").map(str::to_string),
            ..Default::default()
        };
        if !req.body.is_empty() {
            let body =
                crate::codec::decode_bytes(crate::codec::body_format(&req.headers), &req.body)?;
            if let Some(p) = body.get("propagationPolicy").and_then(Value::as_str) {
                o.propagation = Some(p.to_string());
            }
            if body.get("orphanDependents") == Some(&Value::Bool(true)) && o.propagation.is_none() {
                o.propagation = Some("Orphan".into());
            }
            if let Some(p) = body.get("preconditions") {
                o.precondition_uid = p.get("uid").and_then(Value::as_str).map(str::to_string);
                o.precondition_rv = p
                    .get("resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            if let Some(d) = body.get("dryRun").and_then(Value::as_array)
                && d.iter().any(|v| v == "All")
            {
                o.dry_run = true;
            }
        }
        match o.propagation.as_deref() {
            None | Some("Background") | Some("Foreground") | Some("Orphan") => Ok(o),
            Some(other) => Err(ApiError::bad_request(format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
            ))),
        }
    }
}

/// `DELETE .../{resource}/{name}`
pub(crate) async fn delete(state: SharedState, req: Req) -> Result<Response, ApiError> {
    let opts = DeleteOptions::from_req(&req)?;
    let info = &req.resource;
    match delete_object(&state, info, &req.info.namespace, &req.info.name, &opts).await? {
        Deleted::Pending(obj) => Ok(crate::metadata_only::object_response(
            &req.headers,
            StatusCode::OK,
            &crate::convert::to_served(info, obj),
        )),
        Deleted::Gone(obj) => {
            if info.crd.is_some() {
                return Ok(crate::metadata_only::object_response(
                    &req.headers,
                    StatusCode::OK,
                    &obj,
                ));
            }
            let mut details = json!({
                "name": req.info.name,
                "kind": info.resource,
                "uid": meta_str(&obj, "uid"),
            });
            if !info.group.is_empty() {
                details["group"] = json!(info.group);
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
            ))
        }
    }
}

/// `DELETE .../{resource}` (deletecollection).
pub(crate) async fn delete_collection(state: SharedState, req: Req) -> Result<Response, ApiError> {
    let opts = DeleteOptions::from_req(&req)?;
    let filter = Filter::from_req(&req)?;
    let info = &req.resource;
    let page = read_page(&state, info, &req.info.namespace, &filter, 0, None).await?;
    let mut deleted = Vec::new();
    for obj in page.items {
        let ns = meta_str(&obj, "namespace").to_string();
        let name = meta_str(&obj, "name").to_string();
        match delete_object(&state, info, &ns, &name, &opts).await {
            Ok(Deleted::Gone(o)) | Ok(Deleted::Pending(o)) => {
                deleted.push(crate::convert::to_served(info, o))
            }
            Err(e) if e.reason == "NotFound" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": info.list_kind(),
            "apiVersion": info.api_version(),
            "metadata": {"resourceVersion": page.revision.to_string()},
            "items": deleted,
        }),
    ))
}
