//! `flotilla top clusters|apps`: the hub's fleet metrics (`/metrics/clusters` and its
//! `/history`) as tables.

use std::collections::{BTreeMap, BTreeSet};

use flotilla_apis::Application;
use flotilla_controllers::cluster::managed_cluster;
use flotilla_controllers::fleetmetrics::exposition::{label, sample_value};
use kube::api::{Api, ListParams};
use serde_json::Value;

use crate::args::TopCommand;
use crate::table;

/// Runs a `top` sub-command.
pub(crate) async fn run(hub_client: &kube::Client, command: TopCommand) -> anyhow::Result<()> {
    let samples = fleet_samples(hub_client).await?;
    let out = match command {
        TopCommand::Clusters => clusters_table(hub_client, &samples).await?,
        TopCommand::Apps => apps_table(hub_client, &samples).await?,
    };
    print!("{out}");
    Ok(())
}

async fn get_text(hub_client: &kube::Client, path: &str) -> anyhow::Result<String> {
    let request = http::Request::get(path).body(Vec::new())?;
    hub_client.request_text(request).await.map_err(|e| match e {
        kube::Error::Api(s) => anyhow::anyhow!("Error from server ({}): {}", s.reason, s.message),
        other => other.into(),
    })
}

/// The sample lines of `/metrics/clusters`.
async fn fleet_samples(hub_client: &kube::Client) -> anyhow::Result<Vec<String>> {
    let text = get_text(hub_client, "/metrics/clusters").await?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}

fn family<'a>(samples: &'a [String], name: &'a str) -> impl Iterator<Item = &'a String> + 'a {
    samples
        .iter()
        .filter(move |s| s.strip_prefix(name).is_some_and(|r| r.starts_with('{')))
}

/// Per cluster, what the metrics say.
#[derive(Debug, Default)]
struct ClusterRow {
    version: String,
    deployments: u64,
    ready: f64,
    desired: f64,
    pods: BTreeSet<String>,
    running: u64,
}

fn cluster_rows(samples: &[String]) -> BTreeMap<String, ClusterRow> {
    let mut rows: BTreeMap<String, ClusterRow> = BTreeMap::new();
    for s in family(samples, "kube_node_info") {
        let r = rows.entry(cluster_of(s)).or_default();
        r.version = label(s, "kubelet_version").unwrap_or("").to_string();
    }
    for s in family(samples, "kube_deployment_spec_replicas") {
        let r = rows.entry(cluster_of(s)).or_default();
        r.deployments += 1;
        r.desired += sample_value(s).unwrap_or(0.0);
    }
    for s in family(samples, "kube_deployment_status_replicas_ready") {
        rows.entry(cluster_of(s)).or_default().ready += sample_value(s).unwrap_or(0.0);
    }
    for s in family(samples, "kube_pod_status_phase") {
        let r = rows.entry(cluster_of(s)).or_default();
        let pod = format!(
            "{}/{}",
            label(s, "namespace").unwrap_or(""),
            label(s, "pod").unwrap_or("")
        );
        r.pods.insert(pod);
        if label(s, "phase") == Some("Running") && sample_value(s) == Some(1.0) {
            r.running += 1;
        }
    }
    rows
}

fn cluster_of(sample: &str) -> String {
    label(sample, "cluster").unwrap_or("").to_string()
}

async fn clusters_table(hub_client: &kube::Client, samples: &[String]) -> anyhow::Result<String> {
    let metrics = cluster_rows(samples);
    let clusters = managed_cluster::api(hub_client)
        .list(&ListParams::default())
        .await?;
    let headers = [
        "CLUSTER",
        "AVAILABLE",
        "VERSION",
        "DEPLOYMENTS",
        "READY",
        "PODS",
    ];
    let rows: Vec<Vec<String>> = clusters
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone().map(|n| (n, c)))
        .map(|(name, c)| {
            let available =
                managed_cluster::condition_status(c, flotilla_apis::CONDITION_AVAILABLE)
                    .unwrap_or_else(|| "Unknown".into());
            match metrics.get(&name) {
                Some(m) => vec![
                    name,
                    available,
                    m.version.clone(),
                    m.deployments.to_string(),
                    format!("{}/{}", m.ready, m.desired),
                    format!("{}/{}", m.running, m.pods.len()),
                ],
                None => vec![
                    name,
                    available,
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ],
            }
        })
        .collect();
    Ok(table::render(&headers.map(String::from), &rows))
}

/// `(ready, desired)` of Deployment `namespace/name` in `cluster`, from the metrics.
fn deployment_replicas(
    samples: &[String],
    cluster: &str,
    namespace: &str,
    name: &str,
) -> Option<(f64, f64)> {
    let find = |family_name: &str| {
        family(samples, family_name)
            .find(|s| {
                label(s, "cluster") == Some(cluster)
                    && label(s, "namespace") == Some(namespace)
                    && label(s, "deployment") == Some(name)
            })
            .and_then(|s| sample_value(s))
    };
    Some((
        find("kube_deployment_status_replicas_ready")?,
        find("kube_deployment_spec_replicas")?,
    ))
}

/// The last rollout's duration per `namespace/name`, from the history.
async fn last_rollouts(hub_client: &kube::Client) -> BTreeMap<String, f64> {
    let Ok(text) = get_text(hub_client, "/metrics/clusters/history").await else {
        return BTreeMap::new();
    };
    let history: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let mut out = BTreeMap::new();
    for r in history["rollouts"].as_array().into_iter().flatten() {
        let key = format!(
            "{}/{}",
            r["namespace"].as_str().unwrap_or(""),
            r["name"].as_str().unwrap_or("")
        );
        out.insert(key, r["seconds"].as_f64().unwrap_or(0.0));
    }
    out
}

async fn apps_table(hub_client: &kube::Client, samples: &[String]) -> anyhow::Result<String> {
    let apps: Api<Application> = Api::all(hub_client.clone());
    let apps = apps.list(&ListParams::default()).await?;
    let rollouts = last_rollouts(hub_client).await;
    let headers = ["NAMESPACE", "NAME", "CLUSTER", "READY", "LAST-ROLLOUT"];
    let mut rows = Vec::new();
    for app in &apps.items {
        let ns = app.metadata.namespace.clone().unwrap_or_default();
        let name = app.metadata.name.clone().unwrap_or_default();
        let rollout = rollouts
            .get(&format!("{ns}/{name}"))
            .map(|s| format!("{s:.0}s"))
            .unwrap_or_else(|| "-".into());
        let mut per_cluster: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        let applied = app
            .status
            .as_ref()
            .map(|s| s.applied_resources.as_slice())
            .unwrap_or_default();
        for r in applied.iter().filter(|r| r.kind == "Deployment") {
            let entry = per_cluster.entry(r.cluster.clone()).or_default();
            if let Some((ready, desired)) =
                deployment_replicas(samples, &r.cluster, &r.namespace, &r.name)
            {
                entry.0 += ready;
                entry.1 += desired;
            }
        }
        for (cluster, (ready, desired)) in per_cluster {
            rows.push(vec![
                ns.clone(),
                name.clone(),
                cluster,
                format!("{ready}/{desired}"),
                rollout.clone(),
            ]);
        }
    }
    Ok(table::render(&headers.map(String::from), &rows))
}
