//! Multi-cluster Services (`multicluster.x-k8s.io/v1alpha1`): a ServiceExport in a member
//! exports the Service of the same name; a ServiceImport of the same namespace/name in another
//! member imports it. The hub keeps, in each importing member, Service `amcs-<name>` and one
//! EndpointSlice per exporting cluster listing that cluster's ready Pod IPs. See README.md.
//!
//! Level-triggered: every `flotilla hub --mcs-resync-interval` (default 1 s) the controller
//! reads every available member and converges all of them, so scaling, readiness and
//! availability changes show within a few seconds.

pub(crate) mod conflict;
pub(crate) mod export_status;
pub mod imports;
pub mod observe;
pub(crate) mod peers;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::StreamExt;
use kube::api::ListParams;

use crate::application::member_clients::Identity;
use crate::cluster::{credentials, managed_cluster};
use crate::multiplexed_client::{Lane, shared_client};

/// Timeout of each request to a member.
const MEMBER_TIMEOUT: Duration = Duration::from_secs(3);
/// The field manager and `managed-by` value of everything this controller writes.
pub const MANAGER: &str = "flotilla-mcs";
/// Prefix of the Service an importing member gets.
pub const IMPORTED_SERVICE_PREFIX: &str = "amcs-";

/// Errors of one pass.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The hub API failed.
    #[error("hub API: {0}")]
    Hub(#[source] Box<kube::Error>),
}

/// One port of an exported Service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Port {
    /// The port's name in the Service.
    pub name: String,
    /// The Service port.
    pub port: i32,
    /// The Pods' port (a named target port is served on `port`).
    pub target_port: i32,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
}

/// A ServiceExport as read from its member, with its Service and ready Pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Export {
    /// The member cluster it was read from.
    pub cluster: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name (that of the exported Service).
    pub name: String,
    /// The ServiceExport's creationTimestamp (RFC 3339 sorts by time).
    pub created: String,
    /// Whether the Service it exports exists.
    pub service_found: bool,
    /// Sorted by port.
    pub ports: Vec<Port>,
    /// Ready Pods: (pod name, IP), sorted.
    pub endpoints: Vec<(String, String)>,
}

/// A ServiceImport as read from its member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Import {
    /// The member cluster it was read from.
    pub cluster: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// What one member holds.
#[derive(Debug, Default)]
pub(crate) struct MemberView {
    /// ServiceExports with their Services.
    pub exports: Vec<Export>,
    /// ServiceImports.
    pub imports: Vec<Import>,
}

/// Runs a pass every `interval`, reading at most `concurrency` members at once, until the
/// future is dropped; a failed pass is logged and retried.
pub(crate) async fn run(
    hub_client: kube::Client,
    interval: Duration,
    concurrency: usize,
) -> anyhow::Result<()> {
    let mut clients: HashMap<String, kube::Client> = HashMap::new();
    let mut peers = peers::Peers::default();
    loop {
        let pass = reconcile_once(&hub_client, &mut clients, &mut peers, concurrency);
        if let Err(e) = pass.await {
            tracing::warn!(error = %e, "multi-cluster services pass failed");
        }
        tokio::time::sleep(interval).await;
    }
}

/// The available members and their clients.
async fn available_members(
    hub_client: &kube::Client,
    clients: &mut HashMap<String, kube::Client>,
) -> Result<BTreeMap<String, kube::Client>, Error> {
    let clusters = managed_cluster::api(hub_client)
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::Hub(Box::new(e)))?;
    let mut out = BTreeMap::new();
    for cluster in &clusters.items {
        let Some(name) = cluster.metadata.name.clone() else {
            continue;
        };
        let available =
            managed_cluster::condition_status(cluster, managed_cluster::CONDITION_AVAILABLE)
                .as_deref()
                == Some("True");
        if !available {
            continue;
        }
        if !clients.contains_key(&name) {
            match member_client(hub_client, &name).await {
                Ok(c) => {
                    clients.insert(name.clone(), c);
                }
                Err(e) => {
                    tracing::warn!(cluster = %name, error = %e, "no client for member");
                    continue;
                }
            }
        }
        if let Some(c) = clients.get(&name) {
            out.insert(name, c.clone());
        }
    }
    clients.retain(|name, _| {
        clusters
            .items
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some(name))
    });
    Ok(out)
}

async fn member_client(
    hub_client: &kube::Client,
    name: &str,
) -> Result<kube::Client, credentials::Error> {
    let mut config = credentials::read(hub_client, name)
        .await?
        .to_config(name, Some(MEMBER_TIMEOUT))
        .await?;
    // The hub's stored credential only impersonates: the controller writes Services, slices,
    // export conditions and peer credentials as its own identity, which members' audit logs
    // name (set on the config: its headers go on every request of the one client).
    let controller = Identity::hub_component("mcs-controller", &["system:masters"]);
    config.auth_info.impersonate = controller.user;
    config.auth_info.impersonate_groups = Some(controller.groups);
    shared_client(config, Lane::Fleet, None).map_err(|e| credentials::Error::Config {
        cluster_name: name.to_string(),
        cause: Box::new(e),
    })
}

/// One pass: read every available member, judge the exports, write export conditions, the
/// importers' Services and slices, and the peer credentials the proxies need.
async fn reconcile_once(
    hub_client: &kube::Client,
    clients: &mut HashMap<String, kube::Client>,
    peers: &mut peers::Peers,
    concurrency: usize,
) -> Result<(), Error> {
    let members = available_members(hub_client, clients).await?;
    // Collected first: a lazily mapped iterator of borrowing futures trips the compiler's
    // `Send` check of the hub's controller future.
    let reads: Vec<_> = members
        .iter()
        .map(|(name, client)| async move { (name.clone(), observe::read(name, client).await) })
        .collect();
    let views: Vec<_> = futures::stream::iter(reads)
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    // A member that cannot be read counts as unavailable this pass.
    let views: BTreeMap<String, MemberView> = views
        .into_iter()
        .filter_map(|(name, view)| match view {
            Ok(v) => Some((name, v)),
            Err(e) => {
                tracing::debug!(cluster = %name, error = %e, "member not readable");
                None
            }
        })
        .collect();
    let mut by_service: BTreeMap<(String, String), Vec<&Export>> = BTreeMap::new();
    for view in views.values() {
        for e in &view.exports {
            by_service
                .entry((e.namespace.clone(), e.name.clone()))
                .or_default()
                .push(e);
        }
    }
    let mut joined: BTreeMap<(String, String), Vec<&Export>> = BTreeMap::new();
    for (key, exports) in &by_service {
        let verdicts = conflict::judge(exports);
        for (export, verdict) in exports.iter().zip(&verdicts) {
            if let Some(client) = members.get(&export.cluster) {
                export_status::write(client, export, &verdict.conditions).await;
            }
            if verdict.joins {
                joined.entry(key.clone()).or_default().push(export);
            }
        }
    }
    for (cluster, view) in &views {
        let Some(client) = members.get(cluster) else {
            continue;
        };
        imports::converge(client, cluster, &view.imports, &joined).await;
        for import in &view.imports {
            for export in joined
                .get(&(import.namespace.clone(), import.name.clone()))
                .into_iter()
                .flatten()
            {
                if export.cluster != *cluster
                    && let Some(exporter) = members.get(&export.cluster)
                {
                    peers
                        .ensure(hub_client, (cluster, client), (&export.cluster, exporter))
                        .await;
                }
            }
        }
    }
    Ok(())
}
