//! Starting a real `flotilla hub` process and talking to it with kube-rs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The release `flotilla` binary of this workspace.
pub(crate) fn default_binary() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/flotilla")
}

/// A running `flotilla` process with a temporary data dir; killed on drop.
pub(crate) struct Flotilla {
    child: Mutex<Child>,
    pid: u32,
    /// Keeps the data dir alive until the process is gone.
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    log: PathBuf,
    /// What [`Flotilla::restart`] runs again.
    binary: PathBuf,
    args: Vec<String>,
}

impl Flotilla {
    /// Starts `flotilla hub` on 127.0.0.1:0 and waits until its admin kubeconfig exists
    /// and `/readyz` answers.
    pub(crate) async fn hub(binary: &Path) -> anyhow::Result<(Flotilla, kube::Client)> {
        let hub = Flotilla::spawn(binary, &["hub", "--listen", "127.0.0.1:0"])?;
        let client = hub
            .wait_ready(&hub.data_dir.join("admin.kubeconfig"))
            .await?;
        Ok((hub, client))
    }

    /// Starts `flotilla hub` probing its members every `interval` (`1s`, `10s`, ...), with
    /// `extra` hub flags, and waits until it answers.
    pub(crate) async fn hub_probing_every(
        binary: &Path,
        interval: &str,
        extra: &[&str],
    ) -> anyhow::Result<(Flotilla, kube::Client)> {
        let mut args = vec![
            "hub",
            "--listen",
            "127.0.0.1:0",
            "--cluster-probe-interval",
            interval,
        ];
        args.extend_from_slice(extra);
        let hub = Flotilla::spawn(binary, &args)?;
        let client = hub
            .wait_ready(&hub.data_dir.join("admin.kubeconfig"))
            .await?;
        Ok((hub, client))
    }

    /// Starts `flotilla ARGS --data-dir TMP` without waiting.
    pub(crate) fn spawn(binary: &Path, args: &[&str]) -> anyhow::Result<Flotilla> {
        if !binary.exists() {
            bail!(
                "{} does not exist: run `cargo build --release --bin flotilla` first",
                binary.display()
            );
        }
        let dir = tempfile::tempdir().context("creating a temp data dir")?;
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir)?;
        let log = dir.path().join("flotilla.log");
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let child = start(binary, &args, &data_dir, &log)?;
        Ok(Flotilla {
            pid: child.id(),
            child: Mutex::new(child),
            data_dir,
            _dir: dir,
            log,
            binary: binary.to_path_buf(),
            args,
        })
    }

    /// Kills the process and starts it again with the same arguments on the same data dir
    /// (its log continues in the same file). Does not wait for it to be ready.
    pub(crate) fn restart(&mut self) -> anyhow::Result<()> {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        let child = start(&self.binary, &self.args, &self.data_dir, &self.log)?;
        self.pid = child.id();
        self.child = Mutex::new(child);
        Ok(())
    }

    /// The process's `--data-dir`.
    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Waits until `kubeconfig` exists and the server it names answers `/readyz`; fails
    /// if the process exits or 60 s pass.
    pub(crate) async fn wait_ready(&self, kubeconfig: &Path) -> anyhow::Result<kube::Client> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.exited()? {
                bail!("flotilla exited early ({status}):\n{}", self.log_text());
            }
            if kubeconfig.exists()
                && let Ok(client) = client_for(kubeconfig).await
                && let Ok(text) = client.request_text(http_get("/readyz")?).await
                && text.trim() == "ok"
            {
                return Ok(client);
            }
            if Instant::now() > deadline {
                bail!("flotilla did not become ready:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn exited(&self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        Ok(child.try_wait()?)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Resident set size of the process in KiB (`VmRSS` of /proc/PID/status).
    pub(crate) fn rss_kib(&self) -> anyhow::Result<u64> {
        rss_kib(self.pid())
    }
}

impl Drop for Flotilla {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Spawns `binary ARGS --data-dir DATA_DIR`, its output appended to `log`.
fn start(binary: &Path, args: &[String], data_dir: &Path, log: &Path) -> anyhow::Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    Command::new(binary)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .with_context(|| format!("spawning {}", binary.display()))
}

/// A kube client for a kubeconfig file (its current context).
pub(crate) async fn client_for(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await?;
    Ok(kube::Client::try_from(config)?)
}

pub(crate) fn http_get(path: &str) -> anyhow::Result<http::Request<Vec<u8>>> {
    Ok(http::Request::get(path).body(Vec::new())?)
}

/// `VmRSS` of a process in KiB.
pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS")
}

/// One `kB` field of /proc/PID/status (`VmRSS`, `VmHWM`, `RssAnon`, ...).
fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// Formats KiB as MiB.
pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// What a process uses at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    pub rss_kib: u64,
    /// The anonymous part of the RSS (heap, stacks): the RSS less the binary's and the
    /// libraries' pages, which a debug binary makes large and which do not grow with load.
    pub anon_kib: u64,
    /// The highest RSS so far (`VmHWM`).
    pub peak_kib: u64,
    /// Open file descriptors.
    pub descriptors: usize,
    /// User plus system CPU time so far.
    pub cpu_secs: f64,
}

impl Usage {
    /// Reads /proc/PID/{status,fd,stat}.
    pub(crate) fn of(pid: u32) -> anyhow::Result<Usage> {
        let descriptors = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command (which may hold spaces): state is field 3, utime 14.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
        let (utime, stime) = (ticks(11), ticks(12));
        let cpu_secs = utime
            .zip(stime)
            .map(|(u, s)| (u + s) / 100.0)
            .context("no CPU times in /proc/PID/stat")?;
        Ok(Usage {
            rss_kib: rss_kib(pid)?,
            anon_kib: status_kib(pid, "RssAnon")?,
            peak_kib: status_kib(pid, "VmHWM")?,
            descriptors,
            cpu_secs,
        })
    }
}
