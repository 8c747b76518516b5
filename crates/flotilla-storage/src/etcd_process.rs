//! Local etcd clusters for tests and benchmarks (feature `test-support`): real `etcd`
//! processes (Debian's `etcd-server`, or `FLOTILLA_ETCD_BIN`) on free loopback ports, with
//! their data and logs under a folder the caller owns. Members can be killed (`kill -9`) and
//! started again with the same flags; every member is killed on drop.
//!
//! Ports come from below the kernel's ephemeral range ([`crate::local_port`]), so no outgoing
//! connection (another test's hub or etcd peer) can hold a member's port between choosing it
//! and etcd binding it, nor while a killed member is down.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::local_port::free_port;

/// How long a cluster may take to elect a leader on a loaded machine.
pub(crate) const HEALTHY_WITHIN: Duration = Duration::from_secs(90);

/// Errors starting a local etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdProcessError {
    /// No etcd binary on PATH or in `FLOTILLA_ETCD_BIN`.
    #[error("no etcd binary: apt-get install -y etcd-server (or set FLOTILLA_ETCD_BIN)")]
    Missing,
    /// Creating a directory, spawning etcd or reading its logs failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// etcd did not become healthy in time.
    #[error(
        "etcd at {endpoints} was not healthy within {HEALTHY_WITHIN:?} (logs in {dir}); \
         the end of each member's log:\n{logs}"
    )]
    NotHealthy {
        /// The client URLs, comma-separated.
        endpoints: String,
        /// The data directory holding the members' logs.
        dir: PathBuf,
        /// The last lines of every member's log.
        logs: String,
    },
    /// A member exited while the cluster was coming up.
    #[error("etcd member {member} exited ({status}); the end of its log:\n{log}")]
    Exited {
        /// The member's index.
        member: usize,
        /// How it exited.
        status: std::process::ExitStatus,
        /// The last lines of its log.
        log: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EtcdProcessError {
    let what = what.into();
    move |source| EtcdProcessError::Io { what, source }
}

/// The `etcd` binary (`FLOTILLA_ETCD_BIN`, else `etcd` on PATH), if it runs.
pub fn etcd_binary() -> Option<String> {
    let bin = std::env::var("FLOTILLA_ETCD_BIN").unwrap_or_else(|_| "etcd".into());
    let found = Command::new(&bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    found.then_some(bin)
}

/// How many times `start` picks fresh ports when a member exits while coming up.
const START_ATTEMPTS: usize = 3;

/// One etcd member process, restartable with the same flags.
#[derive(Debug)]
pub(crate) struct EtcdMember {
    args: Vec<String>,
    client_port: u16,
    log: PathBuf,
    child: Option<Child>,
}

/// A local etcd cluster.
#[derive(Debug)]
pub struct EtcdCluster {
    bin: String,
    dir: PathBuf,
    members: Vec<EtcdMember>,
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

impl EtcdCluster {
    /// A running, healthy cluster of `size` members with data and logs under `dir`.
    /// A member that exits while coming up (its port taken after all) gets the whole cluster
    /// started again on fresh ports, up to `START_ATTEMPTS` times.
    pub fn start(size: usize, dir: &Path) -> Result<EtcdCluster, EtcdProcessError> {
        let mut attempt = 1;
        loop {
            let mut cluster = EtcdCluster::new(size, dir)?;
            match cluster.start_all() {
                Ok(()) => return Ok(cluster),
                Err(EtcdProcessError::Exited { member, log, .. }) if attempt < START_ATTEMPTS => {
                    eprintln!("etcd member {member} exited while starting, retrying:\n{log}");
                    drop(cluster);
                    wipe_members(dir, size)?;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The cluster's members on free ports, none started yet.
    pub fn new(size: usize, dir: &Path) -> Result<EtcdCluster, EtcdProcessError> {
        let bin = etcd_binary().ok_or(EtcdProcessError::Missing)?;
        let ports = (0..size)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<std::io::Result<Vec<(u16, u16)>>>()
            .map_err(io("choosing free ports"))?;
        let initial = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("e{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::with_capacity(size);
        for (i, &(client_port, peer)) in ports.iter().enumerate() {
            let data = dir.join(format!("etcd-{i}"));
            std::fs::create_dir_all(&data).map_err(io(format!("creating {}", data.display())))?;
            members.push(EtcdMember {
                args: member_args(i, client_port, peer, &initial, &data),
                client_port,
                log: data.join("etcd.log"),
                child: None,
            });
        }
        Ok(EtcdCluster {
            bin,
            dir: dir.to_owned(),
            members,
        })
    }

    /// Starts every member and waits until they are healthy.
    pub fn start_all(&mut self) -> Result<(), EtcdProcessError> {
        for i in 0..self.members.len() {
            self.start_member(i)?;
        }
        self.wait_healthy()
    }

    /// Starts member `i` (again) with its flags, its output appended to its log.
    pub fn start_member(&mut self, i: usize) -> Result<(), EtcdProcessError> {
        let member = &mut self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)
            .map_err(io(format!("opening {}", member.log.display())))?;
        let err_log = log.try_clone().map_err(io("cloning the log handle"))?;
        let child = Command::new(&self.bin)
            .args(&member.args)
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err_log))
            .spawn()
            .map_err(io(format!("starting {}", self.bin)))?;
        member.child = Some(child);
        Ok(())
    }

    /// `kill -9` of member `i` (nothing if it is not running).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process id of member `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members.get(i)?.child.as_ref().map(Child::id)
    }

    /// How many members the cluster has.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The members' client URLs (`http://127.0.0.1:PORT`).
    pub(crate) fn endpoint_list(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// The members' client URLs, comma-separated (for `--etcd-endpoints`).
    pub fn endpoints(&self) -> String {
        self.endpoint_list().join(",")
    }

    /// Waits until every running member reports a leader; fails early when one exits.
    pub fn wait_healthy(&mut self) -> Result<(), EtcdProcessError> {
        let deadline = Instant::now() + HEALTHY_WITHIN;
        loop {
            self.check_running()?;
            let running = self.members.iter().filter(|m| m.child.is_some());
            if running.clone().all(|m| etcd_healthy(m.client_port)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(EtcdProcessError::NotHealthy {
                    endpoints: self.endpoints(),
                    dir: self.dir.clone(),
                    logs: self.log_tails(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The end of every member's log, each under its index.
    fn log_tails(&self) -> String {
        self.members
            .iter()
            .enumerate()
            .map(|(i, m)| format!("--- etcd member {i}\n{}", log_tail(&m.log)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// An error for the first started member whose process has exited.
    fn check_running(&mut self) -> Result<(), EtcdProcessError> {
        for (i, member) in self.members.iter_mut().enumerate() {
            let Some(child) = member.child.as_mut() else {
                continue;
            };
            if let Ok(Some(status)) = child.try_wait() {
                member.child = None;
                return Err(EtcdProcessError::Exited {
                    member: i,
                    status,
                    log: log_tail(&member.log),
                });
            }
        }
        Ok(())
    }
}

/// Removes the members' data folders left by a failed start.
fn wipe_members(dir: &Path, size: usize) -> Result<(), EtcdProcessError> {
    for i in 0..size {
        let data = dir.join(format!("etcd-{i}"));
        std::fs::remove_dir_all(&data).map_err(io(format!("removing {}", data.display())))?;
    }
    Ok(())
}

/// The last 20 lines of a member's log.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn member_args(i: usize, client: u16, peer: u16, initial: &str, data: &Path) -> Vec<String> {
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    [
        "--name",
        &format!("e{i}"),
        "--data-dir",
        &data.join("data").display().to_string(),
        "--listen-client-urls",
        &client_url,
        "--advertise-client-urls",
        &client_url,
        "--listen-peer-urls",
        &peer_url,
        "--initial-advertise-peer-urls",
        &peer_url,
        "--initial-cluster",
        initial,
        "--initial-cluster-state",
        "new",
        "--initial-cluster-token",
        "flotilla-test",
    ]
    .map(String::from)
    .to_vec()
}

/// Whether the member listening on `port` answers `GET /health` with a leader.
pub(crate) fn etcd_healthy(port: u16) -> bool {
    let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = tcp.write_all(b"GET /health HTTP/1.0\r\n\r\n");
    let mut body = String::new();
    let _ = tcp.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}
