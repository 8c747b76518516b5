//! The cluster registry (see README.md in this folder): member credentials, join/list/labels/
//! detach, and the health controller that probes every member.

pub mod credentials;
pub mod gateway;
pub mod health;
pub mod hub_identity;
pub mod managed_cluster;
pub mod registry;

/// A kube error on one line: `Reason: message` for API errors, the cause chain otherwise.
pub fn describe_kube_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) if status.reason.is_empty() => status.message.clone(),
        kube::Error::Api(status) => format!("{}: {}", status.reason, status.message),
        other => registry::one_line(other),
    }
}

/// Runs the cluster health controller against the hub.
pub(crate) async fn run(
    hub_client: kube::Client,
    probes: health::ProbeOptions,
) -> anyhow::Result<()> {
    health::run(hub_client, probes).await
}
