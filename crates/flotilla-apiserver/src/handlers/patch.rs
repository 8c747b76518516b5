//! PATCH: JSON patch, merge patch, strategic merge patch (built-in kinds) and server-side
//! apply, each applied to the current object inside the optimistic-concurrency loop.

use axum::response::Response;
use flotilla_core::patch::{
    PatchType, builtin_merge_keys, json_patch, merge_patch, strategic_merge,
};
use flotilla_core::status::ApiError;
use http::StatusCode;
use serde_json::Value;

use super::{Req, with_warnings};
use crate::objects::meta_mut;
use crate::registry::ResourceInfo;
use crate::state::SharedState;
use crate::store::update::update_with;

/// The patch body, parsed for its type.
pub(crate) enum ParsedPatch {
    Json(Value),
    Merge(Value),
    Strategic(Value),
    Apply(Value),
}

/// Reads the patch type from Content-Type and parses the body.
pub(crate) fn parse_patch(req: &Req, info: &ResourceInfo) -> Result<ParsedPatch, ApiError> {
    let ct = crate::codec::content_type(&req.headers);
    let accepted = if info.is_builtin() {
        "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
    } else {
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    };
    let unsupported = || {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {accepted}"
            ),
        )
    };
    let mut ty = PatchType::from_content_type(&ct).ok_or_else(unsupported)?;
    if ty == PatchType::StrategicMerge && info.kind == "Scale" {
        // Scale has no lists: strategic merge is a merge patch.
        ty = PatchType::Merge;
    }
    if ty == PatchType::StrategicMerge && builtin_merge_keys(&info.group, &info.kind).is_none() {
        return Err(unsupported());
    }
    let parse_json = |body: &[u8]| -> Result<Value, ApiError> {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
    };
    Ok(match ty {
        PatchType::Json => ParsedPatch::Json(parse_json(&req.body)?),
        PatchType::Merge => ParsedPatch::Merge(parse_json(&req.body)?),
        PatchType::StrategicMerge => ParsedPatch::Strategic(parse_json(&req.body)?),
        PatchType::Apply => {
            let v = crate::codec::decode_bytes(crate::codec::BodyFormat::Yaml, &req.body)?;
            ParsedPatch::Apply(v)
        }
    })
}

/// Applies a non-apply patch to `current`.
pub(crate) fn apply_patch(
    info: &ResourceInfo,
    current: &Value,
    patch: &ParsedPatch,
) -> Result<Value, ApiError> {
    let out = match patch {
        ParsedPatch::Json(p) => json_patch(current, p).map_err(|e| match e {
            flotilla_core::patch::JsonPatchError::Decode(m) => ApiError::bad_request(m),
            flotilla_core::patch::JsonPatchError::TooManyOperations(_) => {
                ApiError::new(413, "RequestEntityTooLarge", e.to_string())
            }
            flotilla_core::patch::JsonPatchError::Apply { message, .. } => {
                ApiError::new(422, "Invalid", message)
            }
        })?,
        ParsedPatch::Merge(p) => {
            merge_patch(current, p).map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        ParsedPatch::Strategic(p) => {
            let keys = builtin_merge_keys(&info.group, &info.kind).ok_or_else(|| {
                ApiError::unsupported_media_type("application/strategic-merge-patch+json")
            })?;
            strategic_merge(current, p, &keys).map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        ParsedPatch::Apply(_) => {
            return Err(ApiError::internal(
                "apply patches go through server-side apply",
            ));
        }
    };
    if !out.is_object() {
        return Err(ApiError::bad_request("the patch result is not an object"));
    }
    Ok(out)
}

/// Whether the patch itself pins a resourceVersion (a precondition).
fn patch_pins_rv(patch: &ParsedPatch) -> bool {
    match patch {
        ParsedPatch::Merge(p) | ParsedPatch::Strategic(p) | ParsedPatch::Apply(p) => p
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty()),
        ParsedPatch::Json(p) => p.as_array().is_some_and(|ops| {
            ops.iter().any(|op| {
                op.get("path").and_then(Value::as_str) == Some("/metadata/resourceVersion")
                    && op.get("op").and_then(Value::as_str) != Some("test")
            })
        }),
    }
}

/// `PATCH .../{resource}/{name}[/status]`
pub(crate) async fn patch(state: SharedState, req: Req) -> Result<Response, ApiError> {
    let info = req.resource.clone();
    let patch = parse_patch(&req, &info)?;
    let mut opts = req.write_options()?;
    let sub = req.info.subresource.clone();
    if let ParsedPatch::Apply(applied) = &patch {
        let manager = req.q("fieldManager").unwrap_or("").to_string();
        if manager.is_empty() {
            return Err(ApiError::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        opts.field_manager = manager;
        return crate::apply::apply(&state, &req, &info, applied, &opts, &sub).await;
    }
    let pinned = patch_pins_rv(&patch);
    let updated = update_with(
        &state,
        &info,
        &req.info.namespace,
        &req.info.name,
        &opts,
        &sub,
        &req.user,
        false,
        |current| {
            let current = current.expect("patch never creates");
            let mut out = apply_patch(&info, current, &patch)?;
            if !pinned {
                meta_mut(&mut out).remove("resourceVersion");
            }
            Ok(out)
        },
    )
    .await?;
    let out = crate::convert::to_served(&info, updated.object);
    Ok(with_warnings(
        crate::metadata_only::object_response(&req.headers, StatusCode::OK, &out),
        &updated.warnings,
    ))
}
