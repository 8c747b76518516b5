//! `propagation`: one Application (a `k8s-objects` ConfigMap) placed on N simulated members;
//! its spec changed C times one after the other, each time until every member holds the new
//! object (seen by a watch on each member). The floor, in the same run: the same change
//! written by the bench straight to the N members at once, seen by the same watches.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::dispatch;
use crate::hub;
use crate::scrape;
use crate::stats::Summary;

/// Flags of `propagation`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Simulated member clusters the Application is placed on.
    #[arg(long, default_value_t = 100)]
    pub members: u32,
    /// Spec changes to time, one after the other.
    #[arg(long, default_value_t = 50)]
    pub changes: usize,
    /// The deploy step's `parallelism` (clusters written at once); 0 leaves the default (5).
    #[arg(long, default_value_t = 0)]
    pub parallelism: usize,
    /// Give up on one change after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
    /// The flotilla binary.
    #[arg(long, default_value_os_t = hub::default_binary())]
    pub flotilla: PathBuf,
}

const NAME: &str = "propagated";

fn config_map(seq: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": NAME},
           "data": {"seq": seq.to_string()}})
}

fn components(seq: usize) -> Value {
    json!([{"name": NAME, "type": "k8s-objects",
            "properties": {"objects": [config_map(seq)]}}])
}

fn application(clusters: &[String], parallelism: usize) -> anyhow::Result<DynamicObject> {
    let mut app = json!({
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": NAME, "namespace": "default"},
        "spec": {
            "components": components(0),
            "policies": [{"type": "topology", "name": "everywhere",
                          "properties": {"clusters": clusters}}]
        }
    });
    if parallelism > 0 {
        app["spec"]["workflow"] = json!({"steps": [{"name": "deploy", "type": "deploy",
            "properties": {"policies": ["everywhere"], "parallelism": parallelism}}]});
    }
    Ok(serde_json::from_value(app)?)
}

/// One watch per member on the ConfigMap `NAME` in a namespace; remembers the highest `seq`
/// each member has shown.
struct Watchers {
    rx: mpsc::UnboundedReceiver<(usize, usize)>,
    seen: Vec<Option<usize>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Watchers {
    fn start(clients: &[kube::Client], namespace: &str) -> Watchers {
        let (tx, rx) = mpsc::unbounded_channel();
        let tasks = clients
            .iter()
            .enumerate()
            .map(|(member, client)| {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
                let config = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut events = watcher(api, config).boxed();
                    while let Some(event) = events.next().await {
                        if let Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) = event
                            && let Some(seq) = seq_of(&cm)
                            && tx.send((member, seq)).is_err()
                        {
                            return;
                        }
                    }
                })
            })
            .collect();
        Watchers {
            rx,
            seen: vec![None; clients.len()],
            tasks,
        }
    }

    /// Waits until every member has shown `seq` (or later).
    async fn all_at(&mut self, seq: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.seen.iter().any(|s| s.is_none_or(|s| s < seq)) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some((member, s))) => {
                    let slot = &mut self.seen[member];
                    *slot = Some(slot.map_or(s, |old| old.max(s)));
                }
                Ok(None) => bail!("the watches ended"),
                Err(_) => {
                    let behind = self.seen.iter().filter(|s| s.is_none_or(|s| s < seq));
                    bail!(
                        "{} members had not seen change {seq} after {timeout:?}",
                        behind.count()
                    )
                }
            }
        }
        Ok(())
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn seq_of(cm: &ConfigMap) -> Option<usize> {
    cm.data.as_ref()?.get("seq")?.parse().ok()
}

/// Times `changes` changes: `change(i)` starts change `i`, done when every member shows it.
async fn time_changes<F, Fut>(
    watchers: &mut Watchers,
    changes: usize,
    timeout: Duration,
    change: F,
) -> anyhow::Result<Summary>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut samples = Vec::with_capacity(changes);
    for seq in 1..=changes {
        let started = Instant::now();
        change(seq).await?;
        watchers.all_at(seq, timeout).await?;
        samples.push(started.elapsed());
    }
    Ok(Summary::of(&mut samples))
}

/// The floor: the ConfigMap written straight to every member at once, per change.
async fn floor(args: &Args, clients: &[kube::Client]) -> anyhow::Result<Summary> {
    let timeout = Duration::from_secs(args.timeout_secs);
    for client in clients {
        crate::write::ensure_namespace(client, "floor").await?;
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            "floor",
            &kube::api::ApiResource::erase::<ConfigMap>(&()),
        );
        api.create(
            &PostParams::default(),
            &serde_json::from_value(config_map(0))?,
        )
        .await?;
    }
    let mut watchers = Watchers::start(clients, "floor");
    watchers.all_at(0, timeout).await?;
    time_changes(&mut watchers, args.changes, timeout, |seq| async move {
        let patch = json!({"data": {"seq": seq.to_string()}});
        let writes = clients.iter().map(|client| {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), "floor");
            let patch = &patch;
            async move {
                api.patch(NAME, &PatchParams::default(), &Patch::Merge(patch))
                    .await?;
                anyhow::Ok(())
            }
        });
        futures::stream::iter(writes)
            .buffer_unordered(clients.len().max(1))
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    })
    .await
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let parallelism = match args.parallelism {
        0 => "default".to_string(),
        p => p.to_string(),
    };
    println!(
        "propagation: one Application on {} members, {} spec changes one after the other, deploy parallelism {parallelism}",
        args.members, args.changes
    );
    let (members, names, clients) =
        dispatch::start_members(&args.flotilla, args.members, "0s").await?;
    let floor = floor(&args, &clients).await?;
    println!("  floor (the change written straight to all members at once): {floor}");

    let (hub, hub_client) = dispatch::joined_hub(&args.flotilla, &members, &names).await?;
    let apps = dispatch::applications(&hub_client);
    let mut watchers = Watchers::start(&clients, "default");
    let started = Instant::now();
    apps.create(
        &PostParams::default(),
        &application(&names, args.parallelism)?,
    )
    .await?;
    watchers.all_at(0, timeout).await?;
    println!(
        "  first dispatch to all {} members: {:.2?}",
        args.members,
        started.elapsed()
    );
    let (hub_before, members_before) = (hub::Usage::of(hub.pid())?, hub::Usage::of(members.pid())?);
    let reconciles_before = crate::resync::reconciles(&hub_client, "ok").await?;
    let requests_before = scrape::served_requests(&clients, |v| v != "watch").await?;
    let timed = time_changes(&mut watchers, args.changes, timeout, |seq| {
        let apps = apps.clone();
        async move {
            let patch = json!({"spec": {"components": components(seq)}});
            apps.patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            Ok(())
        }
    })
    .await?;
    let reconciles = crate::resync::reconciles(&hub_client, "ok").await? - reconciles_before;
    let requests = scrape::delta(
        &requests_before,
        &scrape::served_requests(&clients, |v| v != "watch").await?,
    );
    let (hub_after, members_after) = (hub::Usage::of(hub.pid())?, hub::Usage::of(members.pid())?);
    println!("  hub (Application spec change -> all members hold it): {timed}");
    println!(
        "  hub / floor: p50 {:.1}x, p99 {:.1}x (goal p99 <= 500ms)",
        timed.p50.as_secs_f64() / floor.p50.as_secs_f64().max(1e-9),
        timed.p99.as_secs_f64() / floor.p99.as_secs_f64().max(1e-9)
    );
    let per_change = |cpu: f64| cpu * 1000.0 / args.changes.max(1) as f64;
    println!(
        "  per change: {:.1} application reconciles; CPU {:.0} ms hub, {:.0} ms members process",
        reconciles as f64 / args.changes.max(1) as f64,
        per_change(hub_after.cpu_secs - hub_before.cpu_secs),
        per_change(members_after.cpu_secs - members_before.cpu_secs)
    );
    let per_member_change = (args.changes * clients.len()).max(1) as f64;
    let requests: Vec<String> = requests
        .iter()
        .map(|(k, v)| format!("{k}: {:.2}", v / per_member_change))
        .collect();
    println!("  requests per member and change: {}", requests.join(", "));
    Ok(())
}
