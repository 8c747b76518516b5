//! `simulator`: the member simulator's cost with Pods. One `flotilla member --count M`
//! process; D Deployments of R replicas written to each member; time until every Pod is
//! Running and Ready, and the process's RSS per simulated object (Deployments, ReplicaSets
//! and Pods) against the floor of the objects' own size as served.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, PostParams};

use crate::hub;

/// Flags of `simulator`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Simulated member clusters (one `flotilla member --count M` process).
    #[arg(long, default_value_t = 4)]
    pub members: u32,
    /// Deployments written to each member.
    #[arg(long, default_value_t = 250)]
    pub deployments: usize,
    /// Replicas of each Deployment.
    #[arg(long, default_value_t = 2)]
    pub replicas: i32,
    /// Concurrent writers of Deployments (over all members).
    #[arg(long, default_value_t = 16)]
    pub writers: usize,
    /// How long a simulated Pod takes to become ready.
    #[arg(long, default_value = "100ms")]
    pub ready_delay: String,
    /// Seconds to wait after the last Pod is ready before the RSS is read.
    #[arg(long, default_value_t = 5)]
    pub settle_secs: u64,
    /// Give up after this many seconds per phase.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
    /// The flotilla binary.
    #[arg(long, default_value_os_t = hub::default_binary())]
    pub flotilla: PathBuf,
    /// Keep the members running this long after the report (to profile them by hand).
    #[arg(long, default_value_t = 0)]
    pub hold_secs: u64,
}

fn deployment(name: &str, replicas: i32) -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "web",
                    "image": "nginx:1.27",
                    "ports": [{"containerPort": 80}]
                }]}
            }
        }
    }))?)
}

fn running_and_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn running_pods(clients: &[kube::Client]) -> anyhow::Result<usize> {
    let mut n = 0;
    for client in clients {
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        n += pods
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|p| running_and_ready(p))
            .count();
    }
    Ok(n)
}

/// Objects and their bytes as served (JSON) in one member's `default` namespace.
async fn served<K>(client: &kube::Client) -> anyhow::Result<(usize, usize)>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + k8s_openapi::serde::de::DeserializeOwned
        + k8s_openapi::serde::Serialize,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), "default");
    let items = api.list(&ListParams::default()).await?.items;
    let mut bytes = 0;
    for item in &items {
        bytes += serde_json::to_vec(item)?.len();
    }
    Ok((items.len(), bytes))
}

/// Deployments, ReplicaSets and Pods over every member: how many of each, and their bytes.
async fn served_objects(clients: &[kube::Client]) -> anyhow::Result<([usize; 3], usize)> {
    let (mut counts, mut bytes) = ([0; 3], 0);
    for client in clients {
        let kinds = [
            served::<Deployment>(client).await?,
            served::<ReplicaSet>(client).await?,
            served::<Pod>(client).await?,
        ];
        for (i, (n, b)) in kinds.into_iter().enumerate() {
            counts[i] += n;
            bytes += b;
        }
    }
    Ok((counts, bytes))
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let pods_wanted = args.members as usize * args.deployments * args.replicas as usize;
    println!(
        "simulator: {} members x {} Deployments x {} replicas = {pods_wanted} Pods, {} writers, ready delay {}",
        args.members, args.deployments, args.replicas, args.writers, args.ready_delay
    );
    let (members, _, clients) =
        crate::dispatch::start_members(&args.flotilla, args.members, &args.ready_delay).await?;
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let idle = hub::Usage::of(members.pid())?;

    let started = Instant::now();
    let writes = clients.iter().flat_map(|client| {
        (0..args.deployments).map(move |k| {
            let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
            async move {
                api.create(
                    &PostParams::default(),
                    &deployment(&format!("d-{k}"), args.replicas)?,
                )
                .await?;
                anyhow::Ok(())
            }
        })
    });
    futures::stream::iter(writes)
        .buffer_unordered(args.writers)
        .try_collect::<Vec<()>>()
        .await?;
    let written = started.elapsed();
    crate::dispatch::poll_until("Pods running and ready", pods_wanted, timeout, || {
        running_pods(&clients)
    })
    .await?;
    let running = started.elapsed();
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let busy = hub::Usage::of(members.pid())?;
    let ([deploys, sets, pods], bytes) = served_objects(&clients).await?;
    let objects = deploys + sets + pods;

    println!(
        "  Deployments written in {written:.2?}; all {pods_wanted} Pods running and ready in {running:.2?} ({:.0} Pods/s)",
        pods_wanted as f64 / running.as_secs_f64()
    );
    println!(
        "  process RSS: {} idle, {} with the workloads; open descriptors {} idle, {} busy; CPU {:.1} s",
        hub::mib(idle.rss_kib),
        hub::mib(busy.rss_kib),
        idle.descriptors,
        busy.descriptors,
        busy.cpu_secs - idle.cpu_secs
    );
    let grown = busy.rss_kib.saturating_sub(idle.rss_kib) as f64;
    println!(
        "  per simulated object ({deploys} Deployments, {sets} ReplicaSets, {pods} Pods): {:.1} KiB RSS; floor (the objects as served) {:.1} KiB",
        grown / objects.max(1) as f64,
        bytes as f64 / 1024.0 / objects.max(1) as f64
    );
    println!(
        "  per idle member: {:.1} MiB RSS, {:.1} descriptors",
        idle.rss_kib as f64 / 1024.0 / f64::from(args.members),
        idle.descriptors as f64 / f64::from(args.members)
    );
    if args.hold_secs > 0 {
        println!(
            "  holding for {} s: members pid {}",
            args.hold_secs,
            members.pid()
        );
        tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    }
    Ok(())
}
