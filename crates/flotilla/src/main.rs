//! The `flotilla` binary: parse the command line and run it.

use clap::Parser;
use flotilla_cli::args::{Cli, Command};

mod serve;

fn main() -> std::process::ExitCode {
    let cli = flotilla_cli::args::Cli::parse_from(plugin_args());
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(run(cli));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Hub(args) => serve::hub(args).await,
        Command::Member(args) => serve::member(args).await,
        other => flotilla_cli::run(cli.kubeconfig, other).await,
    }
}

/// Invoked as `kubectl-amc` (a kubectl plugin), the binary behaves as `flotilla`.
fn plugin_args() -> Vec<std::ffi::OsString> {
    std::env::args_os().collect()
}
