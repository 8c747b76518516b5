//! Local etcd clusters for the HA tests: real `etcd` processes (Debian's `etcd-server`, or
//! `FLOTILLA_ETCD_BIN`) on free loopback ports, and hubs over them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Server, wait_for};

/// Generous: etcd elections and hub start-ups on a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(90);

/// One etcd member process, restartable with the same flags.
pub struct EtcdMember {
    args: Vec<String>,
    client_port: u16,
    log: PathBuf,
    child: Option<Child>,
}

/// A local etcd cluster; every member is killed on drop.
pub struct EtcdCluster {
    pub members: Vec<EtcdMember>,
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn etcd_binary() -> String {
    let bin = std::env::var("FLOTILLA_ETCD_BIN").unwrap_or_else(|_| "etcd".into());
    let found = Command::new(&bin)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "no etcd binary: apt-get install -y etcd-server (or set FLOTILLA_ETCD_BIN)"
    );
    bin
}

impl EtcdCluster {
    /// A running cluster of `size` members with data under `dir`.
    pub fn start(size: usize, dir: &Path) -> EtcdCluster {
        let mut cluster = EtcdCluster::new(size, dir);
        cluster.start_all();
        cluster
    }

    /// The cluster's members on free ports, none started yet.
    pub fn new(size: usize, dir: &Path) -> EtcdCluster {
        let ports: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
        let initial = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("e{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let members = ports
            .iter()
            .enumerate()
            .map(|(i, (client, peer))| {
                let data = dir.join(format!("etcd-{i}"));
                std::fs::create_dir_all(&data).unwrap();
                let client_url = format!("http://127.0.0.1:{client}");
                let peer_url = format!("http://127.0.0.1:{peer}");
                let args = [
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
                    &initial,
                    "--initial-cluster-state",
                    "new",
                    "--initial-cluster-token",
                    "flotilla-test",
                ]
                .map(String::from)
                .to_vec();
                EtcdMember {
                    args,
                    client_port: *client,
                    log: data.join("etcd.log"),
                    child: None,
                }
            })
            .collect();
        EtcdCluster { members }
    }

    /// Starts every member and waits until they are healthy.
    pub fn start_all(&mut self) {
        for i in 0..self.members.len() {
            self.start_member(i);
        }
        self.wait_healthy();
    }

    pub fn start_member(&mut self, i: usize) {
        let member = &mut self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)
            .unwrap();
        let child = Command::new(etcd_binary())
            .args(&member.args)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start etcd");
        member.child = Some(child);
    }

    /// `kill -9` of one member.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until every running member reports a leader.
    pub fn wait_healthy(&self) {
        wait_for("etcd to be healthy", WAIT, || {
            self.members
                .iter()
                .filter(|m| m.child.is_some())
                .all(|m| etcd_healthy(m.client_port))
                .then_some(())
        });
    }
}

pub fn etcd_healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = tcp.write_all(b"GET /health HTTP/1.0\r\n\r\n");
    let mut body = String::new();
    let _ = tcp.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}

pub fn etcd_hub(name: &str, etcd: &EtcdCluster, dir: &Path) -> Server {
    Server::start(
        &[
            "hub",
            "--listen",
            "127.0.0.1:0",
            "--storage",
            "etcd",
            "--etcd-endpoints",
            &etcd.endpoints(),
            "--id",
            name,
        ],
        &dir.join(name),
    )
}

pub fn lease_holder(hub: &Server) -> String {
    hub.jsonpath(
        "lease",
        "flotilla-controllers",
        "kube-system",
        "{.spec.holderIdentity}",
    )
}
