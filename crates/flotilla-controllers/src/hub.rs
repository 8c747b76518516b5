//! Everything that runs beside the hub's API server.

use std::time::Duration;

/// Options for the hub's controllers.
#[derive(Debug, Clone)]
pub struct HubControllerOptions {
    /// How often every member's `/readyz` is probed.
    pub cluster_probe_interval: Duration,
    /// At most this many members are probed at once (and scraped, and read by the
    /// multi-cluster Services controller).
    pub cluster_probe_concurrency: usize,
    /// How often every available member's `/metrics` is scraped for `/metrics/clusters`.
    pub fleet_metrics_interval: Duration,
    /// How often the multi-cluster Services controller reads the members that export or
    /// import (the others are only watched).
    pub mcs_resync_interval: Duration,
    /// The GitOps controller's options (cache folder, poll interval).
    pub gitops: crate::gitops::GitOpsOptions,
    /// Push notifications from `POST /api/webhook`.
    pub gitops_pushes: crate::gitops::PushQueue,
    /// How many ApplicationRevisions are kept per Application.
    pub application_revision_limit: usize,
    /// At most this many dispatch requests (watches aside) go to one member at once.
    pub member_request_concurrency: usize,
    /// At most this many Applications reconcile at once; more wait in the queue.
    pub application_concurrency: u16,
    /// How soon an Application waiting for health looks again unless woken earlier.
    pub application_health_recheck: Duration,
    /// How often an Application whose workflow has finished is passed over by itself
    /// (the drift watch and the hub's watches wake it earlier).
    pub application_resync_period: Duration,
}

/// Runs every hub controller that writes (to the hub, a member or a webhook) until one fails
/// or the future is dropped. Only the hub holding the controllers' Lease runs these.
pub async fn run(hub_client: kube::Client, options: HubControllerOptions) -> anyhow::Result<()> {
    tokio::try_join!(
        crate::application::run(hub_client.clone(), &options),
        crate::cluster::run(
            hub_client.clone(),
            crate::cluster::health::ProbeOptions {
                interval: options.cluster_probe_interval,
                concurrency: options.cluster_probe_concurrency,
            }
        ),
        crate::alerts::run(hub_client.clone(), options.cluster_probe_interval),
        crate::grants::run(hub_client.clone()),
        crate::gitops::run(
            hub_client.clone(),
            options.gitops.clone(),
            options.gitops_pushes.clone()
        ),
        crate::mcs::run(
            hub_client.clone(),
            options.mcs_resync_interval,
            options.cluster_probe_concurrency
        ),
    )?;
    Ok(())
}

/// Runs what every hub does whether it leads or not: the fleet metrics scrape, which only
/// reads (the hub and members' `/metrics`) and fills this process's `/metrics/clusters` and
/// the dashboard's history, so each hub behind a load balancer answers them.
pub async fn run_on_every_hub(
    hub_client: kube::Client,
    options: HubControllerOptions,
) -> anyhow::Result<()> {
    crate::fleetmetrics::run(
        hub_client,
        options.fleet_metrics_interval,
        options.cluster_probe_concurrency,
    )
    .await
}
