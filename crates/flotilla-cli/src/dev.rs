//! `flotilla dev`: the one-command playground. Starts a hub and simulated members as child
//! processes, joins every member, writes kubeconfigs, and stops everything on Ctrl-C/SIGTERM.
//!
//! Files in the data dir: `hub/`, `<cluster>/` (each server's data dir and log),
//! `hub.kubeconfig`, `<cluster>.kubeconfig`, and `dev.json` (the addresses used, so a second
//! run reuses the same ports when they are free). With `--hubs N` (N > 1): a 3-member etcd
//! cluster in `etcd-<i>/` ([`etcd`]), hubs `hub/`, `hub-2/` … `hub-N/` over it, and
//! `hub-<i>.kubeconfig` for each (`hub.kubeconfig` is the first).

mod etcd;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flotilla_controllers::cluster::credentials::ClusterCredential;
use flotilla_controllers::cluster::registry;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

use crate::args::DevArgs;

/// Environment variable set on every child: the dev process's pid. A child whose parent
/// changes (the dev process died without cleaning up) stops itself; see [`watch_parent`].
pub(crate) const PARENT_PID_ENV: &str = "FLOTILLA_PARENT_PID";

/// Prints a line of progress; a closed stdout (the terminal went away, output piped to a
/// finished reader) must not stop the playground or leave its children behind.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// How long a server may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a child may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Addresses remembered between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
struct DevState {
    hub: Option<String>,
    #[serde(default)]
    members: BTreeMap<String, String>,
    /// Hubs 2..N of `--hubs N`.
    #[serde(default)]
    more_hubs: Vec<String>,
    /// The etcd members' ports (`--hubs N`, N > 1).
    #[serde(default)]
    etcd: Vec<etcd::MemberPorts>,
}

/// One server process of the playground.
struct Server {
    /// `hub`, `hub-<i>`, `etcd-<i>` or the cluster name.
    name: String,
    data_dir: PathBuf,
    child: Child,
    /// An etcd member (stopped after the hubs).
    etcd: bool,
}

impl Server {
    fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("admin.kubeconfig")
    }
}

/// In a child started by `flotilla dev` (env [`PARENT_PID_ENV`] set), stops the process with
/// SIGTERM when its parent goes away, so no server outlives a killed playground. Call once
/// at start-up; does nothing otherwise.
pub fn watch_parent() {
    let Some(parent) = std::env::var(PARENT_PID_ENV)
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return;
    };
    std::thread::spawn(move || {
        loop {
            if std::os::unix::process::parent_id() != parent {
                let _ = kill(Pid::this(), Signal::SIGTERM);
                std::thread::sleep(STOP_TIMEOUT);
                std::process::exit(1);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
}

/// `127.0.0.1:PORT` if nothing listens there now, else `127.0.0.1:0` (any free port).
fn reusable(address: Option<&String>) -> String {
    match address {
        Some(a) if std::net::TcpListener::bind(a.as_str()).is_ok() => a.clone(),
        _ => "127.0.0.1:0".to_string(),
    }
}

/// The `server:` URL of a kubeconfig.
fn server_url(kubeconfig: &Path) -> Option<String> {
    let text = std::fs::read_to_string(kubeconfig).ok()?;
    let kc = kube::config::Kubeconfig::from_yaml(&text).ok()?;
    kc.clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
}

fn host_port(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    Some(rest.trim_end_matches('/').to_string()).filter(|s| !s.is_empty())
}

fn spawn(name: &str, args: &[String], data_dir: &Path) -> anyhow::Result<Server> {
    // The server writes a fresh one once it listens; a stale one would point at an old port.
    let _ = std::fs::remove_file(data_dir.join("admin.kubeconfig"));
    let mut args = args.to_vec();
    args.extend(["--data-dir".to_string(), data_dir.display().to_string()]);
    spawn_process(name, &std::env::current_exe()?, &args, data_dir)
}

/// Starts `program` with its output in `DATA_DIR/server.log`.
fn spawn_process(
    name: &str,
    program: &Path,
    args: &[String],
    data_dir: &Path,
) -> anyhow::Result<Server> {
    std::fs::create_dir_all(data_dir)?;
    let log_path = data_dir.join("server.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let child = Command::new(program)
        .args(args)
        .env(PARENT_PID_ENV, std::process::id().to_string())
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Own process group: a terminal's Ctrl-C reaches only `dev`, which stops the
        // children in order.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {name}: {e}"))?;
    Ok(Server {
        name: name.to_string(),
        data_dir: data_dir.to_path_buf(),
        child,
        etcd: false,
    })
}

fn log_tail(data_dir: &Path) -> String {
    log_tail_of(&data_dir.join("server.log"))
}

/// The last lines of a log file, without colours.
fn log_tail_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let text = strip_ansi(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Removes terminal colour sequences (`ESC [ ... m`) from a log.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Holds `DIR/dev.lock` for the life of the playground, so a second `flotilla dev` on the same
/// data dir is refused instead of disturbing the running one.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join("dev.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another flotilla dev is running on {} (stop it first, or pass another --data-dir)",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            anyhow::bail!("cannot lock {}: {e}", path.display())
        }
    }
}

async fn wait_ready(server: &mut Server) -> anyhow::Result<String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = server.child.try_wait()? {
            anyhow::bail!(
                "{} exited during start-up ({status}); its log ({}):\n{}",
                server.name,
                server.data_dir.join("server.log").display(),
                log_tail(&server.data_dir)
            );
        }
        let kubeconfig = server.kubeconfig();
        if kubeconfig.exists()
            && let Ok(client) = crate::kubeconfig::hub_client(Some(&kubeconfig)).await
        {
            let request = http::Request::get("/readyz").body(Vec::new())?;
            if tokio::time::timeout(Duration::from_secs(2), client.request_text(request))
                .await
                .is_ok_and(|r| r.is_ok())
            {
                return server_url(&kubeconfig)
                    .ok_or_else(|| anyhow::anyhow!("{} has no server URL", kubeconfig.display()));
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} did not become ready within {READY_TIMEOUT:?}; its log:\n{}",
            server.name,
            log_tail(&server.data_dir)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops every child, etcd last (hubs release their Lease on the way out): SIGTERM, then
/// SIGKILL after [`STOP_TIMEOUT`].
async fn stop_all(servers: &mut [Server]) {
    let (mut etcd, mut rest): (Vec<&mut Server>, Vec<&mut Server>) =
        servers.iter_mut().partition(|s| s.etcd);
    stop_group(&mut rest).await;
    stop_group(&mut etcd).await;
}

async fn stop_group(servers: &mut [&mut Server]) {
    for server in servers.iter() {
        if let Some(pid) = server.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
    for server in servers.iter_mut() {
        match tokio::time::timeout(STOP_TIMEOUT, server.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "{} did not stop within {STOP_TIMEOUT:?}; killing it",
                    server.name
                );
                let _ = server.child.kill().await;
            }
        }
    }
}

/// Runs `flotilla dev` until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: &DevArgs) -> anyhow::Result<()> {
    let mut names: Vec<String> = Vec::new();
    for name in args
        .clusters
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
    {
        registry::validate_cluster_name(name)?;
        anyhow::ensure!(
            name != "hub",
            "cluster name \"hub\" is used by the playground's hub"
        );
        anyhow::ensure!(
            !names.iter().any(|n| n == name),
            "cluster {name:?} is listed twice"
        );
        names.push(name.to_string());
    }
    std::fs::create_dir_all(&args.data_dir)?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let _lock = lock_data_dir(&data_dir)?;
    let state_path = data_dir.join("dev.json");
    let state: DevState = std::fs::read(&state_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut servers: Vec<Server> = Vec::new();
    let started = start(&data_dir, &names, args.hubs as usize, &state, &mut servers);
    let outcome = tokio::select! {
        r = started => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted during start-up")),
        _ = terminate.recv() => Err(anyhow::anyhow!("terminated during start-up")),
    };
    if let Err(e) = outcome {
        say!("Stopping...");
        stop_all(&mut servers).await;
        return Err(e);
    }
    print_guide(&data_dir, &names, args.hubs as usize);

    // Run until a signal, or until a child dies on its own.
    let ended = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break None,
            _ = terminate.recv() => break None,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                let mut dead = None;
                for server in servers.iter_mut() {
                    if let Ok(Some(status)) = server.child.try_wait() {
                        dead = Some(format!("{} exited unexpectedly ({status}); its log:\n{}", server.name, log_tail(&server.data_dir)));
                        break;
                    }
                }
                if dead.is_some() {
                    break dead;
                }
            }
        }
    };
    say!(
        "Stopping {} hub(s) and {} member(s)...",
        args.hubs,
        names.len()
    );
    stop_all(&mut servers).await;
    say!("Stopped.");
    match ended {
        None => Ok(()),
        Some(message) => Err(anyhow::anyhow!(message)),
    }
}

/// Starts the playground's etcd cluster; returns its client URLs, comma separated.
async fn start_etcd(
    data_dir: &Path,
    state: &DevState,
    new_state: &mut DevState,
    servers: &mut Vec<Server>,
) -> anyhow::Result<String> {
    let binary = etcd::binary()?;
    let ports = etcd::ports(&state.etcd)?;
    for i in 0..etcd::MEMBERS {
        let dir = data_dir.join(etcd::member_name(i));
        let args = etcd::member_args(i, &ports, &dir)?;
        let mut server = spawn_process(&etcd::member_name(i), &binary, &args, &dir)?;
        server.etcd = true;
        servers.push(server);
    }
    for i in 0..etcd::MEMBERS {
        let log = data_dir.join(etcd::member_name(i)).join("server.log");
        etcd::wait_healthy(i, &ports, &log).await?;
        say!(
            "  {:<12} ready at http://127.0.0.1:{}",
            etcd::member_name(i),
            ports[i].client
        );
    }
    new_state.etcd = ports.clone();
    Ok(etcd::endpoints(&ports))
}

/// The name and data dir of hub `i` (0-based): `hub/`, then `hub-2/` …
fn hub_dir(data_dir: &Path, i: usize) -> (String, PathBuf) {
    let name = if i == 0 {
        "hub".to_string()
    } else {
        format!("hub-{}", i + 1)
    };
    let dir = data_dir.join(&name);
    (name, dir)
}

async fn start(
    data_dir: &Path,
    names: &[String],
    hubs: usize,
    state: &DevState,
    servers: &mut Vec<Server>,
) -> anyhow::Result<()> {
    say!(
        "Starting {hubs} hub(s) and {} simulated member(s) in {}",
        names.len(),
        data_dir.display()
    );
    let mut new_state = DevState::default();
    let mut storage: Vec<String> = Vec::new();
    if hubs > 1 {
        let endpoints = start_etcd(data_dir, state, &mut new_state, servers).await?;
        storage = vec![
            "--storage".into(),
            "etcd".into(),
            "--etcd-endpoints".into(),
            endpoints,
        ];
    }
    for i in 0..hubs {
        let previous = if i == 0 {
            state.hub.as_ref()
        } else {
            state.more_hubs.get(i - 1)
        };
        let (name, dir) = hub_dir(data_dir, i);
        let mut args = vec!["hub".into(), "--listen".into(), reusable(previous)];
        args.extend(storage.iter().cloned());
        if hubs > 1 {
            args.extend(["--id".into(), name.clone()]);
        }
        servers.push(spawn(&name, &args, &dir)?);
    }
    for name in names {
        let listen = reusable(state.members.get(name));
        servers.push(spawn(
            name,
            &[
                "member".into(),
                "--name".into(),
                name.clone(),
                "--listen".into(),
                listen,
            ],
            &data_dir.join(name),
        )?);
    }
    for server in servers.iter_mut().filter(|s| !s.etcd) {
        let url = wait_ready(server).await?;
        say!("  {:<12} ready at {url}", server.name);
        if server.name == "hub" {
            new_state.hub = host_port(&url);
        } else if server.name.starts_with("hub-") {
            new_state.more_hubs.extend(host_port(&url));
        } else if let Some(address) = host_port(&url) {
            new_state.members.insert(server.name.clone(), address);
        }
    }
    std::fs::write(
        data_dir.join("dev.json"),
        serde_json::to_vec_pretty(&new_state)?,
    )?;

    let hub_kubeconfig = data_dir.join("hub.kubeconfig");
    std::fs::copy(
        data_dir.join("hub").join("admin.kubeconfig"),
        &hub_kubeconfig,
    )?;
    if hubs > 1 {
        for i in 0..hubs {
            let (_, dir) = hub_dir(data_dir, i);
            std::fs::copy(
                dir.join("admin.kubeconfig"),
                data_dir.join(format!("hub-{}.kubeconfig", i + 1)),
            )?;
        }
    }
    let hub_client = crate::kubeconfig::hub_client(Some(&hub_kubeconfig)).await?;
    for name in names {
        let member_kubeconfig = data_dir.join(format!("{name}.kubeconfig"));
        std::fs::copy(
            data_dir.join(name).join("admin.kubeconfig"),
            &member_kubeconfig,
        )?;
        let credential = ClusterCredential::from_kubeconfig_file(&member_kubeconfig)?;
        // Join is idempotent: a second run refreshes the endpoint and keeps the labels.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match registry::join(&hub_client, name, &credential, &BTreeMap::new()).await {
                Ok(_) => break,
                // The hub may still be installing its CRDs right after /readyz.
                Err(e) if attempt < 50 => {
                    tracing::debug!(cluster = %name, error = %e, "join failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        say!("  joined {name}");
    }
    Ok(())
}

fn print_guide(data_dir: &Path, names: &[String], hubs: usize) {
    let dir = data_dir.display();
    say!();
    say!("The playground is up. In another terminal:");
    say!();
    say!("  export KUBECONFIG={dir}/hub.kubeconfig");
    if hubs > 1 {
        say!("  # {hubs} hubs over one etcd: {dir}/hub-1.kubeconfig … hub-{hubs}.kubeconfig");
        say!("  kubectl get lease -n kube-system flotilla-controllers   # the leading hub");
    }
    if let Some(exe) = binary_not_on_path() {
        // `cargo run` leaves the binary under target/; make the commands below work as typed.
        say!("  alias flotilla={}", exe.display());
    }
    say!("  flotilla cluster list");
    say!("  kubectl get managedclusters");
    say!("  flotilla up -f app.yaml");
    say!("  flotilla status <app>");
    if let Some(first) = names.first() {
        say!("  flotilla get deployments -m {first}        # or -M for every member");
        say!("  kubectl --kubeconfig {dir}/{first}.kubeconfig get deployments -A");
    }
    say!();
    say!("Press Ctrl-C to stop everything.");
}

/// The running binary's path when no `flotilla` on PATH is this binary.
fn binary_not_on_path() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?.canonicalize().ok()?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = std::env::split_paths(&path)
        .filter_map(|d| d.join("flotilla").canonicalize().ok())
        .any(|p| p == exe);
    (!on_path).then_some(exe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_lose_their_colours() {
        assert_eq!(
            strip_ansi("\u{1b}[2mtime\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m ok"),
            "time  INFO ok"
        );
    }

    #[test]
    fn one_playground_per_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_data_dir(dir.path()).unwrap();
        let second = lock_data_dir(dir.path());
        assert!(
            second
                .unwrap_err()
                .to_string()
                .contains("another flotilla dev")
        );
        drop(first);
        assert!(lock_data_dir(dir.path()).is_ok());
    }

    #[test]
    fn addresses() {
        assert_eq!(
            host_port("https://127.0.0.1:6443").as_deref(),
            Some("127.0.0.1:6443")
        );
        assert_eq!(
            host_port("https://127.0.0.1:6443/").as_deref(),
            Some("127.0.0.1:6443")
        );
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = busy.local_addr().unwrap().to_string();
        assert_eq!(reusable(Some(&addr)), "127.0.0.1:0");
        drop(busy);
        assert_eq!(reusable(Some(&addr)), addr);
        assert_eq!(reusable(None), "127.0.0.1:0");
    }
}
