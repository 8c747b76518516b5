//! `resync`: a hub over A Applications x M simulated members, all converged, is killed and
//! started again on the same data dir with nothing changed. Reported: the time until it
//! has reconciled every Application again (its
//! `flotilla_controller_reconcile_duration_seconds_count{controller="application"}`
//! reaching A, and the members having been read), and the writes the members received from
//! then on, counted from the members' own `apiserver_request_total` by verb (goal: none).
//! The floor is the same count over an idle window of the same length before the restart.
//! Each Application places one `k8s-objects` ConfigMap, which the member simulator's own
//! controllers never write, so every write counted is the hub's.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::dispatch;
use crate::hub;
use crate::scrape;

/// Flags of `resync`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Simulated member clusters (one `flotilla member --count M` process).
    #[arg(long, default_value_t = 10)]
    pub members: u32,
    /// Applications, each placing one ConfigMap on every member (the size: 10000).
    #[arg(long, default_value_t = 200)]
    pub apps: usize,
    /// Concurrent writers of Applications.
    #[arg(long, default_value_t = 16)]
    pub writers: usize,
    /// Seconds of quiet before counting, and the length of the idle window.
    #[arg(long, default_value_t = 5)]
    pub settle_secs: u64,
    /// Give up after this many seconds per phase.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    /// The flotilla binary.
    #[arg(long, default_value_os_t = hub::default_binary())]
    pub flotilla: PathBuf,
}

fn mutating(verb: &str) -> bool {
    scrape::MUTATING_VERBS.contains(&verb)
}

fn reading(verb: &str) -> bool {
    verb == "get" || verb == "list"
}

/// The hub's application reconciles since it started, by outcome.
pub(crate) async fn reconciles(hub: &kube::Client, outcome: &str) -> anyhow::Result<usize> {
    let text = scrape::metrics(hub).await?;
    let count = scrape::sum(
        &text,
        "flotilla_controller_reconcile_duration_seconds_count",
        &[("controller", "application"), ("outcome", outcome)],
    );
    Ok(count as usize)
}

fn total(requests: &BTreeMap<String, f64>) -> f64 {
    requests.values().sum()
}

fn show(requests: &BTreeMap<String, f64>) -> String {
    if requests.is_empty() {
        return "none".into();
    }
    let parts: Vec<String> = requests.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("{} ({})", total(requests), parts.join(", "))
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let settle = Duration::from_secs(args.settle_secs);
    let placements = args.apps * args.members as usize;
    println!(
        "resync: {} Applications x {} members = {placements} placements (ConfigMaps); hub restarted with nothing changed",
        args.apps, args.members
    );
    let (members, names, clients) =
        dispatch::start_members(&args.flotilla, args.members, "0s").await?;
    let (mut hub, hub_client) = dispatch::joined_hub(&args.flotilla, &members, &names).await?;
    let apps = dispatch::applications(&hub_client);
    let started = Instant::now();
    let objects =
        (0..args.apps).map(|k| dispatch::config_map_application(&format!("app-{k}"), &names));
    dispatch::create_all(&apps, objects, args.writers).await?;
    dispatch::poll_until("running Applications", args.apps, timeout, || {
        dispatch::running(&apps)
    })
    .await?;
    println!(
        "  converged: {} Applications running in {:.2?}",
        args.apps,
        started.elapsed()
    );

    // Floor: what the members receive from a converged hub left alone for the same window.
    tokio::time::sleep(settle).await;
    let quiet = scrape::served_requests(&clients, mutating).await?;
    tokio::time::sleep(settle).await;
    let before = scrape::served_requests(&clients, mutating).await?;
    let reads_before = scrape::served_requests(&clients, reading).await?;
    let idle = scrape::delta(&quiet, &before);

    let members_before = hub::Usage::of(members.pid())?;
    hub.restart()?;
    let started = Instant::now();
    let hub_client = hub
        .wait_ready(&hub.data_dir().join("admin.kubeconfig"))
        .await?;
    let ready = started.elapsed();
    dispatch::poll_until("Applications reconciled", args.apps, timeout, || {
        reconciles(&hub_client, "ok")
    })
    .await?;
    let verified = started.elapsed();
    let (hub_cpu, members_cpu) = (
        hub::Usage::of(hub.pid())?.cpu_secs,
        hub::Usage::of(members.pid())?.cpu_secs - members_before.cpu_secs,
    );
    let reads = scrape::delta(
        &reads_before,
        &scrape::served_requests(&clients, reading).await?,
    );
    tokio::time::sleep(settle).await;
    let writes = scrape::delta(&before, &scrape::served_requests(&clients, mutating).await?);
    let errors = reconciles(&hub_client, "error").await?;
    let apps = dispatch::applications(&hub_client);
    let still_running = dispatch::running(&apps).await?;
    if still_running < args.apps {
        bail!(
            "only {still_running} of {} Applications running after the restart",
            args.apps
        );
    }

    println!(
        "  restarted hub ready in {ready:.2?}; every Application reconciled (ok) in {verified:.2?}; reconcile errors: {errors}"
    );
    println!("  member reads until then: {}", show(&reads));
    let per_placement = |cpu: f64| cpu * 1000.0 / placements.max(1) as f64;
    println!(
        "  CPU until then: hub {hub_cpu:.2}s (start-up included; {:.3} ms per placement), members process {members_cpu:.2}s ({:.3} ms per placement)",
        per_placement(hub_cpu),
        per_placement(members_cpu)
    );
    println!(
        "  member writes after the restart (until {:.0?} after the last reconcile): {} (goal 0)",
        settle,
        show(&writes)
    );
    println!(
        "  floor: member writes over an idle {settle:.0?} before the restart: {}",
        show(&idle)
    );
    Ok(())
}
