//! `fleet`: the `dispatch` measurement at fleet size (default 1,000 members x 100
//! Applications = 100,000 placements): time, placements/s, hub and member RSS and CPU
//! seconds per placement, beside the floor of writing the same Deployments straight to the
//! members in the same run.

use crate::dispatch::{self, RunFlags};

/// Flags of `fleet` (those of `dispatch`, with fleet-sized defaults).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Simulated member clusters (one `flotilla member --count M` process).
    #[arg(long, default_value_t = 1000)]
    pub members: u32,
    /// Applications, each deploying one webservice to every member.
    #[arg(long, default_value_t = 100)]
    pub apps: usize,
    #[command(flatten)]
    pub run: RunFlags,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let args = dispatch::Args {
        members: args.members,
        apps: args.apps,
        run: args.run,
    };
    dispatch::measure("fleet", args).await
}
