//! `dispatch`: a hub and M simulated members; K Applications, each deploying one
//! webservice to every member. Time until every Application is `running`, against the
//! floor of writing the same K x M Deployments straight to the members and waiting until
//! all are ready (the same member simulator makes both ready).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};

use crate::hub::{self, Flotilla};
use crate::scrape;

/// Flags of `dispatch`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Simulated member clusters (served by one `flotilla member --count M` process).
    #[arg(long, default_value_t = 10)]
    pub members: u32,
    /// Applications, each deploying one webservice to every member.
    #[arg(long, default_value_t = 100)]
    pub apps: usize,
    #[command(flatten)]
    pub run: RunFlags,
}

/// Flags `dispatch` and `fleet` share.
#[derive(Debug, clap::Args)]
pub(crate) struct RunFlags {
    /// Concurrent writers (of Applications to the hub, of Deployments to the members).
    #[arg(long, default_value_t = 16)]
    pub writers: usize,
    /// How long the member simulator takes to make a workload ready.
    #[arg(long, default_value = "0s")]
    pub ready_delay: String,
    /// Give up after this many seconds per phase.
    #[arg(long, default_value_t = 3600)]
    pub timeout_secs: u64,
    /// The flotilla binary.
    #[arg(long, default_value_os_t = hub::default_binary())]
    pub flotilla: PathBuf,
    /// Skip the floor (for a memory run: the floor is a time, and its Deployments would
    /// only load the members).
    #[arg(long)]
    pub skip_floor: bool,
    /// Keep the hub and the members running this long after the report (to profile them
    /// by hand, e.g. a heap snapshot of the hub with the members still there).
    #[arg(long, default_value_t = 0)]
    pub hold_secs: u64,
    /// Read the hub's memory again this long after all Applications run: what it holds for
    /// the placements once the dispatch's transient peak is over and the allocator has had
    /// time to give freed pages back (0: not read).
    #[arg(long, default_value_t = 0)]
    pub settle_secs: u64,
}

const IMAGE: &str = "nginx:1.27";

fn app_name(k: usize) -> String {
    format!("app-{k}")
}

/// The Deployment a webservice component renders to, close enough for the floor: same
/// name, image, port, one replica.
fn deployment(namespace: &str, name: &str) -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.oam.dev/component": name}},
            "template": {
                "metadata": {"labels": {"app.oam.dev/component": name}},
                "spec": {"containers": [{
                    "name": name,
                    "image": IMAGE,
                    "ports": [{"containerPort": 8000}]
                }]}
            }
        }
    }))?)
}

fn application(name: &str, clusters: &[String]) -> anyhow::Result<DynamicObject> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "components": [{
                "name": name,
                "type": "webservice",
                "properties": {"image": IMAGE, "port": 8000}
            }],
            "policies": [{
                "type": "topology",
                "name": "everywhere",
                "properties": {"clusters": clusters}
            }]
        }
    }))?)
}

/// An Application placing one `k8s-objects` ConfigMap `name` (`data.k: desired`) on
/// `clusters`.
pub(crate) fn config_map_application(
    name: &str,
    clusters: &[String],
) -> anyhow::Result<DynamicObject> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "components": [{"name": name, "type": "k8s-objects", "properties": {"objects": [
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                 "data": {"k": "desired"}}]}}],
            "policies": [{"type": "topology", "name": "everywhere",
                          "properties": {"clusters": clusters}}]
        }
    }))?)
}

pub(crate) fn application_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "core.oam.dev",
        "v1beta1",
        "Application",
    ))
}

/// Ready Deployments (readyReplicas >= replicas) in `namespace` of one member.
async fn ready_deployments(client: &kube::Client, namespace: &str) -> anyhow::Result<usize> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter(|d| {
            let want = d.spec.replicas.unwrap_or(1);
            let ready = d
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            ready >= want
        })
        .count())
}

/// Polls until `check` reports at least `want`, returning when that was first seen.
pub(crate) async fn poll_until<F, Fut>(
    what: &str,
    want: usize,
    timeout: Duration,
    check: F,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<usize>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let asked = Instant::now();
        let have = check().await?;
        if have >= want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what}: {have} of {want} after {timeout:?}");
        }
        // A check that lists thousands of objects costs the hub and this process more CPU
        // the bigger the fleet: pausing 4x as long as it took keeps the polling under a fifth
        // of the time, so the bench does not slow down what it measures.
        tokio::time::sleep(Duration::from_millis(200).max(asked.elapsed() * 4)).await;
    }
}

async fn member_clients(members: &Flotilla, names: &[String]) -> anyhow::Result<Vec<kube::Client>> {
    let mut clients = Vec::with_capacity(names.len());
    for name in names {
        let kubeconfig = members.data_dir().join(name).join("admin.kubeconfig");
        clients.push(members.wait_ready(&kubeconfig).await?);
    }
    Ok(clients)
}

/// Starts `flotilla member --count M` (members `m-1` … `m-M`) and waits for every member.
pub(crate) async fn start_members(
    binary: &Path,
    count: u32,
    ready_delay: &str,
) -> anyhow::Result<(Flotilla, Vec<String>, Vec<kube::Client>)> {
    let n = count.to_string();
    let members = Flotilla::spawn(
        binary,
        &[
            "member",
            "--name",
            "m",
            "--listen",
            "127.0.0.1:0",
            "--count",
            &n,
            "--ready-delay",
            ready_delay,
        ],
    )?;
    let names: Vec<String> = (1..=count).map(|i| format!("m-{i}")).collect();
    let clients = member_clients(&members, &names).await?;
    Ok((members, names, clients))
}

pub(crate) fn join(
    binary: &Path,
    hub_kubeconfig: &Path,
    member_kubeconfig: &Path,
    name: &str,
) -> anyhow::Result<()> {
    let out = std::process::Command::new(binary)
        .args(["cluster", "join"])
        .arg(member_kubeconfig)
        .args(["--name", name])
        .env("KUBECONFIG", hub_kubeconfig)
        .output()
        .context("running flotilla cluster join")?;
    if !out.status.success() {
        bail!(
            "flotilla cluster join {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Joins every member of the `members` process to `hub` (`flotilla cluster join`, one after
/// the other).
pub(crate) fn join_all(
    binary: &Path,
    hub: &Flotilla,
    members: &Flotilla,
    names: &[String],
) -> anyhow::Result<()> {
    let hub_kubeconfig = hub.data_dir().join("admin.kubeconfig");
    for name in names {
        let kubeconfig = members.data_dir().join(name).join("admin.kubeconfig");
        join(binary, &hub_kubeconfig, &kubeconfig, name)?;
    }
    Ok(())
}

/// Starts a hub and joins every member of the `members` process to it.
pub(crate) async fn joined_hub(
    binary: &Path,
    members: &Flotilla,
    names: &[String],
) -> anyhow::Result<(Flotilla, kube::Client)> {
    let (hub, client) = Flotilla::hub(binary).await?;
    let started = Instant::now();
    join_all(binary, &hub, members, names)?;
    println!(
        "  joined {} members in {:.2?}",
        names.len(),
        started.elapsed()
    );
    Ok((hub, client))
}

/// The hub's Applications in `default`.
pub(crate) fn applications(hub: &kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(hub.clone(), "default", &application_resource())
}

/// Creates `objects` through `api`, `writers` at a time.
pub(crate) async fn create_all<I>(
    api: &Api<DynamicObject>,
    objects: I,
    writers: usize,
) -> anyhow::Result<()>
where
    I: IntoIterator<Item = anyhow::Result<DynamicObject>>,
{
    let writes = objects.into_iter().map(|object| async move {
        api.create(&PostParams::default(), &object?).await?;
        anyhow::Ok(())
    });
    futures::stream::iter(writes)
        .buffer_unordered(writers.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Applications whose `status.status` is `running`.
pub(crate) async fn running(apps: &Api<DynamicObject>) -> anyhow::Result<usize> {
    let list = apps.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter(|a| a.data.pointer("/status/status").and_then(|s| s.as_str()) == Some("running"))
        .count())
}

/// The same Deployments written straight to the members (namespace `floor`), until all are
/// ready: (written, ready).
async fn floor(args: &Args, clients: &[kube::Client]) -> anyhow::Result<(Duration, Duration)> {
    let deployments = args.apps * clients.len();
    for client in clients {
        crate::write::ensure_namespace(client, "floor").await?;
    }
    let started = Instant::now();
    // Application by application, over every member in turn (as the hub spreads them): the
    // writers are then on different members, so each member's HTTP/1 client keeps about one
    // connection. Member by member, the writers all hit one member at once and its client kept
    // a connection per writer: at 1,000 members the members process passed 9,000 descriptors
    // 3 minutes into the floor (limit 20,000) and a connect timed out after 11.
    let writes = (0..args.apps).flat_map(|k| {
        clients.iter().map(move |client| {
            let api: Api<Deployment> = Api::namespaced(client.clone(), "floor");
            async move {
                let d = deployment("floor", &app_name(k))?;
                api.create(&PostParams::default(), &d).await?;
                anyhow::Ok(())
            }
        })
    });
    futures::stream::iter(writes)
        .buffer_unordered(args.run.writers)
        .try_collect::<Vec<()>>()
        .await?;
    let written = started.elapsed();
    let timeout = Duration::from_secs(args.run.timeout_secs);
    poll_until("floor: ready Deployments", deployments, timeout, || async {
        let mut ready = 0;
        for client in clients {
            ready += ready_deployments(client, "floor").await?;
        }
        anyhow::Ok(ready)
    })
    .await?;
    Ok((written, started.elapsed()))
}

/// Member requests on Deployments (and all others summed) per placement, e.g.
/// `get deployments: 1.00, patch deployments: 1.00, other: 3.10`.
fn per_placement_requests(
    requests: &std::collections::BTreeMap<String, f64>,
    placements: usize,
) -> String {
    let per = |v: f64| v / placements.max(1) as f64;
    let mut parts: Vec<String> = requests
        .iter()
        .filter(|(k, _)| k.contains(" deployments"))
        .map(|(k, v)| format!("{k}: {:.2}", per(*v)))
        .collect();
    let other: f64 = requests
        .iter()
        .filter(|(k, _)| !k.contains(" deployments"))
        .map(|(_, v)| v)
        .sum();
    parts.push(format!("other: {:.2}", per(other)));
    parts.join(", ")
}

/// The hub's `/readyz` probes of members between two scrapes of its metrics: how many, and
/// the bucket bounds of their p50, p99 and slowest.
fn probe_durations(before: &str, after: &str) -> String {
    let (n, bounds) = scrape::histogram_delta(
        before,
        after,
        "flotilla_cluster_probe_duration_seconds",
        &[0.5, 0.99, 1.0],
    );
    let show = |b: &Option<f64>| match b {
        Some(s) if s.is_finite() => format!("<= {:.0} ms", s * 1000.0),
        Some(_) => "over the last bucket".to_string(),
        None => "-".to_string(),
    };
    format!(
        "{n:.0}, p50 {}, p99 {}, slowest {}",
        show(&bounds[0]),
        show(&bounds[1]),
        show(&bounds[2])
    )
}

/// KiB grown per placement, from `before` to `after` (KiB each).
fn kib_per(after: u64, before: u64, placements: usize) -> f64 {
    after.saturating_sub(before) as f64 / placements.max(1) as f64
}

/// CPU seconds per placement, in ms.
fn ms_per(cpu_secs: f64, placements: usize) -> f64 {
    cpu_secs * 1000.0 / placements.max(1) as f64
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    measure("dispatch", args).await
}

/// Runs the floor and the hub phase; `scenario` names the report.
pub(crate) async fn measure(scenario: &str, args: Args) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(args.run.timeout_secs);
    let deployments = args.apps * args.members as usize;
    println!(
        "{scenario}: {} members x {} applications = {deployments} Deployments, {} writers, member ready delay {}",
        args.members, args.apps, args.run.writers, args.run.ready_delay
    );
    let started = Instant::now();
    let (members, names, clients) =
        start_members(&args.run.flotilla, args.members, &args.run.ready_delay).await?;
    let members_idle = hub::Usage::of(members.pid())?;
    println!(
        "  {} members serving in {:.2?}: members process RSS {}",
        args.members,
        started.elapsed(),
        hub::mib(members_idle.rss_kib)
    );

    // Floor: the same Deployments written straight to the members, in their own namespace.
    let floor_ready = if args.run.skip_floor {
        println!("  floor: skipped (--skip-floor)");
        None
    } else {
        let requests_before = scrape::served_requests(&clients, |_| true).await?;
        let (floor_written, floor_ready) = floor(&args, &clients).await?;
        let members_floor = hub::Usage::of(members.pid())?;
        let floor_requests = scrape::delta(
            &requests_before,
            &scrape::served_requests(&clients, |_| true).await?,
        );
        println!(
            "  floor (Deployments straight to members): written in {floor_written:.2?}, all ready in {floor_ready:.2?} ({:.0} Deployments/s); members CPU {:.2} ms per Deployment; members process RSS {}",
            deployments as f64 / floor_ready.as_secs_f64(),
            ms_per(members_floor.cpu_secs - members_idle.cpu_secs, deployments),
            hub::mib(members_floor.rss_kib)
        );
        println!(
            "  floor: member requests per Deployment: {}",
            per_placement_requests(&floor_requests, deployments)
        );
        Some(floor_ready)
    };

    let (hub, hub_client) = joined_hub(&args.run.flotilla, &members, &names).await?;
    let hub_before = hub::Usage::of(hub.pid())?;
    let members_before = hub::Usage::of(members.pid())?;
    let requests_before = scrape::served_requests(&clients, |_| true).await?;

    let hub_metrics_before = scrape::metrics(&hub_client).await?;

    let apps = applications(&hub_client);
    let started = Instant::now();
    let objects = (0..args.apps).map(|k| application(&app_name(k), &names));
    create_all(&apps, objects, args.run.writers).await?;
    let hub_written = started.elapsed();
    poll_until("hub: running Applications", args.apps, timeout, || {
        running(&apps)
    })
    .await?;
    let hub_running = started.elapsed();
    let hub_after = hub::Usage::of(hub.pid())?;
    let members_after = hub::Usage::of(members.pid())?;
    let hub_requests = scrape::delta(
        &requests_before,
        &scrape::served_requests(&clients, |_| true).await?,
    );
    let hub_metrics = scrape::metrics(&hub_client).await?;

    // The Applications really landed: every member holds a ready Deployment per app.
    let mut landed = 0;
    for client in &clients {
        landed += ready_deployments(client, "default").await?;
    }
    if landed < deployments {
        bail!("only {landed} of {deployments} Deployments ready in the members' default namespace");
    }
    println!(
        "  hub (Applications -> members):       written in {hub_written:.2?}, all running in {hub_running:.2?} ({:.0} placements/s)",
        deployments as f64 / hub_running.as_secs_f64()
    );
    if let Some(floor_ready) = floor_ready {
        println!(
            "  hub / floor time: {:.2}x",
            hub_running.as_secs_f64() / floor_ready.as_secs_f64()
        );
    }
    println!(
        "  passes: {:.1} application reconciles per Application, {:.1} dispatch tasks per placement",
        scrape::sum(
            &hub_metrics,
            "flotilla_controller_reconcile_duration_seconds_count",
            &[("controller", "application")]
        ) / args.apps.max(1) as f64,
        scrape::sum(
            &hub_metrics,
            "flotilla_dispatch_duration_seconds_count",
            &[]
        ) / deployments.max(1) as f64
    );
    println!(
        "  health probes during the dispatch: {}",
        probe_durations(&hub_metrics_before, &hub_metrics)
    );
    println!(
        "  hub phase: member requests per placement: {}",
        per_placement_requests(&hub_requests, deployments)
    );
    println!(
        "  CPU per placement: hub {:.2} ms, members process {:.2} ms",
        ms_per(hub_after.cpu_secs - hub_before.cpu_secs, deployments),
        ms_per(
            members_after.cpu_secs - members_before.cpu_secs,
            deployments
        )
    );
    println!(
        "  hub RSS: {} before the Applications, {} after ({:.1} KiB per placement); members process RSS {} idle, {} after the hub",
        hub::mib(hub_before.rss_kib),
        hub::mib(hub_after.rss_kib),
        kib_per(hub_after.rss_kib, hub_before.rss_kib, deployments),
        hub::mib(members_idle.rss_kib),
        hub::mib(members_after.rss_kib)
    );
    println!(
        "  hub anonymous RSS (heap, stacks; the binary's pages aside): {} before, {} after ({:.1} KiB per placement); hub peak RSS {}",
        hub::mib(hub_before.anon_kib),
        hub::mib(hub_after.anon_kib),
        kib_per(hub_after.anon_kib, hub_before.anon_kib, deployments),
        hub::mib(hub_after.peak_kib)
    );
    if args.run.settle_secs > 0 {
        tokio::time::sleep(Duration::from_secs(args.run.settle_secs)).await;
        let settled = hub::Usage::of(hub.pid())?;
        println!(
            "  hub {} s after all running: RSS {} ({:.1} KiB per placement), anonymous {} ({:.1} KiB per placement)",
            args.run.settle_secs,
            hub::mib(settled.rss_kib),
            kib_per(settled.rss_kib, hub_before.rss_kib, deployments),
            hub::mib(settled.anon_kib),
            kib_per(settled.anon_kib, hub_before.anon_kib, deployments),
        );
    }
    if args.run.hold_secs > 0 {
        println!(
            "  holding for {} s: hub pid {}, members pid {}",
            args.run.hold_secs,
            hub.pid(),
            members.pid()
        );
        tokio::time::sleep(Duration::from_secs(args.run.hold_secs)).await;
    }
    Ok(())
}
