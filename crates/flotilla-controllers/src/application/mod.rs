//! The application controller (see README.md in this folder).

/// Runs the application controller against the hub.
pub async fn run(_hub_client: kube::Client) -> anyhow::Result<()> {
    futures::future::pending::<()>().await;
    Ok(())
}
