//! The `flotilla` command tree (clap) and its printers.
//!
//! Server commands (`hub`, `member`) are parsed here and run by the binary, which links the
//! API server; every other command talks to the hub only through the Kubernetes API.

pub mod args;

use std::path::PathBuf;

/// Runs a client command (everything but `hub` and `member`).
pub async fn run(_kubeconfig: Option<PathBuf>, command: args::Command) -> anyhow::Result<()> {
    anyhow::bail!("command {command:?} is not built yet")
}
