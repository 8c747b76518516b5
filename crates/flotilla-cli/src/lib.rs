//! The `flotilla` command tree (clap) and its printers.
//!
//! Server commands (`hub`, `member`) are parsed here and run by the binary, which links the
//! API server; every other command talks to the hub only through the Kubernetes API.

pub mod args;
pub(crate) mod auth;
pub(crate) mod cluster;
pub mod dev;
pub(crate) mod get;
pub(crate) mod gitops;
pub mod kubeconfig;
pub(crate) mod preview;
pub(crate) mod status;
pub(crate) mod status_mcs;
pub(crate) mod table;
pub(crate) mod top;
pub(crate) mod up;
pub(crate) mod workflow;

use std::path::PathBuf;

use args::Command;

/// Runs a client command (everything but `hub` and `member`).
pub async fn run(kubeconfig: Option<PathBuf>, command: Command) -> anyhow::Result<()> {
    // Client commands log only when asked (`RUST_LOG=debug flotilla ...`), to stderr.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
    match command {
        Command::Cluster(cmd) => {
            let hub_client = kubeconfig::hub_client(kubeconfig.as_deref()).await?;
            cluster::run(&hub_client, cmd).await
        }
        Command::Up(up_args) => {
            let hub_client = kubeconfig::hub_client(kubeconfig.as_deref()).await?;
            up::run(&hub_client, &up_args).await
        }
        Command::Status(status_args) => {
            let hub_client = kubeconfig::hub_client(kubeconfig.as_deref()).await?;
            status::run(&hub_client, &status_args).await
        }
        Command::DryRun(dry_run_args) => {
            let hub_client = kubeconfig::hub_client(kubeconfig.as_deref()).await?;
            preview::dry_run(&hub_client, &dry_run_args).await
        }
        Command::Diff(diff_args) => {
            let hub_client = match kubeconfig::hub_client(kubeconfig.as_deref()).await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    std::process::exit(2)
                }
            };
            preview::diff(&hub_client, &diff_args).await
        }
        Command::Workflow(cmd) => {
            let hub_client = kubeconfig::hub_client(kubeconfig.as_deref()).await?;
            workflow::run(&hub_client, cmd).await
        }
        Command::Get(get_args) => {
            let hub_client = kubeconfig::hub_client(kubeconfig.as_deref()).await?;
            get::run(&hub_client, &get_args).await
        }
        Command::Top(cmd) => {
            let hub_client = kubeconfig::hub_client(kubeconfig.as_deref()).await?;
            top::run(&hub_client, cmd).await
        }
        Command::Auth(cmd) => {
            let hub_client = kubeconfig::hub_client(kubeconfig.as_deref()).await?;
            auth::run(&hub_client, cmd).await
        }
        Command::Gitops(cmd) => {
            let hub_client = kubeconfig::hub_client(kubeconfig.as_deref()).await?;
            gitops::run(&hub_client, cmd).await
        }
        Command::Dev(dev_args) => dev::run(&dev_args).await,
        Command::Hub(_) | Command::Member(_) | Command::Kubeconfig(_) | Command::Gateway(_) => {
            anyhow::bail!("this command is run by the flotilla binary itself")
        }
    }
}
