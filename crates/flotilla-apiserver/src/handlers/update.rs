//! PUT: replace an object (or its status) through the store's read-modify-write loop.

use axum::response::Response;
use flotilla_core::status::ApiError;
use http::StatusCode;

use super::{Req, with_warnings};
use crate::state::SharedState;
use crate::store::update::update_with;

/// `PUT .../{resource}/{name}[/status]`
pub(crate) async fn update(state: SharedState, req: Req) -> Result<Response, ApiError> {
    let opts = req.write_options()?;
    let body = crate::codec::decode_object(&req.headers, &req.body)?;
    let sub = req.info.subresource.clone();
    let allow_create = false;
    let updated = update_with(
        &state,
        &req.resource,
        &req.info.namespace,
        &req.info.name,
        &opts,
        &sub,
        &req.user,
        allow_create,
        |_current| Ok(body.clone()),
    )
    .await?;
    let code = if updated.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let out = crate::convert::to_served(&req.resource, updated.object);
    Ok(with_warnings(
        crate::metadata_only::object_response(&req.headers, code, &out),
        &updated.warnings,
    ))
}
