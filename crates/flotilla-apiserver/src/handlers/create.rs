//! POST: create an object.

use axum::response::Response;
use flotilla_core::status::ApiError;
use http::StatusCode;

use super::{Req, with_warnings};
use crate::error::status_response;
use crate::objects::meta_str;
use crate::state::SharedState;
use crate::store::create::storage_info;
use crate::validation;

/// `POST /api(s)/.../{resource}`
///
/// The audit event names the object even when the create is refused after decoding (as
/// kube-apiserver's fills `objectRef.name` from the request object).
pub(crate) async fn create(state: SharedState, req: Req) -> Result<Response, ApiError> {
    let opts = req.write_options()?;
    let mut obj = crate::codec::decode_object(&req.headers, &req.body)?;
    validation::check_type_meta(&req.resource, &mut obj)?;
    let requested_name = meta_str(&obj, "name").to_string();
    let (mut resp, name) = match store_new(&state, &req, obj, &opts).await {
        Ok(done) => done,
        Err(e) => (status_response(&e), requested_name),
    };
    if !name.is_empty() {
        resp.extensions_mut()
            .insert(crate::auth::AuditObjectName(name));
    }
    Ok(resp)
}

/// Stores the decoded object; the response and the stored object's name.
async fn store_new(
    state: &SharedState,
    req: &Req,
    obj: serde_json::Value,
    opts: &super::WriteOptions,
) -> Result<(Response, String), ApiError> {
    let obj = crate::convert::to_storage(&req.resource, obj);
    let sinfo = storage_info(state, &req.resource);
    let (out, warnings) =
        crate::store::create::create(state, &sinfo, &req.info.namespace, obj, opts, &req.user)
            .await?;
    let name = meta_str(&out, "name").to_string();
    let out = crate::convert::to_served(&req.resource, out);
    let resp = with_warnings(
        crate::metadata_only::object_response(&req.headers, StatusCode::CREATED, &out),
        &warnings,
    );
    Ok((resp, name))
}
