//! Everything that runs beside the hub's API server.

use std::time::Duration;

/// Options for the hub's controllers.
#[derive(Debug, Clone)]
pub struct HubControllerOptions {
    /// How often every member's `/readyz` is probed.
    pub cluster_probe_interval: Duration,
    /// The GitOps controller's options (cache folder, poll interval).
    pub gitops: crate::gitops::GitOpsOptions,
    /// Push notifications from `POST /api/webhook`.
    pub gitops_pushes: crate::gitops::PushQueue,
}

/// Runs every hub controller until one fails or the future is dropped.
pub async fn run(hub_client: kube::Client, options: HubControllerOptions) -> anyhow::Result<()> {
    tokio::try_join!(
        crate::application::run(hub_client.clone()),
        crate::cluster::run(hub_client.clone(), options.cluster_probe_interval),
        crate::fleetmetrics::run(hub_client.clone(), options.cluster_probe_interval),
        crate::alerts::run(hub_client.clone(), options.cluster_probe_interval),
        crate::grants::run(hub_client.clone()),
        crate::gitops::run(
            hub_client.clone(),
            options.gitops.clone(),
            options.gitops_pushes.clone()
        ),
        crate::mcs::run(hub_client.clone()),
    )?;
    Ok(())
}
