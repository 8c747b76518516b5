//! The state every handler and background task of one API server shares.

use std::sync::Arc;

use crate::auth::Auth;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::watch::WatchHub;

/// Shared server state (cheap to clone through the `Arc`).
pub struct ApiState {
    /// Objects in storage: every read and write goes through it.
    pub(crate) store: crate::store::Store,
    /// The namespaces, in memory (creates check theirs without a storage read).
    pub(crate) namespaces: Arc<crate::namespace_cache::NamespaceCache>,
    pub(crate) registry: Registry,
    pub(crate) watches: WatchHub,
    pub(crate) metrics: Metrics,
    pub(crate) auth: Arc<Auth>,
    /// The cluster CA (signs approved CertificateSigningRequests).
    pub(crate) pki: Arc<crate::pki::ClusterPki>,
    /// Injected faults (simulated members only).
    pub(crate) faults: crate::server::Faults,
    /// Requests being served (for the in-flight limits).
    pub(crate) in_flight: InFlightCounters,
    /// The service and pod proxy (answers as simulated Pods on a member).
    pub(crate) proxy: crate::handlers::proxy::ProxyState,
    /// `gitVersion` served at `/version`.
    pub(crate) git_version: String,
    /// The cluster gateway's way to members (hubs only).
    pub(crate) cluster_gateway: Option<crate::cluster_gateway::SharedGateway>,
    /// `POST /api/webhook`, when the binary registered a handler.
    pub(crate) webhook: Option<crate::webhook::WebhookHandler>,
}

/// The state as handlers and tasks hold it.
pub type SharedState = Arc<ApiState>;

/// Counts of requests in flight, by kind.
#[derive(Debug, Default)]
pub(crate) struct InFlightCounters {
    pub(crate) readonly: std::sync::atomic::AtomicUsize,
    pub(crate) mutating: std::sync::atomic::AtomicUsize,
}
