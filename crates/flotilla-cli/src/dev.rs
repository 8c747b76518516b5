//! `flotilla dev`: placeholder replaced below.
use crate::args::DevArgs;
/// Runs `flotilla dev`.
pub async fn run(_args: &DevArgs) -> anyhow::Result<()> {
    anyhow::bail!("flotilla dev is being built")
}
