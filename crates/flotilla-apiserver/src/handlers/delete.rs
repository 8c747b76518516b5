//! DELETE of one object (finalizers, `deletionTimestamp`, propagation policies,
//! preconditions, dry run) and of collections.

use axum::response::Response;
use flotilla_core::status::ApiError;
use http::StatusCode;
use serde_json::{Value, json};

use super::Req;
use super::list::{Filter, read_page};
use crate::codec::json_response;
use crate::objects::{self, meta_mut, meta_str, now_rfc3339};
use crate::registry::ResourceInfo;
use crate::state::{ApiState, SharedState};

/// The finalizer that makes the garbage collector delete dependents first.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer that makes the garbage collector orphan dependents first.
pub const ORPHAN: &str = "orphan";

/// `DeleteOptions` from the body and query.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    pub fn from_req(req: &Req) -> Result<DeleteOptions, ApiError> {
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

/// What a delete did.
pub enum Deleted {
    /// Gone from storage.
    Gone(Value),
    /// Marked for deletion; finalizers still pending.
    Pending(Value),
}

/// Deletes (or starts deleting) one object; shared by DELETE, deletecollection, the
/// namespace lifecycle and garbage collection.
pub async fn delete_object(
    state: &ApiState,
    info: &ResourceInfo,
    namespace: &str,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Deleted, ApiError> {
    for _ in 0..8 {
        let (current, revision) = objects::get_existing(state, info, namespace, name).await?;
        let uid = meta_str(&current, "uid");
        if let Some(want) = &opts.precondition_uid
            && want != uid
        {
            return Err(ApiError::conflict(
                &info.group,
                &info.resource,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
                ),
            ));
        }
        if let Some(want) = &opts.precondition_rv {
            let have = meta_str(&current, "resourceVersion");
            if want != have {
                return Err(ApiError::conflict(
                    &info.group,
                    &info.resource,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {have}"
                    ),
                ));
            }
        }
        if info.is_builtin() && info.group.is_empty() && info.kind == "Namespace" {
            return crate::namespace::begin_delete(state, info, current, revision, opts.dry_run)
                .await;
        }
        let mut finalizers = objects::finalizers(&current);
        match opts.propagation.as_deref() {
            Some("Foreground") if !finalizers.iter().any(|f| f == FOREGROUND) => {
                finalizers.push(FOREGROUND.into())
            }
            Some("Orphan") if !finalizers.iter().any(|f| f == ORPHAN) => {
                finalizers.push(ORPHAN.into())
            }
            _ => {}
        }
        if crate::crd::is_crd(info) && !opts.dry_run {
            crate::crd::delete_custom_objects(state, &current).await?;
        }
        if finalizers.is_empty() {
            if opts.dry_run {
                return Ok(Deleted::Gone(current));
            }
            match objects::delete_now(state, info, &current, revision).await {
                Ok(obj) => return Ok(Deleted::Gone(obj)),
                Err(e) if e.reason == "Conflict" => continue,
                Err(e) => return Err(e),
            }
        }
        let already = !meta_str(&current, "deletionTimestamp").is_empty();
        let mut next = current.clone();
        {
            let meta = meta_mut(&mut next);
            if !already {
                meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
                meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
            meta.insert("finalizers".into(), json!(finalizers));
        }
        if next == current {
            return Ok(Deleted::Pending(current));
        }
        if opts.dry_run {
            return Ok(Deleted::Pending(next));
        }
        if !already && info.generation_tracked_on_delete() {
            let g = current
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            meta_mut(&mut next).insert("generation".into(), json!(g));
        }
        match objects::update(state, info, &next, revision).await {
            Ok(objects::Written::Stored(obj)) => return Ok(Deleted::Pending(obj)),
            Ok(objects::Written::Deleted(obj)) => return Ok(Deleted::Gone(obj)),
            Err(e) if e.reason == "Conflict" => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(
        &info.group,
        &info.resource,
        name,
        "the object is being modified concurrently; please retry",
    ))
}

impl ResourceInfo {
    /// kube-apiserver bumps `generation` when a deletion starts on objects that track it.
    pub fn generation_tracked_on_delete(&self) -> bool {
        self.tracks_generation || self.crd.is_some()
    }
}

/// `DELETE .../{resource}/{name}`
pub async fn delete(state: SharedState, req: Req) -> Result<Response, ApiError> {
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
pub async fn delete_collection(state: SharedState, req: Req) -> Result<Response, ApiError> {
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
