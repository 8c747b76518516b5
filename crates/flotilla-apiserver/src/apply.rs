//! Server-side apply (`application/apply-patch+yaml`): create if absent, merge the applied
//! configuration with per-manager field ownership (`metadata.managedFields`), conflicts
//! unless `force=true` — the engine is `flotilla_core::patch::server_side_apply_with`.

use axum::response::Response;
use flotilla_core::patch::{FieldManager, server_side_apply_with};
use flotilla_core::status::ApiError;
use http::StatusCode;
use serde_json::{Value, json};

use crate::handlers::{Req, WriteOptions, with_warnings};
use crate::objects::{meta_mut, now_rfc3339};
use crate::registry::ResourceInfo;
use crate::state::SharedState;
use crate::store::update::update_with;

/// `PATCH` with `application/apply-patch+yaml`.
pub(crate) async fn apply(
    state: &SharedState,
    req: &Req,
    info: &ResourceInfo,
    applied: &Value,
    opts: &WriteOptions,
    subresource: &str,
) -> Result<Response, ApiError> {
    let mut applied = applied.clone();
    crate::validation::check_type_meta(info, &mut applied)?;
    {
        let meta = meta_mut(&mut applied);
        match meta.get("name").and_then(Value::as_str) {
            None | Some("") => {
                meta.insert("name".into(), json!(req.info.name));
            }
            Some(n) if n != req.info.name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({})",
                    req.info.name
                )));
            }
            Some(_) => {}
        }
    }
    let force = req.q_bool("force");
    let manager = opts.field_manager.clone();
    let mut opts = opts.clone();
    opts.keep_managed_fields = true;
    let keys = crate::managed::merge_keys(info);
    let updated = update_with(
        state,
        info,
        &req.info.namespace,
        &req.info.name,
        &opts,
        subresource,
        &req.user,
        true,
        |live| {
            let now = now_rfc3339();
            let fm = FieldManager {
                manager: &manager,
                now: &now,
                subresource: (!subresource.is_empty()).then_some(subresource),
                ignore_status: info.status && subresource != "status",
            };
            let mut out = server_side_apply_with(live, &applied, force, keys.as_ref(), &fm)
                .map_err(|e| e.to_api_error())?;
            if live.is_some() && applied.pointer("/metadata/resourceVersion").is_none() {
                meta_mut(&mut out).remove("resourceVersion");
            }
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
    Ok(with_warnings(
        crate::metadata_only::object_response(&req.headers, code, &out),
        &updated.warnings,
    ))
}
