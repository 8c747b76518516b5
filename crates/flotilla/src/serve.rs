//! `flotilla hub` and `flotilla member`: the API server plus the controllers that run beside it.

use flotilla_cli::args::{HubArgs, MemberArgs};

pub async fn hub(_args: HubArgs) -> anyhow::Result<()> {
    anyhow::bail!("flotilla hub is not built yet")
}

pub async fn member(_args: MemberArgs) -> anyhow::Result<()> {
    anyhow::bail!("flotilla member is not built yet")
}
