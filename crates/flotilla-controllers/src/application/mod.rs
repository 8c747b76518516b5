//! The application controller (see README.md in this folder).

pub mod dispatch;
pub mod health;
pub mod member_clients;
pub mod r#override;
pub mod placement;
pub mod render;
pub mod workflow;

/// Runs the application controller against the hub.
pub async fn run(_hub_client: kube::Client) -> anyhow::Result<()> {
    futures::future::pending::<()>().await;
    Ok(())
}
