//! `splice` (hidden): a bare TCP pass-through, the reference hop of `gateway`. It accepts
//! connections and copies bytes both ways to one address (TLS passes through untouched),
//! on a current-thread runtime with TCP_NODELAY on both sockets, like the gateway. It does
//! no HTTP at all, so what it adds to a request is the least any extra process on the path
//! can add on this machine: the hop's wake-ups and copies, nothing else.

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};

/// Flags of `splice`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to accept connections.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Where every connection is copied to (HOST:PORT).
    #[arg(long)]
    pub to: String,
}

/// The line `splice` prints once it listens, followed by its address.
const READY: &str = "splicing at ";

/// Serves until the process ends.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    println!("{READY}{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let (inbound, _) = listener.accept().await?;
        tokio::spawn(pass_through(inbound, args.to.clone()));
    }
}

/// Copies one connection both ways until either side closes it.
async fn pass_through(mut inbound: TcpStream, to: String) {
    let Ok(mut outbound) = TcpStream::connect(&to).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
}

/// A `flotilla-bench splice` process (this same binary); killed on drop.
pub(crate) struct SpliceProcess {
    child: Child,
    /// Where it listens.
    pub address: String,
}

impl SpliceProcess {
    /// Starts `bench splice --to to` and waits for its address.
    pub(crate) fn start(bench: &Path, to: &str) -> anyhow::Result<SpliceProcess> {
        let mut child = Command::new(bench)
            .args(["splice", "--to", to])
            .stdout(Stdio::piped())
            .spawn()
            .context("spawning flotilla-bench splice")?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("splice has no stdout")?;
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
        let mut splice = SpliceProcess {
            child,
            address: String::new(),
        };
        splice.address = line
            .trim()
            .strip_prefix(READY)
            .with_context(|| format!("splice printed {line:?}"))?
            .to_string();
        Ok(splice)
    }
}

impl Drop for SpliceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
