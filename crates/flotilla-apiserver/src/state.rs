//! The state every handler and background task of one API server shares.

use std::sync::Arc;

use crate::auth::Auth;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::watch::WatchHub;

/// Shared server state (cheap to clone through the `Arc`).
pub struct ApiState {
    /// Objects in storage: every read and write goes through it.
    pub store: crate::store::Store,
    pub registry: Registry,
    pub watches: WatchHub,
    pub metrics: Metrics,
    pub auth: Arc<Auth>,
    /// The cluster CA (signs approved CertificateSigningRequests).
    pub pki: Arc<crate::pki::ClusterPki>,
    /// Injected faults (simulated members only).
    pub faults: crate::server::Faults,
    /// Requests being served (for the in-flight limits).
    pub in_flight: InFlightCounters,
    /// The service and pod proxy (answers as simulated Pods on a member).
    pub proxy: crate::handlers::proxy::ProxyState,
    /// `gitVersion` served at `/version`.
    pub git_version: String,
    /// The cluster gateway's way to members (hubs only).
    pub cluster_gateway: Option<crate::cluster_gateway::SharedGateway>,
    /// `POST /api/webhook`, when the binary registered a handler.
    pub webhook: Option<crate::webhook::WebhookHandler>,
}

pub type SharedState = Arc<ApiState>;

/// Counts of requests in flight, by kind.
#[derive(Debug, Default)]
pub struct InFlightCounters {
    pub readonly: std::sync::atomic::AtomicUsize,
    pub mutating: std::sync::atomic::AtomicUsize,
}
