//! Global monitoring: the hub scrapes every available member's `/metrics`, keeps the
//! kube-state-metrics families (see `crate::statemetrics`) with a `cluster` label, and serves
//! them all at `/metrics/clusters` ([`text`]); the last hour of ready replicas per cluster and
//! of rollout durations stays in memory for the dashboard and `flotilla top` ([`history`]).
//!
//! A member that is unavailable or fails its scrape has no series from that scrape on, so a
//! stopped member's series are gone within one scrape interval.

mod deflated;
pub mod exposition;
pub(crate) mod history;
pub(crate) mod scrapers;

use std::collections::BTreeMap;
use std::sync::{LazyLock, RwLock};
use std::time::Duration;

use flotilla_apis::Application;
use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt as _, watcher};

use crate::cluster::managed_cluster;
use exposition::Families;
use history::{History, Rollout};
use scrapers::Scrapers;

/// Longest a member's scrape may take.
pub(crate) const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Fleet {
    members: BTreeMap<String, Families>,
    history: History,
}

static FLEET: LazyLock<RwLock<Fleet>> = LazyLock::new(Default::default);

/// Every member's `kube_*` series with a `cluster` label, in Prometheus text format.
pub fn text() -> String {
    FLEET
        .read()
        .map(|f| exposition::render(f.members.values()))
        .unwrap_or_default()
}

/// The last hour: `{"readyReplicas": {cluster: [[unix, n], ...]}, "rollouts": [...]}`.
pub fn history() -> serde_json::Value {
    FLEET
        .read()
        .map(|f| f.history.to_json())
        .unwrap_or_default()
}

/// Scrapes the fleet every `interval`, at most `concurrency` members at once, and records
/// rollouts as they finish, until the future is dropped.
pub(crate) async fn run(
    hub_client: kube::Client,
    interval: Duration,
    concurrency: usize,
) -> anyhow::Result<()> {
    let members = Scrapers::new(hub_client.clone(), SCRAPE_TIMEOUT);
    let scraping = async {
        loop {
            scrape_fleet(&hub_client, &members, concurrency).await;
            tokio::time::sleep(interval).await;
        }
    };
    tokio::join!(scraping, follow_rollouts(&hub_client));
    Ok(())
}

/// The names of the members whose `ManagedClusterConditionAvailable` is `True`.
async fn available_clusters(hub_client: &kube::Client) -> Vec<String> {
    match managed_cluster::api(hub_client)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list
            .items
            .iter()
            .filter(|c| managed_cluster::is_available(c))
            .filter_map(|c| c.metadata.name.clone())
            .collect(),
        Err(e) => {
            tracing::debug!(error = %e, "listing managed clusters to scrape");
            Vec::new()
        }
    }
}

async fn scrape_fleet(hub_client: &kube::Client, members: &Scrapers, concurrency: usize) {
    let clusters = available_clusters(hub_client).await;
    members.keep_only(&clusters);
    forget_members_except(&clusters);
    let scrapes = clusters.iter().map(|cluster| async move {
        let result = tokio::time::timeout(SCRAPE_TIMEOUT, scrape(members, cluster)).await;
        let families = match result {
            Ok(Ok(families)) => Some(families),
            Ok(Err(e)) => {
                tracing::debug!(cluster = %cluster, error = %e, "scraping a member's /metrics");
                None
            }
            Err(_) => None,
        };
        if families.is_none() {
            members.forget(cluster);
        }
        (cluster, families)
    });
    // Collected first: a lazily mapped iterator of borrowing futures trips the compiler's
    // `Send` check of the hub's controller future. Bounded: each scrape holds its member's
    // `kube_*` samples until they are deflated.
    let scrapes: Vec<_> = scrapes.collect();
    let mut results = futures::stream::iter(scrapes).buffer_unordered(concurrency.max(1));
    let mut ready: BTreeMap<String, f64> = BTreeMap::new();
    // Each member's families replace its previous ones as its scrape ends, so the hub holds
    // one round's worth plus the scrapes in flight, not two rounds at the swap.
    while let Some((cluster, families)) = results.next().await {
        if let Some(families) = &families {
            ready.insert(cluster.clone(), ready_replicas(families));
        }
        let Ok(mut fleet) = FLEET.write() else {
            continue;
        };
        match families {
            Some(families) => fleet.members.insert(cluster.clone(), families),
            None => fleet.members.remove(cluster),
        };
    }
    let now = chrono::Utc::now().timestamp();
    if let Ok(mut fleet) = FLEET.write() {
        fleet.history.record_ready(now, &ready);
    }
}

/// Drops the families of members no longer Available (or no longer there).
fn forget_members_except(clusters: &[String]) {
    let keep: std::collections::HashSet<&str> = clusters.iter().map(String::as_str).collect();
    if let Ok(mut fleet) = FLEET.write() {
        fleet.members.retain(|name, _| keep.contains(name.as_str()));
    }
}

/// One member's `kube_*` families, relabelled as its `/metrics` arrives: the hub never holds
/// a member's whole exposition (most of it other families), so a round's transient memory
/// is the samples it keeps, not every member's text at once.
async fn scrape(members: &Scrapers, cluster: &str) -> anyhow::Result<Families> {
    let member_client = members.client(cluster).await?;
    let mut relabeler = exposition::Relabeler::new(cluster);
    member_client
        .get_lines("/metrics", |line| relabeler.line(line))
        .await?;
    Ok(relabeler.finish())
}

/// The sum of `kube_deployment_status_replicas_ready` of one member.
fn ready_replicas(families: &Families) -> f64 {
    families
        .get("kube_deployment_status_replicas_ready")
        .map(|f| {
            f.samples()
                .lines()
                .filter_map(exposition::sample_value)
                .sum()
        })
        .unwrap_or(0.0)
}

/// Records the workflow duration of each application whose workflow finished, from a watch
/// of every Application: a rollout is seen when its status changes (or the watch lists), so
/// the hub does not re-read every Application each round (at 100 Applications on 100
/// members, 2.6 MB listed and decoded every interval, and that much freed again).
async fn follow_rollouts(hub_client: &kube::Client) {
    let apps: Api<Application> = Api::all(hub_client.clone());
    let mut applications = watcher(apps, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(event) = applications.next().await {
        let app = match event {
            Ok(app) => app,
            Err(e) => {
                tracing::debug!(error = %e, "watching applications for rollout durations");
                continue;
            }
        };
        let Some(rollout) = rollout_of(&app) else {
            continue;
        };
        if let Ok(mut fleet) = FLEET.write() {
            fleet
                .history
                .record_rollout(chrono::Utc::now().timestamp(), rollout);
        }
    }
}

fn rollout_of(app: &Application) -> Option<Rollout> {
    let workflow = app.status.as_ref()?.workflow.as_ref()?;
    if !workflow.finished || workflow.terminated {
        return None;
    }
    let parse = |t: &Option<String>| {
        chrono::DateTime::parse_from_rfc3339(t.as_deref()?)
            .ok()
            .map(|d| d.timestamp_millis())
    };
    let start = parse(&workflow.start_time)?;
    let end = parse(&workflow.end_time)?;
    Some(Rollout {
        namespace: app.metadata.namespace.clone().unwrap_or_default(),
        name: app.metadata.name.clone().unwrap_or_default(),
        revision: workflow.app_revision.clone(),
        ended: end / 1000,
        seconds: (end - start).max(0) as f64 / 1000.0,
    })
}
