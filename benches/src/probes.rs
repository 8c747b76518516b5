//! `probes`: what a hub spends per member on its periodic work (health probes of `/readyz`,
//! and the fleet metrics scrape, which runs at the same interval). One `flotilla member
//! --count M` process and one hub probing every `--interval`; the hub's CPU over `--secs`
//! with no member joined (the floor: an idle hub) and then with all M joined and Available.

use std::path::PathBuf;
use std::time::Duration;

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};

use crate::hub::{self, Flotilla};

/// Flags of `probes`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Simulated member clusters (one `flotilla member --count M` process).
    #[arg(long, default_value_t = 50)]
    pub members: u32,
    /// The hub's `--cluster-probe-interval` (seconds).
    #[arg(long, default_value_t = 1)]
    pub interval_secs: u64,
    /// The hub's `--fleet-metrics-interval` (seconds; default: the probe interval). A long one
    /// (e.g. 3600: one scrape at start, before any member joined) leaves the probes alone.
    #[arg(long)]
    pub metrics_interval_secs: Option<u64>,
    /// The hub's `--mcs-resync-interval` (seconds; default: the hub's, 1 s). A long one leaves
    /// the multi-cluster Services controller's reads of every member out of the window.
    #[arg(long)]
    pub mcs_interval_secs: Option<u64>,
    /// How long each CPU window is (seconds).
    #[arg(long, default_value_t = 30)]
    pub secs: u64,
    /// Give up waiting for the members to be Available after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// The flotilla binary.
    #[arg(long, default_value_os_t = hub::default_binary())]
    pub flotilla: PathBuf,
}

fn managed_clusters(client: &kube::Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "cluster.open-cluster-management.io",
        "v1",
        "ManagedCluster",
    ));
    Api::all_with(client.clone(), &resource)
}

/// ManagedClusters whose `ManagedClusterConditionAvailable` is `True`.
async fn available(client: &kube::Client) -> anyhow::Result<usize> {
    let list = managed_clusters(client)
        .list(&ListParams::default())
        .await?;
    Ok(list
        .items
        .iter()
        .filter(|c| {
            c.data
                .pointer("/status/conditions")
                .and_then(|cs| cs.as_array())
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c["type"] == "ManagedClusterConditionAvailable" && c["status"] == "True"
                    })
                })
        })
        .count())
}

/// The hub's CPU seconds and its descriptors at the end of a `secs` window.
async fn window(pid: u32, secs: u64) -> anyhow::Result<(f64, usize)> {
    let before = hub::Usage::of(pid)?;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let after = hub::Usage::of(pid)?;
    Ok((after.cpu_secs - before.cpu_secs, after.descriptors))
}

/// The hub flags `--metrics-interval-secs` and `--mcs-interval-secs` ask for.
fn extra_hub_flags(args: &Args) -> Vec<String> {
    let mut flags = Vec::new();
    if let Some(secs) = args.metrics_interval_secs {
        flags.extend(["--fleet-metrics-interval".to_string(), format!("{secs}s")]);
    }
    if let Some(secs) = args.mcs_interval_secs {
        flags.extend(["--mcs-resync-interval".to_string(), format!("{secs}s")]);
    }
    flags
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let interval = args.interval_secs.max(1);
    println!(
        "probes: {} members, hub --cluster-probe-interval {interval}s {}, {} s windows",
        args.members,
        extra_hub_flags(&args).join(" "),
        args.secs
    );
    let started = std::time::Instant::now();
    let (members, names, _) =
        crate::dispatch::start_members(&args.flotilla, args.members, "100ms").await?;
    println!(
        "  {} members serving in {:.1?}",
        args.members,
        started.elapsed()
    );
    let interval_flag = format!("{interval}s");
    let extra = extra_hub_flags(&args);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let (hub, hub_client) =
        Flotilla::hub_probing_every(&args.flotilla, &interval_flag, &extra).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (idle_cpu, idle_fds) = window(hub.pid(), args.secs).await?;
    let hub_idle = hub::Usage::of(hub.pid())?;

    crate::dispatch::join_all(&args.flotilla, &hub, &members, &names)?;
    crate::dispatch::poll_until(
        "members Available",
        names.len(),
        Duration::from_secs(args.timeout_secs),
        || available(&hub_client),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(interval * 2)).await;
    let members_before = hub::Usage::of(members.pid())?;
    let (busy_cpu, busy_fds) = window(hub.pid(), args.secs).await?;
    let members_after = hub::Usage::of(members.pid())?;
    let hub_after = hub::Usage::of(hub.pid())?;

    let rounds = args.secs as f64 / interval as f64;
    let probes = rounds * f64::from(args.members);
    let per_probe = (busy_cpu - idle_cpu).max(0.0) / probes;
    println!(
        "  hub CPU over {} s: {idle_cpu:.2} s idle with no member, {busy_cpu:.2} s with {} members ({rounds:.0} rounds); descriptors {idle_fds} -> {busy_fds}",
        args.secs, args.members
    );
    println!(
        "  per member and round (probe, metrics scrape and mcs reads at their intervals): {:.2} ms hub CPU; members process {:.2} ms",
        per_probe * 1000.0,
        (members_after.cpu_secs - members_before.cpu_secs) / probes * 1000.0
    );
    println!(
        "  RSS: hub {} with no member, {} with {} joined; members process {} ({:.2} MiB per member), {} descriptors",
        hub::mib(hub_idle.rss_kib),
        hub::mib(hub_after.rss_kib),
        args.members,
        hub::mib(members_after.rss_kib),
        members_after.rss_kib as f64 / 1024.0 / f64::from(args.members.max(1)),
        members_after.descriptors
    );
    println!(
        "  extrapolated: 1,000 members at the default 10 s interval = {:.1}% of one core on the hub",
        per_probe * 1000.0 / 10.0 * 100.0
    );
    Ok(())
}
