//! The cluster registry (see README.md in this folder): member credentials, join/list/labels/
//! detach, and the health controller that probes every member.

pub mod credentials;
pub mod health;
pub mod managed_cluster;
pub mod registry;

use std::time::Duration;

pub use credentials::{member_client, member_config};

/// Runs the cluster health controller against the hub.
pub async fn run(hub_client: kube::Client, probe_interval: Duration) -> anyhow::Result<()> {
    health::run(hub_client, probe_interval).await
}
