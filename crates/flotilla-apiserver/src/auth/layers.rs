//! Authentication, impersonation, authorization and audit as four stages of one request,
//! outermost first, chained by [`guard`]:
//!
//! 1. [`audit`]: once the response is known, writes the audit event from the request's
//!    [`RequestInfo`] and what the inner stages noted on the response ([`AuditNote`]).
//! 2. [`authenticate`]: client certificate or bearer token → [`Authenticated`]; no
//!    credentials reach only the open paths (as `system:anonymous`), otherwise 401.
//! 3. [`impersonate`]: `Impersonate-*` headers, each checked with RBAC → [`Identity`].
//! 4. [`authorize`]: RBAC on the request's attributes; 403 with Kubernetes' message.
//!
//! The stages are plain async functions, each handed the rest of the chain, rather than
//! one router layer each: a layer clones the whole service beneath it for every request.
//! What a write would store is checked for RBAC escalation later, on the final object, by
//! the store's admission hook (`escalation::register`).

use std::net::SocketAddr;

use axum::extract::Request;
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

/// What the inner stages tell the audit stage, put into the response's extensions.
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

/// Runs `request` through the four stages and, if they let it through, `inner`. `info` is
/// what the request is about (parsed once, by the caller).
pub(crate) async fn guard<F, Fut>(
    auth: &Auth,
    info: &RequestInfo,
    request: Request,
    inner: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    audit(auth, info, request, |r| {
        authenticate(auth, r, |r| {
            impersonate(auth, r, |r| authorize(auth, info, r, inner))
        })
    })
    .await
}

/// Wraps `router` in the stages as one layer, parsing each request's [`RequestInfo`] into
/// its extensions as the API server's front door does (for tests of the stages alone).
#[cfg(test)]
pub(crate) fn wrap(router: axum::Router, auth: std::sync::Arc<Auth>) -> axum::Router {
    router.layer(axum::middleware::from_fn(
        move |mut request: Request, next: axum::middleware::Next| {
            let auth = auth.clone();
            async move {
                let query = crate::request_info::query_params(request.uri());
                let info =
                    crate::request_info::parse(request.method(), request.uri().path(), &query);
                request.extensions_mut().insert(info.clone());
                guard(&auth, &info, request, |r| next.run(r)).await
            }
        },
    ))
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

/// Stage 1: the audit event, once the response is known.
async fn audit<F, Fut>(auth: &Auth, info: &RequestInfo, request: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let received = Utc::now();
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
        .unwrap_or_else(|| request.uri().path().to_string());
    let user_agent = request
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut response = next(request).await;
    let note = response
        .extensions_mut()
        .remove::<AuditNote>()
        .unwrap_or_default();
    let code = response.status().as_u16();
    if note.skip || !super::audit::should_audit(info, code) {
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
        info,
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

/// Stage 2: who is calling.
async fn authenticate<F, Fut>(auth: &Auth, mut request: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let authenticated = auth
        .authenticate(
            request.headers(),
            request.extensions().get::<PeerCertificates>(),
        )
        .await;
    match authenticated {
        Ok(Some(user)) => {
            request.extensions_mut().insert(Authenticated(user));
            next(request).await
        }
        Ok(None) if is_open_path(request.uri().path()) => {
            impersonation::strip(request.headers_mut());
            request.extensions_mut().insert(Identity {
                user: anonymous(),
                impersonator: None,
            });
            let mut response = next(request).await;
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

/// Stage 3: whom the caller acts as.
async fn impersonate<F, Fut>(auth: &Auth, mut request: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let Some(Authenticated(caller)) = request.extensions().get::<Authenticated>().cloned() else {
        return next(request).await; // an open path, served anonymously
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
    next(request).await
}

/// Stage 4: whether the identity may make this request.
async fn authorize<F, Fut>(auth: &Auth, info: &RequestInfo, request: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    if request.extensions().get::<Authenticated>().is_none() {
        return next(request).await; // an open path, served anonymously
    }
    let Some(identity) = request.extensions().get::<Identity>().cloned() else {
        return status_response(&ApiError::internal("the auth stages are out of order"));
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
    let mut response = next(request).await;
    response.extensions_mut().insert(note);
    response
}
