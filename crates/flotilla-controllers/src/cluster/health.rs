//! The cluster health controller: probes every member's `/readyz` with its stored credentials
//! and keeps `ManagedClusterConditionAvailable` (and the availability gauge) in step.

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{ListParams, Patch, PatchParams};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::json;

use super::credentials::{self, ClusterCredential};
use super::managed_cluster::{self, Condition};
use super::registry::one_line;
use crate::multiplexed_client::{PlainClient, PlainError, forget_shared, plain_client};
use flotilla_apis::{CONDITION_AVAILABLE, CONDITION_JOINED};

/// Errors of one probe round.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The hub API refused or failed a request.
    #[error("hub API: {}", crate::cluster::describe_kube_error(.0))]
    Hub(Box<kube::Error>),
    /// Stored credentials could not be listed.
    #[error(transparent)]
    Credentials(#[from] credentials::Error),
}

/// Result with this module's [`Error`].
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

type ClusterLabels = Vec<(String, String)>;

/// `flotilla_cluster_available{cluster}`: 1 when the member's `/readyz` answered 200 at the
/// last probe, 0 otherwise.
static AVAILABILITY: LazyLock<Family<ClusterLabels, Gauge>> = LazyLock::new(Family::default);

/// `flotilla_cluster_probe_duration_seconds`: how long members took to answer `/readyz`,
/// fleet-wide (1 ms to 8 s; a member per label would cost the hub a histogram per member).
static PROBE_DURATION: LazyLock<Histogram> =
    LazyLock::new(|| Histogram::new(exponential_buckets(0.001, 2.0, 14)));

/// Registers the per-cluster availability gauge and the probe duration histogram in the
/// hub's Prometheus registry.
pub fn register_metrics(registry: &mut Registry) {
    registry.register(
        "flotilla_cluster_available",
        "1 when the member cluster answered its last /readyz probe, else 0",
        AVAILABILITY.clone(),
    );
    registry.register(
        "flotilla_cluster_probe_duration_seconds",
        "Time from sending a member's /readyz probe to its whole answer (or failure)",
        PROBE_DURATION.clone(),
    );
}

static PROBED: LazyLock<std::sync::Mutex<BTreeMap<String, i64>>> = LazyLock::new(Default::default);

fn record(cluster_name: &str, available: bool) {
    let value = i64::from(available);
    AVAILABILITY
        .get_or_create(&vec![("cluster".to_string(), cluster_name.to_string())])
        .set(value);
    if let Ok(mut probed) = PROBED.lock() {
        probed.insert(cluster_name.to_string(), value);
    }
}

fn forget_except(names: &[String]) {
    if let Ok(mut probed) = PROBED.lock() {
        let gone: Vec<String> = probed
            .keys()
            .filter(|k| !names.contains(k))
            .cloned()
            .collect();
        for name in gone {
            probed.remove(&name);
            AVAILABILITY.remove(&vec![("cluster".to_string(), name)]);
        }
    }
}

/// The outcome of one probe, as the Available condition it implies.
pub(crate) fn probe_condition(result: &Result<(), ProbeFailure>) -> Condition {
    match result {
        Ok(()) => Condition::new(
            CONDITION_AVAILABLE,
            "True",
            "ManagedClusterAvailable",
            "Managed cluster is available",
        ),
        Err(ProbeFailure::NotReady(message)) => Condition::new(
            CONDITION_AVAILABLE,
            "False",
            "ManagedClusterNotReady",
            format!("/readyz failed: {message}"),
        ),
        Err(ProbeFailure::Unreachable(message)) => Condition::new(
            CONDITION_AVAILABLE,
            "Unknown",
            "ManagedClusterLeaseUpdateStopped",
            format!("the member stopped answering: {message}"),
        ),
        Err(ProbeFailure::NoCredentials(message)) => Condition::new(
            CONDITION_AVAILABLE,
            "Unknown",
            "ManagedClusterCredentialMissing",
            message.clone(),
        ),
    }
}

/// Why a probe failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProbeFailure {
    /// The member answered, but not 200.
    NotReady(String),
    /// No answer (connection refused, TLS failure, timeout).
    Unreachable(String),
    /// The hub has no usable credentials for the member.
    NoCredentials(String),
}

/// The probes' member clients: one per member, kept while its stored credential is unchanged,
/// so a probe reuses the member's connection instead of building a client, a TLS
/// configuration and a handshake every round. The connection is the member's one, shared
/// with the fleet metrics scrape, the dispatch and the hub's other clients of the member
/// ([`crate::multiplexed_client::shared_client`]). A member that did not answer gets a new
/// client and connection at its next probe.
#[derive(Default)]
pub(crate) struct ProbeClients {
    by_cluster: Mutex<HashMap<String, ProbeClient>>,
}

/// A member's probe client, its credential and the URL its connection is shared under.
struct ProbeClient {
    credential: ClusterCredential,
    client: PlainClient,
    url: http::Uri,
}

impl ProbeClients {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ProbeClient>> {
        self.by_cluster
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn client(
        &self,
        cluster_name: &str,
        credential: &ClusterCredential,
        timeout: Duration,
    ) -> Result<PlainClient, ProbeFailure> {
        if let Some(known) = self.lock().get(cluster_name)
            && known.credential == *credential
        {
            return Ok(known.client.clone());
        }
        let config = credential
            .to_config(cluster_name, Some(timeout))
            .await
            .map_err(|e| ProbeFailure::NoCredentials(one_line(&e)))?;
        let url = config.cluster_url.clone();
        let client = plain_client(config).map_err(|e| ProbeFailure::NoCredentials(one_line(&e)))?;
        let probe_client = ProbeClient {
            credential: credential.clone(),
            client: client.clone(),
            url,
        };
        self.lock().insert(cluster_name.to_string(), probe_client);
        Ok(client)
    }

    /// Probes one member's `/readyz` within `timeout`.
    pub(crate) async fn probe(
        &self,
        cluster_name: &str,
        credential: &ClusterCredential,
        timeout: Duration,
    ) -> Result<(), ProbeFailure> {
        let client = self.client(cluster_name, credential, timeout).await?;
        let started = Instant::now();
        let result = probe_with(&client, timeout).await;
        PROBE_DURATION.observe(started.elapsed().as_secs_f64());
        if matches!(result, Err(ProbeFailure::Unreachable(_)))
            && let Some(gone) = self.lock().remove(cluster_name)
        {
            forget_shared(&gone.url);
        }
        result
    }

    /// Drops the clients of clusters not in `names`.
    fn keep_only(&self, names: &[String]) {
        self.lock().retain(|name, _| names.contains(name));
    }
}

async fn probe_with(member_client: &PlainClient, timeout: Duration) -> Result<(), ProbeFailure> {
    match tokio::time::timeout(timeout, member_client.get_text("/readyz")).await {
        Err(_) => Err(ProbeFailure::Unreachable(format!(
            "no answer within {timeout:?}"
        ))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(status @ PlainError::Status { .. })) => {
            Err(ProbeFailure::NotReady(status.to_string()))
        }
        Ok(Err(PlainError::Transport(e))) => Err(ProbeFailure::Unreachable(e)),
    }
}

/// The probe timeout for a probe interval: the interval, kept between 2 s (a loaded machine
/// must not make a healthy member look down) and 5 s (a hung member is reported promptly).
/// A stopped member refuses connections at once, so it is reported within one interval.
pub(crate) fn probe_timeout(probe_interval: Duration) -> Duration {
    probe_interval.clamp(Duration::from_secs(2), Duration::from_secs(5))
}

/// How the health controller probes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProbeOptions {
    /// How often every member is probed.
    pub interval: Duration,
    /// At most this many members are probed at once.
    pub concurrency: usize,
}

/// Probes every ManagedCluster once (at most `concurrency` at a time) and writes conditions
/// that changed.
pub(crate) async fn probe_all(
    hub_client: &kube::Client,
    clients: &ProbeClients,
    timeout: Duration,
    concurrency: usize,
) -> Result<()> {
    let clusters = managed_cluster::api(hub_client)
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::Hub(Box::new(e)))?;
    let stored = credentials::list(hub_client).await?;
    let names: Vec<String> = clusters
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    forget_except(&names);
    clients.keep_only(&names);
    let probes = clusters.items.iter().map(|cluster| {
        let stored = &stored;
        async move {
            let name = cluster.metadata.name.clone().unwrap_or_default();
            let result = match stored.get(&name) {
                Some(credential) => clients.probe(&name, credential, timeout).await,
                // Not in the labelled list: read it by name (a Secret written without the
                // label still works); otherwise say why it is unusable.
                None => match credentials::read(hub_client, &name).await {
                    Ok(credential) => clients.probe(&name, &credential, timeout).await,
                    Err(e) => Err(ProbeFailure::NoCredentials(e.to_string())),
                },
            };
            record(&name, result.is_ok());
            let wanted = [
                Condition::new(
                    CONDITION_JOINED,
                    "True",
                    "ManagedClusterJoined",
                    "Managed cluster joined",
                ),
                probe_condition(&result),
            ];
            let Some(conditions) = managed_cluster::set_conditions(
                &managed_cluster::conditions(cluster),
                &wanted,
                &managed_cluster::now_rfc3339(),
            ) else {
                return;
            };
            if let Err(e) = &result {
                tracing::info!(cluster = %name, failure = ?e, "member cluster probe failed");
            } else {
                tracing::info!(cluster = %name, "member cluster is available");
            }
            let patch = json!({"status": {"conditions": conditions}});
            if let Err(e) = managed_cluster::api(hub_client)
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::warn!(cluster = %name, error = %e, "cannot update ManagedCluster status");
            }
        }
    });
    // Collected first: a lazily mapped iterator of borrowing futures trips the compiler's
    // `Send` check of the hub's controller future.
    let probes: Vec<_> = probes.collect();
    futures::stream::iter(probes)
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<()>>()
        .await;
    Ok(())
}

/// Probes every member each `options.interval` until the future is dropped.
pub(crate) async fn run(hub_client: kube::Client, options: ProbeOptions) -> anyhow::Result<()> {
    let timeout = probe_timeout(options.interval);
    let clients = ProbeClients::default();
    let mut ticker = tokio::time::interval(options.interval.max(Duration::from_millis(100)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(e) = probe_all(&hub_client, &clients, timeout, options.concurrency).await {
            tracing::warn!(error = %e, "cluster health probe round failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The availability gauge in Prometheus text format, without the `# EOF` line.
    fn metrics_text() -> String {
        let mut registry = Registry::default();
        register_metrics(&mut registry);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            return String::new();
        }
        out.lines()
            .filter(|l| *l != "# EOF")
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// The availability of every probed cluster (1 available, 0 not), by name.
    fn availability() -> BTreeMap<String, i64> {
        PROBED.lock().map(|m| m.clone()).unwrap_or_default()
    }

    #[test]
    fn conditions_follow_probe_results() {
        assert_eq!(probe_condition(&Ok(())).status, "True");
        let down = probe_condition(&Err(ProbeFailure::Unreachable("connection refused".into())));
        assert_eq!(down.status, "Unknown");
        assert!(down.message.contains("connection refused"));
        assert_eq!(
            probe_condition(&Err(ProbeFailure::NotReady("HTTP 500".into()))).status,
            "False"
        );
    }

    #[test]
    fn timeout_is_bounded_by_interval() {
        assert_eq!(
            probe_timeout(Duration::from_secs(1)),
            Duration::from_secs(2)
        );
        assert_eq!(
            probe_timeout(Duration::from_secs(3)),
            Duration::from_secs(3)
        );
        assert_eq!(
            probe_timeout(Duration::from_secs(60)),
            Duration::from_secs(5)
        );
    }

    #[tokio::test]
    async fn unreachable_member_is_reported_not_hung() {
        // A port nothing listens on: bind, note the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let credential = ClusterCredential {
            endpoint: format!("https://127.0.0.1:{port}"),
            ca_pem: None,
            auth: credentials::ClusterAuth::Token("t".into()),
        };
        let clients = ProbeClients::default();
        let result = clients
            .probe("gone", &credential, Duration::from_secs(2))
            .await;
        assert!(
            matches!(result, Err(ProbeFailure::Unreachable(_))),
            "{result:?}"
        );
        // The next probe of a member that did not answer starts on a new client.
        assert!(clients.lock().is_empty());
        record("gone", false);
        assert_eq!(availability().get("gone"), Some(&0));
        let text = metrics_text();
        assert!(
            text.contains("flotilla_cluster_available{cluster=\"gone\"} 0"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
    }
}
