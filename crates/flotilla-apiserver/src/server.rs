//! Starting an API server: bind, load the CA, bootstrap the store, write the admin
//! kubeconfig, then serve HTTPS (HTTP/1.1 and h2) with the peer certificates of each
//! connection handed to authentication.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use flotilla_storage::SharedBackend;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::auth::{Auth, PeerCertificates};
use crate::pki::ClusterPki;
use crate::state::{ApiState, SharedState};
use crate::waiting::retry_while_unavailable;

/// The version this server reports at `/version` (kubectl prints it as Server Version).
pub const KUBERNETES_VERSION: &str = "v1.33.0";

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// `host:port`
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The cluster CA could not be loaded or created.
    #[error("certificate authority: {0}")]
    Pki(#[from] crate::pki::Error),
    /// The auth layer could not be set up.
    #[error("authentication setup: {0}")]
    Auth(String),
    /// A server-owned object could not be created.
    #[error("bootstrapping {what}: {source}")]
    Bootstrap {
        /// Which object(s).
        what: String,
        /// Why.
        #[source]
        source: flotilla_core::status::ApiError,
    },
    /// Answering probes while a start-up step was retried failed.
    #[error("{0}")]
    Waiting(#[from] crate::waiting::WaitingError),
    /// A file of the data dir could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// How to run one API server.
pub struct ServerOptions {
    /// `host:port`; port 0 picks a free one.
    pub listen: String,
    /// Where the CA, the admin kubeconfig and the audit log live.
    pub data_dir: PathBuf,
    /// The store (already opened).
    pub store: SharedBackend,
    /// The cluster name written into the admin kubeconfig.
    pub cluster_name: String,
    /// Extra objects created at start if absent (e.g. the fleet CRDs).
    pub bootstrap: Vec<Value>,
    /// Fault injection for tests of simulated members.
    pub faults: Faults,
    /// Metrics of the components running beside the server, served on `/metrics` too.
    pub extra_metrics: Option<crate::metrics::ExtraMetrics>,
    /// True for a simulated member: its service proxy answers as its Pods would, naming
    /// `cluster_name`. False on the hub.
    pub simulated_member: bool,
    /// More routes served behind the same auth (the hub's `/metrics/clusters`).
    pub extra_routes: Option<axum::Router>,
    /// Serve the dashboard at `/ui/` (the hub).
    pub ui: bool,
    /// Serve `cluster.core.oam.dev/v1alpha1` `clustergateways/{cluster}/proxy` through this
    /// backend (hubs); `None` leaves the resource out of discovery.
    pub cluster_gateway: Option<crate::cluster_gateway::SharedGateway>,
    /// Handles `POST /api/webhook` (Git push notifications); `None`: 404.
    pub webhook: Option<crate::webhook::WebhookHandler>,
}

/// Faults a simulated member can inject into its API (health endpoints are spared).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Delay every API request by this long.
    pub latency: std::time::Duration,
    /// Refuse requests with these verbs (or `all`) with 503 ServiceUnavailable.
    pub refuse_verbs: Vec<String>,
}

/// A server that is accepting connections.
pub struct RunningServer {
    /// `https://127.0.0.1:PORT`
    pub url: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// `DATA_DIR/admin.kubeconfig`
    pub admin_kubeconfig: PathBuf,
    /// The server's state (for the binary's background tasks).
    pub state: SharedState,
    /// Ends only if the accept loop fails.
    pub serving: tokio::task::JoinHandle<()>,
}

/// The namespaces every server has from the start.
pub const INITIAL_NAMESPACES: &[&str] = &[
    "default",
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "vela-system",
];

/// Binds, bootstraps and starts serving; returns once the admin kubeconfig is written.
pub async fn start(options: ServerOptions) -> Result<RunningServer, StartError> {
    let listener = bind(&options.listen).await?;
    start_on(listener, options).await
}

/// Binds `listen` (`host:port`; port 0 picks a free one).
pub async fn bind(listen: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: listen.to_string(),
            source,
        })
}

/// [`start`] on a listener bound earlier (e.g. one that answered probes while the store was
/// not reachable yet, see [`crate::waiting`]); `options.listen` is not used.
pub async fn start_on(
    listener: TcpListener,
    options: ServerOptions,
) -> Result<RunningServer, StartError> {
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: options.listen.clone(),
        source,
    })?;
    std::fs::create_dir_all(&options.data_dir).map_err(|source| StartError::Write {
        path: options.data_dir.clone(),
        source,
    })?;
    // One CA (and token key) per store: hubs sharing an etcd form one cluster.
    let pki = retry_while_unavailable(
        &listener,
        "reading the shared CA",
        StartError::store_unavailable,
        || async {
            Ok(ClusterPki::load_or_create_shared(&options.data_dir, &options.store).await?)
        },
    )
    .await?;
    let pki = Arc::new(pki);
    let store = crate::store::Store::new(options.store.clone());
    let auth = Auth::new(store.clone(), &pki, &options.data_dir)
        .map_err(|e| StartError::Auth(format!("{e:#}")))?;

    let namespaces = crate::namespace_cache::NamespaceCache::new(store.clone());
    namespaces.spawn();
    let state: SharedState = Arc::new(ApiState {
        store: store.clone(),
        namespaces,
        registry: if options.cluster_gateway.is_some() {
            crate::registry::Registry::with_cluster_gateway()
        } else {
            crate::registry::Registry::new()
        },
        watches: crate::watch::WatchHub::with_backlog(
            store,
            if options.simulated_member {
                crate::watch::BacklogBounds::MEMBER
            } else {
                crate::watch::BacklogBounds::HUB
            },
        ),
        metrics: crate::metrics::Metrics::with_extra(options.extra_metrics),
        auth: auth.clone(),
        pki: pki.clone(),
        faults: options.faults,
        in_flight: Default::default(),
        proxy: crate::handlers::proxy::ProxyState::new(
            options
                .simulated_member
                .then(|| options.cluster_name.clone()),
        ),
        webhook: options.webhook,
        git_version: format!(
            "{KUBERNETES_VERSION}-flotilla-{}",
            env!("CARGO_PKG_VERSION")
        ),
        cluster_gateway: options.cluster_gateway,
    });

    crate::crd::register_hooks(&state);
    retry_while_unavailable(
        &listener,
        "bootstrapping the stored objects",
        StartError::store_unavailable,
        || bootstrap(&state, &options.bootstrap, addr),
    )
    .await?;
    crate::apiservices::spawn(state.clone());
    crate::crd::spawn_watch(state.clone());

    let router = crate::router::router(state.clone(), options.extra_routes, options.ui);
    let tls = tokio_rustls::TlsAcceptor::from(pki.server_config());
    let host = match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    let host = if host == "0.0.0.0" {
        "127.0.0.1".to_string()
    } else {
        host
    };
    let url = format!("https://{host}:{}", addr.port());

    let admin_kubeconfig = options.data_dir.join("admin.kubeconfig");
    let text = pki.client_kubeconfig(
        &url,
        &options.cluster_name,
        "admin",
        &[flotilla_core::user::SYSTEM_MASTERS.to_string()],
    )?;
    crate::pki::write_kubeconfig(&admin_kubeconfig, &text)?;

    let serving = tokio::spawn(async move { accept_loop(&listener, tls, router).await });
    tracing::info!(%url, data_dir = %options.data_dir.display(), "API server ready");
    Ok(RunningServer {
        url,
        addr,
        admin_kubeconfig,
        state,
        serving,
    })
}

/// Accepts TLS connections on `listener` and serves `router` on each, until dropped.
pub(crate) async fn accept_loop(
    listener: &TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    router: axum::Router,
) {
    loop {
        let (tcp, peer_addr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let stream = match tls.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer_addr, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let peer = PeerCertificates::new(
                stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                    .unwrap_or_default(),
            );
            let service =
                hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(peer.clone());
                    // The client address, for the audit log's sourceIPs.
                    req.extensions_mut().insert(peer_addr);
                    router.clone().oneshot(req.map(axum::body::Body::new))
                });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer_addr, error = %e, "connection ended with an error");
            }
        });
    }
}

impl StartError {
    /// Whether the store failed the step (unreachable, or etcd without quorum): worth
    /// running again, where anything else is a fault of this server or its data dir.
    fn store_unavailable(&self) -> bool {
        match self {
            StartError::Pki(crate::pki::Error::Store(e)) => {
                matches!(e, flotilla_storage::Error::Unavailable(_))
            }
            StartError::Bootstrap { source, .. } => source.code == 503,
            _ => false,
        }
    }
}

/// Creates what must exist from the first start (namespaces, RBAC bootstrap objects, CRDs,
/// `extra`), leaving existing objects alone, then the `kubernetes` Service and APIServices.
/// Safe to run again after a failure.
async fn bootstrap(
    state: &SharedState,
    extra: &[Value],
    addr: SocketAddr,
) -> Result<(), StartError> {
    create_initial_objects(state, extra).await?;
    // Hubs sharing an etcd may start together and write these at once: a conflict is retried.
    let mut attempt = 0;
    let reconciled = loop {
        attempt += 1;
        let result = match crate::kubernetes_service::reconcile(state, addr).await {
            Ok(()) => crate::apiservices::reconcile(state).await,
            Err(e) => Err(e),
        };
        match result {
            Err(e) if e.code == 409 && attempt < 10 => {
                tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
            }
            other => break other,
        }
    };
    reconciled.map_err(|source| StartError::Bootstrap {
        what: "the kubernetes Service and APIServices".into(),
        source,
    })
}

/// Namespaces, RBAC bootstrap objects, CRDs and `extra`, each created if absent.
async fn create_initial_objects(state: &SharedState, extra: &[Value]) -> Result<(), StartError> {
    crate::crd::load_all(state)
        .await
        .map_err(|source| StartError::Bootstrap {
            what: "CustomResourceDefinitions".into(),
            source,
        })?;
    let mut objects: Vec<Value> = INITIAL_NAMESPACES
        .iter()
        .map(|ns| serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
        .collect();
    objects.extend(Auth::bootstrap_objects());
    objects.extend(extra.iter().cloned());
    for obj in objects {
        let what = format!(
            "{} {}",
            obj.get("kind").and_then(Value::as_str).unwrap_or("?"),
            crate::objects::meta_str(&obj, "name")
        );
        crate::store::create::create_if_absent(state, obj)
            .await
            .map_err(|source| StartError::Bootstrap { what, source })?;
    }
    Ok(())
}
