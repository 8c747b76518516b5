//! `flotilla-bench`: benchmarks of real `flotilla` processes, each reported beside the
//! floor it is bounded by, measured in the same run. See docs/benchmarks.md.
//!
//! Build the server first: `cargo build --release --bin flotilla`, then
//! `cargo run -p flotilla-bench --release -- <scenario>`.

mod dispatch;
mod etcd;
mod fleet;
mod gateway;
mod hub;
mod lifecycle;
mod list;
mod probes;
mod propagation;
mod resync;
mod scrape;
mod simulator;
mod splice;
mod stats;
mod watch;
mod write;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "flotilla-bench",
    about = "Benchmarks of real flotilla processes"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Concurrent ConfigMap creates through the hub vs the raw storage engine.
    WriteThroughput(write::Args),
    /// Many watchers of one object: time from a write until all have seen it.
    WatchFanout(watch::Args),
    /// Listing many ConfigMaps in one namespace, whole and paginated.
    List(list::Args),
    /// Applications dispatched to simulated members vs Deployments written to them directly.
    Dispatch(dispatch::Args),
    /// The member simulator with Pods: time until all run, RSS per simulated object.
    Simulator(simulator::Args),
    /// Edits of a dispatched object on a member: time until the hub puts it back.
    Drift(lifecycle::Args),
    /// Applications deleted while their member is down: time from its return to cleanup.
    CleanupOnReturn(lifecycle::Args),
    /// Requests through `flotilla gateway` vs one member's service proxy directly.
    Gateway(gateway::Args),
    /// The hub's CPU per member for health probes (and metrics scrapes), vs an idle hub.
    Probes(probes::Args),
    /// One Application on N members, its spec changed C times: time until all N hold it.
    Propagation(propagation::Args),
    /// A hub restarted over A Applications x M members with nothing changed: time until all
    /// are verified, and the writes the members receive.
    Resync(resync::Args),
    /// `dispatch` at fleet size (1,000 members x 100 Applications): time, placements/s, RSS
    /// and CPU per placement.
    Fleet(fleet::Args),
    /// A bare TCP pass-through (started by `gateway` as its reference hop).
    #[command(hide = true)]
    Splice(splice::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The splice is the gateway's reference hop, so it runs on a current-thread runtime
    // like the gateway does.
    let runtime = match cli.scenario {
        Scenario::Splice(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
    };
    runtime.block_on(async {
        match cli.scenario {
            Scenario::WriteThroughput(a) => write::run(a).await,
            Scenario::WatchFanout(a) => watch::run(a).await,
            Scenario::List(a) => list::run(a).await,
            Scenario::Dispatch(a) => dispatch::run(a).await,
            Scenario::Simulator(a) => simulator::run(a).await,
            Scenario::Drift(a) => lifecycle::drift(a).await,
            Scenario::CleanupOnReturn(a) => lifecycle::cleanup_on_return(a).await,
            Scenario::Gateway(a) => gateway::run(a).await,
            Scenario::Probes(a) => probes::run(a).await,
            Scenario::Propagation(a) => propagation::run(a).await,
            Scenario::Resync(a) => resync::run(a).await,
            Scenario::Fleet(a) => fleet::run(a).await,
            Scenario::Splice(a) => splice::run(a).await,
        }
    })
}
