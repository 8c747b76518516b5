//! The simulated member's workload controllers (see README.md in this folder).

use std::time::Duration;

/// Options for the workload simulator.
///
/// Build it with struct-update syntax so new fields keep old callers compiling:
/// `SimulatorOptions { ready_delay, stuck, ..Default::default() }`.
#[derive(Debug, Clone)]
pub struct SimulatorOptions {
    /// How long a rollout takes before it reports ready.
    pub ready_delay: Duration,
    /// Fault injection: every rollout stays not ready (as annotation `sim.flotilla.io/stuck`).
    pub stuck: bool,
}

impl Default for SimulatorOptions {
    fn default() -> Self {
        SimulatorOptions {
            ready_delay: Duration::from_secs(1),
            stuck: false,
        }
    }
}

/// Runs the workload simulator against a member's own API server.
pub async fn run(_member_client: kube::Client, _options: SimulatorOptions) -> anyhow::Result<()> {
    futures::future::pending::<()>().await;
    Ok(())
}
