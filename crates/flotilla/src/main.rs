//! The `flotilla` binary: parse the command line and run it.

use clap::Parser;
use flotilla_cli::args::{Cli, Command};

mod cluster_gateway;
mod serve;

/// jemalloc instead of glibc's malloc: the hub with 1,000 idle members kept about half its
/// RSS in glibc's arenas, not in live allocations; jemalloc gives freed pages back to the
/// system after a few seconds (docs/benchmarks.md, "The hub's memory with 1,000 idle members").
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = flotilla_cli::args::Cli::parse_from(plugin_args());
    // A server started by `flotilla dev` stops when the playground dies.
    flotilla_cli::dev::watch_parent();
    // The gateway relays each request between two sockets; on one thread the hand-offs
    // between its server, handler and member connection tasks wake no other thread
    // (docs/benchmarks.md, multi-cluster gateway).
    let runtime = if matches!(cli.command, Command::Gateway(_)) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    } else {
        tokio::runtime::Runtime::new().expect("tokio runtime")
    };
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
        Command::Gateway(args) => serve::gateway(cli.kubeconfig.as_deref(), args).await,
        Command::Kubeconfig(flotilla_cli::args::KubeconfigCommand::Create {
            data_dir,
            user,
            groups,
            output,
        }) => kubeconfig_create(&data_dir, &user, &groups, output.as_deref()),
        other => flotilla_cli::run(cli.kubeconfig, other).await,
    }
}

/// Invoked as `kubectl-amc` (a kubectl plugin), the binary behaves as `flotilla`.
/// (`kubectl amc get ...` runs `kubectl-amc get ...`): the argv[0] file name decides.
fn plugin_args() -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned());
    if invoked_as.as_deref() == Some("kubectl-amc") && !args.is_empty() {
        args[0] = "kubectl amc".into();
    }
    args
}

/// `flotilla kubeconfig create`: a client certificate signed by the data dir's CA, for the
/// server named in its `admin.kubeconfig`.
fn kubeconfig_create(
    data_dir: &std::path::Path,
    user: &str,
    groups: &[String],
    output: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let text = flotilla_apiserver::pki::user_kubeconfig_for_data_dir(data_dir, user, groups)?;
    match output {
        Some(path) => flotilla_apiserver::pki::write_kubeconfig(path, &text)?,
        None => print!("{text}"),
    }
    Ok(())
}
