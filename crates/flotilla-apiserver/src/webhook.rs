//! `POST /api/webhook`: push notifications from Git servers, handed to whatever the binary
//! registered (the hub's GitOps controller). Git servers send no Kubernetes credentials, so
//! the path is open, as Argo CD's is; the handler decides what a request may do (it only
//! triggers a fetch from the repository, never applies the payload) and may require a
//! signature. A server without a handler answers 404.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};

/// The path served.
pub const PATH: &str = "/api/webhook";

/// The handler's answer: an HTTP status code and a one-line message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookReply {
    /// HTTP status code.
    pub code: u16,
    /// Plain-text body.
    pub message: String,
}

/// Receives the request headers and body of each push notification.
pub type WebhookHandler = Arc<dyn Fn(&HeaderMap, &[u8]) -> WebhookReply + Send + Sync>;

/// Serves one notification with `handler`.
pub fn serve(handler: &WebhookHandler, headers: &HeaderMap, body: &[u8]) -> Response {
    let reply = handler(headers, body);
    let code = StatusCode::from_u16(reply.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (code, format!("{}\n", reply.message)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
