//! Multi-cluster Services (`multicluster.x-k8s.io/v1alpha1`): a ServiceExport in a member
//! exports the Service of the same name; a ServiceImport of the same namespace/name in another
//! member imports it. The hub keeps, in each importing member, Service `amcs-<name>` and one
//! EndpointSlice per exporting cluster listing that cluster's ready Pod IPs. See README.md.
//!
//! Level-triggered over the members that take part: watches of every available member's
//! ServiceExports and ServiceImports tell which members export or import ([`follow`]); every
//! `flotilla hub --mcs-resync-interval` (default 1 s) a pass reads those members (and any
//! whose watches reported a change) and converges them, so scaling, readiness and
//! availability changes show within a few seconds while idle members cost no request.

pub(crate) mod conflict;
pub(crate) mod export_status;
pub(crate) mod follow;
pub mod imports;
pub(crate) mod members;
pub(crate) mod name_watch;
pub mod observe;
pub(crate) mod peers;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};

use crate::cluster::managed_cluster;

/// Timeout of each request to a member.
pub(crate) const MEMBER_TIMEOUT: Duration = Duration::from_secs(3);
/// The field manager and `managed-by` value of everything this controller writes.
pub const MANAGER: &str = "flotilla-mcs";
/// Prefix of the Service an importing member gets.
pub const IMPORTED_SERVICE_PREFIX: &str = "amcs-";

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

/// Runs a pass every `interval` until the future is dropped, reading the members that take
/// part ([`follow`]); at most `concurrency` members are read (and first listed) at once.
pub(crate) async fn run(
    hub_client: kube::Client,
    interval: Duration,
    concurrency: usize,
) -> anyhow::Result<()> {
    let mut members = members::Members::new(hub_client.clone(), concurrency);
    let mut clusters = watcher(
        managed_cluster::api(&hub_client),
        watcher::Config::default(),
    )
    .default_backoff()
    .boxed();
    let mut peers = peers::Peers::default();
    let mut next_pass = tokio::time::Instant::now();
    loop {
        tokio::select! {
            event = clusters.next() => match event {
                Some(Ok(event)) => members.observe(event),
                Some(Err(e)) => tracing::warn!(error = %e, "ManagedCluster watch"),
                None => anyhow::bail!("the ManagedCluster watch ended"),
            },
            () = tokio::time::sleep_until(next_pass) => {
                members.sync().await;
                reconcile_once(&hub_client, &mut members, &mut peers, concurrency).await;
                next_pass = tokio::time::Instant::now() + interval;
            }
        }
    }
}

/// One pass: read every available member, judge the exports, write export conditions, the
/// importers' Services and slices, and the peer credentials the proxies need.
async fn reconcile_once(
    hub_client: &kube::Client,
    followed: &mut members::Members,
    peers: &mut peers::Peers,
    concurrency: usize,
) {
    let members = followed.take_for_pass();
    if members.is_empty() {
        return;
    }
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
                followed.read_again(&name);
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
}
