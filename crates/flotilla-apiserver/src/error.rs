//! The one place where every API error becomes a Kubernetes `v1 Status` response.

use axum::response::{IntoResponse, Response};
use flotilla_core::status::ApiError;
use http::{HeaderValue, StatusCode, header};

/// Put into every error response's extensions: the audit event copies the Status's
/// `status`, `reason`, `message`, `details` and `code` into its `responseStatus`, as
/// kube-apiserver's does for every Status it answers with.
#[derive(Debug, Clone)]
pub(crate) struct FailureStatus(pub ApiError);

/// The `v1 Status` response for `e`.
pub(crate) fn status_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(&e.to_status()).unwrap_or_default();
    let mut resp = (code, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(secs) = e.retry_after_seconds
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp.extensions_mut().insert(FailureStatus(e.clone()));
    resp
}

/// Maps a storage failure that the caller did not handle itself: an unreachable store (etcd
/// without quorum) is 503 ServiceUnavailable naming the cause, anything else an internal error.
pub(crate) fn storage_error(e: flotilla_storage::Error) -> ApiError {
    match e {
        flotilla_storage::Error::Compacted {
            requested,
            compacted,
        } => ApiError::expired(format!(
            "too old resource version: {requested} ({compacted})"
        )),
        flotilla_storage::Error::Unavailable(cause) => {
            ApiError::service_unavailable(format!("storage is unavailable: {cause}"))
        }
        other => ApiError::internal(other.to_string()),
    }
}
