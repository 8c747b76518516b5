//! Authentication, impersonation, authorization and audit as four layers of the router,
//! outermost first:
//!
//! 1. [`audit`] parses the request's [`RequestInfo`] and, once the response is known, writes
//!    the audit event from what the inner layers noted on the response ([`AuditNote`]).
//! 2. [`authenticate`]: client certificate or bearer token → [`Authenticated`]; no
//!    credentials reach only the open paths (as `system:anonymous`), otherwise 401.
//! 3. [`impersonate`]: `Impersonate-*` headers, each checked with RBAC → [`Identity`].
//! 4. [`authorize`]: RBAC on the request's attributes; 403 with Kubernetes' message.
//!
//! What a write would store is checked for RBAC escalation later, on the final object, by
//! the store's admission hook (`escalation::register`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use chrono::Utc;
use flotilla_core::status::ApiError;
use flotilla_core::user::UserInfo;

use super::{
    Attributes, AuditObjectName, Auth, Decision, Identity, PeerCertificates, anonymous,
    impersonation, is_open_path, rbac,
};
use crate::error::{FailureStatus, status_response};
use crate::request_info::RequestInfo;

/// The authenticated caller (before impersonation).
#[derive(Debug, Clone)]
pub(crate) struct Authenticated(pub UserInfo);

/// What the inner layers tell the audit layer, put into the response's extensions.
#[derive(Debug, Clone, Default)]
struct AuditNote {
    /// No audit event (an open path served anonymously).
    skip: bool,
    /// The authenticated caller.
    actor: Option<UserInfo>,
    /// The user impersonated, if any.
    impersonated: Option<UserInfo>,
    decision: Option<Decision>,
}

/// Wraps `router` in the four auth layers.
pub(crate) fn wrap(router: Router, auth: Arc<Auth>) -> Router {
    router
        .layer(from_fn_with_state(auth.clone(), authorize))
        .layer(from_fn_with_state(auth.clone(), impersonate))
        .layer(from_fn_with_state(auth.clone(), authenticate))
        .layer(from_fn_with_state(auth, audit))
}

/// A refusal with what the audit event should say about it (its Status goes in as for
/// every error response, [`FailureStatus`]).
fn refuse(e: &ApiError, note: AuditNote) -> Response {
    let mut resp = status_response(e);
    resp.extensions_mut().insert(note);
    resp
}

/// The caller (and the impersonated user) as the audit event names them.
fn audit_users(identity: &Identity) -> (UserInfo, Option<UserInfo>) {
    match &identity.impersonator {
        Some(real) => (real.clone(), Some(identity.user.clone())),
        None => (identity.user.clone(), None),
    }
}

/// Layer 1: request info in, audit event out.
async fn audit(State(auth): State<Arc<Auth>>, mut request: Request, next: Next) -> Response {
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
    let request_uri = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let user_agent = request
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    request.extensions_mut().insert(info.clone());
    let mut response = next.run(request).await;
    let note = response
        .extensions_mut()
        .remove::<AuditNote>()
        .unwrap_or_default();
    let code = response.status().as_u16();
    if note.skip || !super::audit::should_audit(&info, code) {
        return response;
    }
    let object_name = response
        .extensions()
        .get::<AuditObjectName>()
        .map(|n| n.0.clone());
    let decision = note
        .decision
        .as_ref()
        .map(|d| (if d.allowed() { "allow" } else { "forbid" }, d.reason()));
    let mut id = uuid::Uuid::encode_buffer();
    let record = super::audit::Record {
        audit_id: uuid::Uuid::new_v4().hyphenated().encode_lower(&mut id),
        request_uri: &request_uri,
        info: &info,
        user: note.actor.as_ref(),
        impersonated: note.impersonated.as_ref(),
        source_ip,
        user_agent: user_agent.as_deref(),
        object_name: object_name.as_deref(),
        code,
        failure: response.extensions().get::<FailureStatus>().map(|f| &f.0),
        decision,
        received,
    };
    auth.audit.record(&super::audit::event(&record));
    response
}

/// Layer 2: who is calling.
async fn authenticate(State(auth): State<Arc<Auth>>, mut request: Request, next: Next) -> Response {
    let authenticated = auth
        .authenticate(
            request.headers(),
            request.extensions().get::<PeerCertificates>(),
        )
        .await;
    match authenticated {
        Ok(Some(user)) => {
            request.extensions_mut().insert(Authenticated(user));
            next.run(request).await
        }
        Ok(None) if is_open_path(request.uri().path()) => {
            impersonation::strip(request.headers_mut());
            request.extensions_mut().insert(Identity {
                user: anonymous(),
                impersonator: None,
            });
            let mut response = next.run(request).await;
            response.extensions_mut().insert(AuditNote {
                skip: true,
                ..Default::default()
            });
            response
        }
        Ok(None) => refuse(&ApiError::unauthorized(), AuditNote::default()),
        Err(err) => {
            tracing::debug!(error = %err, path = %request.uri().path(), "authentication failed");
            refuse(&ApiError::unauthorized(), AuditNote::default())
        }
    }
}

/// Layer 3: whom the caller acts as.
async fn impersonate(State(auth): State<Arc<Auth>>, mut request: Request, next: Next) -> Response {
    let Some(Authenticated(caller)) = request.extensions().get::<Authenticated>().cloned() else {
        return next.run(request).await; // an open path, served anonymously
    };
    let as_caller = || AuditNote {
        actor: Some(caller.clone()),
        ..Default::default()
    };
    let requested = match impersonation::parse(request.headers()) {
        Ok(r) => r,
        Err(e) => return refuse(&e, as_caller()),
    };
    let identity = match requested {
        None => Identity {
            user: caller.clone(),
            impersonator: None,
        },
        Some(requested) => {
            for check in impersonation::checks(&requested) {
                let decision = auth.authorize(&caller, &check).await;
                if !decision.allowed() {
                    let e = rbac::forbidden(&caller.username, &check, decision.reason());
                    let note = AuditNote {
                        decision: Some(decision),
                        ..as_caller()
                    };
                    return refuse(&e, note);
                }
            }
            impersonation::strip(request.headers_mut());
            Identity {
                user: impersonation::impersonated_user(&requested),
                impersonator: Some(caller.clone()),
            }
        }
    };
    request.extensions_mut().insert(identity);
    next.run(request).await
}

/// Layer 4: whether the identity may make this request.
async fn authorize(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    if request.extensions().get::<Authenticated>().is_none() {
        return next.run(request).await; // an open path, served anonymously
    }
    let (Some(identity), Some(info)) = (
        request.extensions().get::<Identity>().cloned(),
        request.extensions().get::<RequestInfo>(),
    ) else {
        return status_response(&ApiError::internal("the auth layers are out of order"));
    };
    let attrs = Attributes::from_request(info);
    let decision = auth.authorize(&identity.user, &attrs).await;
    let (actor, impersonated) = audit_users(&identity);
    let note = AuditNote {
        actor: Some(actor),
        impersonated,
        decision: Some(decision.clone()),
        ..Default::default()
    };
    if !decision.allowed() {
        let e = rbac::forbidden(&identity.user.username, &attrs, decision.reason());
        return refuse(&e, note);
    }
    let mut response = next.run(request).await;
    response.extensions_mut().insert(note);
    response
}
