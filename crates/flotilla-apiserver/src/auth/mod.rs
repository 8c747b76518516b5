//! Authentication, impersonation, RBAC authorization, audit and token issuance.
//!
//! The router installs [`middleware`] on every request. It authenticates the caller
//! (bearer token, or the client certificate the TLS layer put in the request's
//! extensions as [`PeerCertificates`]), applies and strips `Impersonate-*` headers,
//! authorizes with RBAC, inserts the resulting [`Identity`] (and the parsed
//! [`RequestInfo`]) into the request extensions for handlers, and writes the audit event
//! once the response is known.
//!
//! What the router/handlers wire in (the interface for the resource API):
//! - [`middleware`] as an axum `from_fn_with_state` layer with `Arc<Auth>`.
//! - Virtual create-only resources: when [`is_virtual_resource`] is true for a POST, call
//!   [`handle_virtual_create`]`(&auth, &identity, &info, body).await` and answer the
//!   returned object with 201 (errors are ordinary `ApiError`s). They are:
//!   `authorization.k8s.io/v1` selfsubjectaccessreviews, subjectaccessreviews,
//!   localsubjectaccessreviews (namespaced), selfsubjectrulesreviews;
//!   `authentication.k8s.io/v1` (and v1beta1) selfsubjectreviews, tokenreviews;
//!   core `serviceaccounts/<name>/token` (TokenRequest). Authorization already happened in
//!   the middleware (verb `create` on the resource / `serviceaccounts/token`).
//! - Optional: the create handler may put [`AuditObjectName`] into the response extensions
//!   so the audit event's `objectRef.name` names the created object; the connection may
//!   put its peer `std::net::SocketAddr` (or axum `ConnectInfo<SocketAddr>`) into the
//!   request extensions for `sourceIPs`.
//! - RBAC writes are checked for escalation here, in the middleware (the body of a
//!   create/update/patch of a Role, ClusterRole, RoleBinding or ClusterRoleBinding is read
//!   and the would-be object checked); handlers need do nothing. [`check_rbac_escalation`]
//!   is there for callers that build RBAC objects themselves.
//! - [`Auth::bootstrap_objects`]: the RBAC defaults to create at first start.

mod audit;
mod authn;
mod bootstrap;
mod escalation;
pub mod impersonation;
pub mod rbac;
mod reviews;
mod service_accounts;
pub mod tokens;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::response::IntoResponse;
use chrono::Utc;
use flotilla_core::status::ApiError;
use flotilla_core::user::{SYSTEM_MASTERS, UserInfo};

pub use audit::AUDIT_FILE;
pub use rbac::{Attributes, Decision};

use crate::request_info::RequestInfo;

/// The verified client certificate chain of the TLS connection, if the client sent one.
#[derive(Debug, Clone)]
pub struct PeerCertificates(pub Vec<rustls::pki_types::CertificateDer<'static>>);

/// Who a request runs as.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The identity requests are served and authorized as (impersonated if asked).
    pub user: UserInfo,
    /// The authenticated caller, when different from `user` (impersonation).
    pub impersonator: Option<UserInfo>,
}

/// Put into a create response's extensions by the handler so the audit event names the
/// object (a POST's path has no name).
#[derive(Debug, Clone)]
pub struct AuditObjectName(pub String);

/// Errors setting up the auth layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("auth: needs a running tokio runtime")]
    NoRuntime,
    #[error(transparent)]
    Tokens(#[from] tokens::Error),
    #[error(transparent)]
    Audit(#[from] audit::Error),
}

/// Shared authentication/authorization state.
pub struct Auth {
    store: flotilla_storage::SharedBackend,
    rbac: Arc<rbac::RbacCache>,
    tokens: tokens::TokenSigner,
    audit: audit::AuditLog,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

impl Auth {
    /// Loads the token signing key and opens the audit log in `data_dir`, and starts the
    /// RBAC cache (list + watch of the store) and the `default` ServiceAccount controller
    /// on the current tokio runtime.
    pub fn new(
        store: flotilla_storage::SharedBackend,
        _pki: &crate::pki::ClusterPki,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<Arc<Auth>> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::NoRuntime.into());
        }
        let tokens = tokens::TokenSigner::load_or_create(data_dir).map_err(Error::from)?;
        let audit = audit::AuditLog::open(data_dir).map_err(Error::from)?;
        let rbac = rbac::RbacCache::new(store.clone());
        rbac.spawn();
        service_accounts::spawn(store.clone());
        Ok(Arc::new(Auth {
            store,
            rbac,
            tokens,
            audit,
        }))
    }

    /// Objects the API server creates at first start (bootstrap ClusterRoles and bindings).
    pub fn bootstrap_objects() -> Vec<serde_json::Value> {
        bootstrap::objects()
    }

    /// RBAC's decision for `user` (`system:masters` may do anything).
    pub async fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        if user.in_group(SYSTEM_MASTERS) {
            return Decision::Allow(String::new());
        }
        self.rbac.authorize(user, attrs).await
    }

    /// Authenticates a request from its credentials: `Ok(None)` when it has none.
    pub async fn authenticate(
        &self,
        headers: &http::HeaderMap,
        peer: Option<&PeerCertificates>,
    ) -> Result<Option<UserInfo>, authn::Error> {
        if let Some(certs) = peer.filter(|c| !c.0.is_empty()) {
            return authn::user_from_certificate(certs).map(Some);
        }
        match authn::bearer_token(headers) {
            Some(token) => authn::user_from_token(&self.tokens, &self.store, token)
                .await
                .map(Some),
            None => Ok(None),
        }
    }
}

/// Whether the request is for a create-only virtual resource answered by
/// [`handle_virtual_create`].
pub fn is_virtual_resource(info: &RequestInfo) -> bool {
    reviews::is_virtual(info)
}

/// Answers a create on a virtual resource (access/rules/subject reviews, TokenReview,
/// TokenRequest); the returned object is the 201 response body.
pub async fn handle_virtual_create(
    auth: &Auth,
    identity: &Identity,
    info: &RequestInfo,
    body: serde_json::Value,
) -> Result<serde_json::Value, ApiError> {
    reviews::handle_create(auth, identity, info, body).await
}

/// Refuses a create/update/patch of a Role, ClusterRole, RoleBinding or ClusterRoleBinding
/// that would grant the caller rights they do not hold (Kubernetes' escalation
/// prevention; verbs `escalate` and `bind` lift it). `object` is the object about to be
/// stored; any other request passes.
pub async fn check_rbac_escalation(
    auth: &Auth,
    identity: &Identity,
    info: &RequestInfo,
    object: &serde_json::Value,
) -> Result<(), ApiError> {
    escalation::check(auth, identity, info, object).await
}

/// Paths anyone may reach without credentials (the Git push webhook too: Git servers send
/// no Kubernetes credentials; see `crate::webhook`).
fn is_open_path(path: &str) -> bool {
    if path == crate::webhook::PATH {
        return true;
    }
    ["/healthz", "/readyz", "/livez", "/version"]
        .iter()
        .any(|p| {
            path == *p
                || path
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

fn anonymous() -> UserInfo {
    UserInfo::new("system:anonymous", vec!["system:unauthenticated".into()])
}

fn error_response(e: &ApiError) -> axum::response::Response {
    let code =
        http::StatusCode::from_u16(e.code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        e.to_status().to_string(),
    )
        .into_response()
}

/// What the middleware knows about a request when it writes the audit event.
struct Pending {
    audit_id: String,
    request_uri: String,
    info: RequestInfo,
    source_ip: Option<String>,
    user_agent: Option<String>,
    received: chrono::DateTime<Utc>,
}

impl Pending {
    fn write(
        &self,
        auth: &Auth,
        user: Option<&UserInfo>,
        impersonated: Option<&UserInfo>,
        code: u16,
        failure: Option<&ApiError>,
        decision: Option<&Decision>,
        object_name: Option<&str>,
    ) {
        if !audit::should_audit(&self.info, code) {
            return;
        }
        let decision = decision.map(|d| (if d.allowed() { "allow" } else { "forbid" }, d.reason()));
        let event = audit::event(&audit::Record {
            audit_id: &self.audit_id,
            request_uri: &self.request_uri,
            info: &self.info,
            user,
            impersonated,
            source_ip: self.source_ip.clone(),
            user_agent: self.user_agent.as_deref(),
            object_name,
            code,
            failure: failure.map(|e| (e.reason.as_str(), e.message.as_str())),
            decision,
            received: self.received,
        });
        auth.audit.record(&event);
    }
}

/// The axum middleware: authenticate → impersonate → authorize → (handler) → audit.
pub async fn middleware(
    axum::extract::State(auth): axum::extract::State<Arc<Auth>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let received = Utc::now();
    let path = request.uri().path().to_string();
    let query = crate::request_info::query_params(request.uri());
    let info = crate::request_info::parse(request.method(), &path, &query);
    let source_ip = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .or_else(|| request.extensions().get::<SocketAddr>().copied())
        .map(|a| a.ip().to_string());
    let pending = Pending {
        audit_id: uuid::Uuid::new_v4().to_string(),
        request_uri: request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| path.clone()),
        info,
        source_ip,
        user_agent: request
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        received,
    };

    // Authenticate.
    let authenticated = auth
        .authenticate(
            request.headers(),
            request.extensions().get::<PeerCertificates>(),
        )
        .await;
    let caller = match authenticated {
        Ok(Some(user)) => user,
        Ok(None) if is_open_path(&path) => {
            impersonation::strip(request.headers_mut());
            request.extensions_mut().insert(Identity {
                user: anonymous(),
                impersonator: None,
            });
            request.extensions_mut().insert(pending.info);
            return next.run(request).await;
        }
        Ok(None) => {
            let e = ApiError::unauthorized();
            pending.write(&auth, None, None, 401, Some(&e), None, None);
            return error_response(&e);
        }
        Err(err) => {
            tracing::debug!(error = %err, path = %path, "authentication failed");
            let e = ApiError::unauthorized();
            pending.write(&auth, None, None, 401, Some(&e), None, None);
            return error_response(&e);
        }
    };

    // Impersonate.
    let requested = match impersonation::parse(request.headers()) {
        Ok(r) => r,
        Err(e) => {
            pending.write(&auth, Some(&caller), None, e.code, Some(&e), None, None);
            return error_response(&e);
        }
    };
    let identity = match requested {
        None => Identity {
            user: caller,
            impersonator: None,
        },
        Some(requested) => {
            for check in impersonation::checks(&requested) {
                let decision = auth.authorize(&caller, &check).await;
                if !decision.allowed() {
                    let e = rbac::forbidden(&caller.username, &check, decision.reason());
                    pending.write(
                        &auth,
                        Some(&caller),
                        None,
                        403,
                        Some(&e),
                        Some(&decision),
                        None,
                    );
                    return error_response(&e);
                }
            }
            impersonation::strip(request.headers_mut());
            Identity {
                user: impersonation::impersonated_user(&requested),
                impersonator: Some(caller),
            }
        }
    };
    let (actor, impersonated) = match &identity.impersonator {
        Some(real) => (real, Some(&identity.user)),
        None => (&identity.user, None),
    };

    // Authorize.
    let attrs = Attributes::from_request(&pending.info);
    let decision = auth.authorize(&identity.user, &attrs).await;
    if !decision.allowed() {
        let e = rbac::forbidden(&identity.user.username, &attrs, decision.reason());
        pending.write(
            &auth,
            Some(actor),
            impersonated,
            403,
            Some(&e),
            Some(&decision),
            None,
        );
        return error_response(&e);
    }

    // RBAC writes may not grant more than their author holds.
    if escalation::is_rbac_write(&pending.info) && !identity.user.in_group(SYSTEM_MASTERS) {
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let (parts, body) = request.into_parts();
        let bytes = match crate::codec::read_body(body).await {
            Ok(b) => b,
            Err(e) => {
                pending.write(
                    &auth,
                    Some(actor),
                    impersonated,
                    e.code,
                    Some(&e),
                    None,
                    None,
                );
                return error_response(&e);
            }
        };
        if let Some(object) =
            escalation::prospective_object(&auth, &pending.info, &content_type, &bytes).await
            && let Err(e) = escalation::check(&auth, &identity, &pending.info, &object).await
        {
            pending.write(
                &auth,
                Some(actor),
                impersonated,
                e.code,
                Some(&e),
                None,
                None,
            );
            return error_response(&e);
        }
        request = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
    }

    request.extensions_mut().insert(identity.clone());
    request.extensions_mut().insert(pending.info.clone());
    let response = next.run(request).await;

    let code = response.status().as_u16();
    let object_name = response
        .extensions()
        .get::<AuditObjectName>()
        .map(|n| n.0.clone());
    let (actor, impersonated) = match &identity.impersonator {
        Some(real) => (real, Some(&identity.user)),
        None => (&identity.user, None),
    };
    pending.write(
        &auth,
        Some(actor),
        impersonated,
        code,
        None,
        Some(&decision),
        object_name.as_deref(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_paths() {
        for p in [
            "/healthz",
            "/readyz",
            "/livez",
            "/version",
            "/readyz/ping",
            "/api/webhook",
        ] {
            assert!(is_open_path(p), "{p}");
        }
        for p in [
            "/api",
            "/healthzx",
            "/metrics",
            "/openapi/v2",
            "/api/webhook/x",
        ] {
            assert!(!is_open_path(p), "{p}");
        }
    }
}

#[cfg(test)]
mod pipeline_tests;
