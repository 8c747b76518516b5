//! GET of one object (and of its `/status`).

use axum::response::Response;
use flotilla_core::status::ApiError;
use http::StatusCode;

use super::Req;
use crate::codec::{Output, json_response, negotiate_output};
use crate::state::SharedState;
use crate::{objects, table};

/// `GET .../{resource}/{name}[/status]`
pub(crate) async fn get(state: SharedState, req: Req) -> Result<Response, ApiError> {
    let (obj, _) = state
        .store
        .get_existing(&req.resource, &req.info.namespace, &req.info.name)
        .await?;
    let obj = crate::convert::to_served(&req.resource, obj);
    let body = match negotiate_output(&req.headers) {
        Output::Object => obj,
        Output::Table { version } => {
            let rv = objects::meta_str(&obj, "resourceVersion").to_string();
            table::table(
                &req.resource,
                std::slice::from_ref(&obj),
                &version,
                table::include_object(&req.query),
                serde_json::json!({"resourceVersion": rv}),
                true,
            )
        }
        Output::Metadata { version } => table::partial_metadata(&obj, &version),
    };
    Ok(json_response(StatusCode::OK, &body))
}
