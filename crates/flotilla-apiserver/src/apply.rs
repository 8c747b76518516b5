//! Server-side apply (`application/apply-patch+yaml`): create if absent, merge the applied
//! configuration, record the manager's `Apply` field set in `managedFields`.

use axum::response::Response;
use flotilla_core::status::ApiError;
use http::StatusCode;
use serde_json::{Value, json};

use crate::codec::json_response;
use crate::handlers::update::update_with;
use crate::handlers::{Req, WriteOptions, with_warnings};
use crate::objects::{meta_mut, now_rfc3339};
use crate::registry::ResourceInfo;
use crate::state::SharedState;

/// Merges `applied` into `current` (lists replaced or merged by key for built-ins).
fn merge(info: &ResourceInfo, current: &Value, applied: &Value) -> Result<Value, ApiError> {
    match flotilla_core::patch::builtin_merge_keys(&info.group, &info.kind) {
        Some(keys) => flotilla_core::patch::strategic_merge(current, applied, &keys)
            .map_err(|e| ApiError::bad_request(e.to_string())),
        None => flotilla_core::patch::merge_patch(current, applied)
            .map_err(|e| ApiError::bad_request(e.to_string())),
    }
}

fn apply_entry(
    obj: &mut Value,
    manager: &str,
    api_version: &str,
    applied: &Value,
    subresource: &str,
) {
    let fields = crate::managed::fields_of(applied, subresource == "status");
    let mut entries: Vec<Value> = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    entries.retain(|e| {
        !(e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some("Apply"))
    });
    let mut entry = json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    });
    if !subresource.is_empty() {
        entry["subresource"] = json!(subresource);
    }
    entries.push(entry);
    meta_mut(obj).insert("managedFields".into(), Value::Array(entries));
}

/// `PATCH` with `application/apply-patch+yaml`.
pub async fn apply(
    state: &SharedState,
    req: &Req,
    info: &ResourceInfo,
    applied: &Value,
    opts: &WriteOptions,
    subresource: &str,
) -> Result<Response, ApiError> {
    let mut applied = applied.clone();
    crate::validation::check_type_meta(info, &mut applied)?;
    let manager = opts.field_manager.clone();
    let mut opts = opts.clone();
    opts.keep_managed_fields = true;
    let opts = &opts;
    let api_version = info.api_version();
    let updated = update_with(
        state,
        info,
        &req.info.namespace,
        &req.info.name,
        opts,
        subresource,
        &req.user,
        true,
        |current| {
            let mut out = match current {
                None => {
                    let mut o = applied.clone();
                    meta_mut(&mut o).insert("name".into(), json!(req.info.name));
                    o
                }
                Some(cur) => {
                    let mut o = merge(info, cur, &applied)?;
                    meta_mut(&mut o).remove("resourceVersion");
                    o
                }
            };
            apply_entry(&mut out, &manager, &api_version, &applied, subresource);
            Ok(out)
        },
    )
    .await?;
    let code = if updated.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let out = crate::convert::to_served(info, updated.object);
    Ok(with_warnings(json_response(code, &out), &updated.warnings))
}
