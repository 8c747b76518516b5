//! Authentication, impersonation, RBAC authorization, audit and token issuance.
//!
//! [`guard`] runs a request through four stages, outermost first: audit (writes the audit
//! event from the request's [`RequestInfo`] once the response is known), authentication
//! (bearer token, or the client certificate the TLS layer put in the request's extensions
//! as [`PeerCertificates`]), impersonation (applies and strips `Impersonate-*` headers;
//! the resulting [`Identity`] goes into the request's extensions for handlers) and
//! authorization (RBAC). Handlers never look at credentials.
//!
//! Also here:
//! - Virtual create-only resources: when [`is_virtual_resource`] is true for a POST, call
//!   [`handle_virtual_create`]`(&auth, &identity, &info, body).await` and answer the
//!   returned object with 201 (errors are ordinary `ApiError`s). They are:
//!   `authorization.k8s.io/v1` selfsubjectaccessreviews, subjectaccessreviews,
//!   localsubjectaccessreviews (namespaced), selfsubjectrulesreviews;
//!   `authentication.k8s.io/v1` (and v1beta1) selfsubjectreviews, tokenreviews;
//!   core `serviceaccounts/<name>/token` (TokenRequest). Authorization already happened in
//!   the layers (verb `create` on the resource / `serviceaccounts/token`).
//! - Optional: the create handler may put [`AuditObjectName`] into the response extensions
//!   so the audit event's `objectRef.name` names the created object; the connection may
//!   put its peer `std::net::SocketAddr` (or axum `ConnectInfo<SocketAddr>`) into the
//!   request extensions for `sourceIPs`.
//! - RBAC escalation prevention runs as the store's admission hook on the final object of
//!   every RBAC create and update a user asks for (`escalation.rs`).
//! - [`Auth::bootstrap_objects`]: the RBAC defaults to create at first start.

mod audit;
mod authn;
mod bootstrap;
mod escalation;
pub(crate) mod impersonation;
mod layers;
pub(crate) mod rbac;
mod reviews;
mod service_accounts;
pub(crate) mod tokens;

use std::sync::Arc;

use flotilla_core::status::ApiError;
use flotilla_core::user::{SYSTEM_MASTERS, UserInfo};

pub(crate) use layers::guard;
#[cfg(test)]
use layers::wrap as layers;
pub(crate) use rbac::{Attributes, Decision};

use crate::request_info::RequestInfo;

/// The verified client certificate chain of the TLS connection, if the client sent one,
/// with the identity in it read once per connection (not once per request).
#[derive(Debug, Clone)]
pub(crate) struct PeerCertificates {
    chain: Arc<[rustls::pki_types::CertificateDer<'static>]>,
    user: Arc<std::sync::OnceLock<Result<UserInfo, String>>>,
}

impl PeerCertificates {
    /// The chain a TLS connection presented (leaf first).
    pub(crate) fn new(chain: Vec<rustls::pki_types::CertificateDer<'static>>) -> Self {
        PeerCertificates {
            chain: chain.into(),
            user: Arc::default(),
        }
    }

    /// The leaf certificate.
    pub(crate) fn leaf(&self) -> Option<&rustls::pki_types::CertificateDer<'static>> {
        self.chain.first()
    }

    fn is_empty(&self) -> bool {
        self.chain.is_empty()
    }

    /// The certificate's user, parsed on first use.
    fn user(&self) -> Result<UserInfo, authn::Error> {
        self.user
            .get_or_init(|| {
                authn::user_from_certificate(self).map_err(|e| match e {
                    authn::Error::Certificate(why) => why,
                    other => other.to_string(),
                })
            })
            .clone()
            .map_err(authn::Error::Certificate)
    }
}

/// Who a request runs as.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// The identity requests are served and authorized as (impersonated if asked).
    pub user: UserInfo,
    /// The authenticated caller, when different from `user` (impersonation).
    pub impersonator: Option<UserInfo>,
}

/// Put into a create response's extensions by the handler so the audit event names the
/// object (a POST's path has no name).
#[derive(Debug, Clone)]
pub(crate) struct AuditObjectName(pub String);

/// Errors setting up the auth layer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("auth: needs a running tokio runtime")]
    NoRuntime,
    #[error(transparent)]
    Tokens(#[from] tokens::Error),
    #[error(transparent)]
    Audit(#[from] audit::Error),
}

/// Shared authentication/authorization state.
pub(crate) struct Auth {
    store: crate::store::Store,
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
    /// Loads the token signing key and opens the audit log in `data_dir`, starts the RBAC
    /// cache (list + watch of the store) and the `default` ServiceAccount controller on the
    /// current tokio runtime, and registers the RBAC escalation check with the store.
    pub(crate) fn new(
        store: crate::store::Store,
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
        let auth = Arc::new(Auth {
            store,
            rbac,
            tokens,
            audit,
        });
        escalation::register(&auth);
        Ok(auth)
    }

    /// Objects the API server creates at first start (bootstrap ClusterRoles and bindings).
    pub(crate) fn bootstrap_objects() -> Vec<serde_json::Value> {
        bootstrap::objects()
    }

    /// RBAC's decision for `user` (`system:masters` may do anything).
    pub(crate) async fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        if user.in_group(SYSTEM_MASTERS) {
            return Decision::Allow(String::new());
        }
        self.rbac.authorize(user, attrs).await
    }

    /// Authenticates a request from its credentials: `Ok(None)` when it has none.
    pub(crate) async fn authenticate(
        &self,
        headers: &http::HeaderMap,
        peer: Option<&PeerCertificates>,
    ) -> Result<Option<UserInfo>, authn::Error> {
        if let Some(certs) = peer.filter(|c| !c.is_empty()) {
            return certs.user().map(Some);
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
pub(crate) fn is_virtual_resource(info: &RequestInfo) -> bool {
    reviews::is_virtual(info)
}

/// Answers a create on a virtual resource (access/rules/subject reviews, TokenReview,
/// TokenRequest); the returned object is the 201 response body.
pub(crate) async fn handle_virtual_create(
    auth: &Auth,
    identity: &Identity,
    info: &RequestInfo,
    body: serde_json::Value,
) -> Result<serde_json::Value, ApiError> {
    reviews::handle_create(auth, identity, info, body).await
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
