//! The simulated member's workload controllers.

use std::time::Duration;

/// Options for the workload simulator.
#[derive(Debug, Clone)]
pub struct SimulatorOptions {
    /// How long a rollout takes before it reports ready.
    pub ready_delay: Duration,
}

/// Runs the workload simulator against a member's own API server.
pub async fn run(_member_client: kube::Client, _options: SimulatorOptions) -> anyhow::Result<()> {
    futures::future::pending::<()>().await;
    Ok(())
}
