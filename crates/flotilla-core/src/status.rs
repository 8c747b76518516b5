//! Kubernetes `v1 Status` errors.
//!
//! Every failure the API server returns is an [`ApiError`]; it turns into the exact
//! `Status` body kube-apiserver would send, so kubectl prints it the same way.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One entry of `Status.details.causes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCause {
    /// Machine-readable cause, e.g. `FieldValueRequired`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable explanation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The field at fault, e.g. `spec.replicas`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// A Kubernetes API error: HTTP code, `reason` and message, plus optional details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status code (`Status.code`).
    pub code: u16,
    /// `Status.reason`, e.g. `NotFound`, `Conflict`.
    pub reason: String,
    /// `Status.message`, worded as kube-apiserver words it.
    pub message: String,
    /// `details.name`
    pub name: Option<String>,
    /// `details.group`
    pub group: Option<String>,
    /// `details.kind` (the resource, as kube-apiserver fills it)
    pub kind: Option<String>,
    /// `details.causes`
    pub causes: Vec<StatusCause>,
    /// `details.retryAfterSeconds`
    pub retry_after_seconds: Option<u32>,
}

/// A result whose error is a Kubernetes `Status`.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    /// An error with no details.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.into(),
            message: message.into(),
            name: None,
            group: None,
            kind: None,
            causes: Vec::new(),
            retry_after_seconds: None,
        }
    }

    fn with_details(mut self, group: &str, resource: &str, name: &str) -> Self {
        self.group = Some(group.to_string()).filter(|g| !g.is_empty());
        self.kind = Some(resource.to_string());
        self.name = Some(name.to_string()).filter(|n| !n.is_empty());
        self
    }

    fn qualified(group: &str, resource: &str) -> String {
        if group.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}.{group}")
        }
    }

    /// `configmaps "nope" not found`
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let q = Self::qualified(group, resource);
        ApiError::new(404, "NotFound", format!("{q} \"{name}\" not found"))
            .with_details(group, resource, name)
    }

    /// `configmaps "x" already exists`
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let q = Self::qualified(group, resource);
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{q} \"{name}\" already exists"),
        )
        .with_details(group, resource, name)
    }

    /// `Operation cannot be fulfilled on configmaps "x": <why>`
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let q = Self::qualified(group, resource);
        ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {q} \"{name}\": {why}"),
        )
        .with_details(group, resource, name)
    }

    /// The optimistic-concurrency conflict kubectl users know.
    pub fn stale(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `Deployment.apps "x" is invalid: spec.replicas: Invalid value: -1: must be ...`
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<StatusCause>) -> Self {
        let q = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let summary = match causes.len() {
            0 => String::new(),
            1 => format!(": {}", cause_text(&causes[0])),
            _ => format!(
                ": [{}]",
                causes.iter().map(cause_text).collect::<Vec<_>>().join(", ")
            ),
        };
        let mut e = ApiError::new(
            422,
            "Invalid",
            format!("{q} \"{name}\" is invalid{summary}"),
        )
        .with_details(group, kind, name);
        e.causes = causes;
        e
    }

    /// 400 `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    /// 401 `Unauthorized` (no or invalid credentials).
    pub fn unauthorized() -> Self {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 `Forbidden`; `message` is the full sentence.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(403, "Forbidden", message)
    }

    /// 405 `MethodNotAllowed`.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    /// 415 `UnsupportedMediaType` for a request body in a format the server does not decode.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf; got {content_type}"
            ),
        )
    }

    /// 410 `Expired`, e.g. a resourceVersion or continue token older than the compacted one.
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    /// 413 `RequestEntityTooLarge` for a body over kube-apiserver's 3 MiB limit.
    pub fn too_large() -> Self {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        )
    }

    /// 429 `TooManyRequests` with `details.retryAfterSeconds`.
    pub fn too_many_requests(retry_after_seconds: u32) -> Self {
        let mut e = ApiError::new(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
        );
        e.retry_after_seconds = Some(retry_after_seconds);
        e
    }

    /// 500 `InternalError`, the message prefixed as kube-apiserver prefixes it.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// 503 `ServiceUnavailable`, e.g. storage unreachable.
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        ApiError::new(503, "ServiceUnavailable", message)
    }

    /// The `meta.k8s.io/v1 Status` body (`kind: Status`, `status: Failure`).
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        let mut details = serde_json::Map::new();
        if let Some(n) = &self.name {
            details.insert("name".into(), json!(n));
        }
        if let Some(g) = &self.group {
            details.insert("group".into(), json!(g));
        }
        if let Some(k) = &self.kind {
            details.insert("kind".into(), json!(k));
        }
        if !self.causes.is_empty() {
            details.insert("causes".into(), json!(self.causes));
        }
        if let Some(r) = self.retry_after_seconds {
            details.insert("retryAfterSeconds".into(), json!(r));
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        if self.reason.is_empty() {
            status.as_object_mut().map(|m| m.remove("reason"));
        }
        status
    }
}

fn cause_text(c: &StatusCause) -> String {
    if c.field.is_empty() {
        c.message.clone()
    } else {
        format!("{}: {}", c.field, c.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_matches_kubectl_wording() {
        let e = ApiError::not_found("", "configmaps", "nope");
        assert_eq!(e.message, "configmaps \"nope\" not found");
        let s = e.to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["details"]["kind"], "configmaps");
        let e = ApiError::not_found("apps", "deployments", "demo");
        assert_eq!(e.message, "deployments.apps \"demo\" not found");
    }

    #[test]
    fn invalid_lists_fields() {
        let e = ApiError::invalid(
            "apps",
            "Deployment",
            "web",
            vec![StatusCause {
                reason: "FieldValueInvalid".into(),
                message: "Invalid value: -1: must be greater than or equal to 0".into(),
                field: "spec.replicas".into(),
            }],
        );
        assert_eq!(
            e.message,
            "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(e.code, 422);
    }
}
