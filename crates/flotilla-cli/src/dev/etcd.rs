//! The playground's 3-member etcd cluster for `flotilla dev --hubs N` (N > 1), started from the
//! `etcd` binary on PATH (Debian package `etcd-server`). Members keep their data in
//! `DIR/etcd-<i>/` and their ports in `dev.json`, so a second run restarts the same cluster.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flotilla_storage::local_port::free_port;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Members in the playground's etcd cluster.
pub(super) const MEMBERS: usize = 3;
/// How long the cluster may take to elect a leader and answer `/health`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors starting the playground's etcd.
#[derive(Debug, thiserror::Error)]
pub(super) enum EtcdError {
    #[error(
        "flotilla dev --hubs needs the `etcd` binary on PATH (Debian package etcd-server): \
         apt-get update && apt-get install -y etcd-server"
    )]
    Missing,
    #[error("etcd member {name}: port {port} is in use (free it, or pass another --data-dir)")]
    PortBusy { name: String, port: u16 },
    #[error("etcd member {name} did not become healthy within {READY_TIMEOUT:?}; its log:\n{log}")]
    NotReady { name: String, log: String },
}

/// One member's ports, remembered between runs (etcd records its peers' URLs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct MemberPorts {
    pub client: u16,
    pub peer: u16,
}

/// The `etcd` binary: `FLOTILLA_ETCD_BIN`, else `etcd` on PATH.
pub(super) fn binary() -> Result<PathBuf, EtcdError> {
    if let Some(bin) = std::env::var_os("FLOTILLA_ETCD_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|candidate| candidate.is_file())
        .ok_or(EtcdError::Missing)
}

/// The ports of a previous run, or fresh free ones.
pub(super) fn ports(previous: &[MemberPorts]) -> std::io::Result<Vec<MemberPorts>> {
    if previous.len() == MEMBERS {
        return Ok(previous.to_vec());
    }
    (0..MEMBERS)
        .map(|_| {
            Ok(MemberPorts {
                client: free_port()?,
                peer: free_port()?,
            })
        })
        .collect()
}

pub(super) fn member_name(i: usize) -> String {
    format!("etcd-{}", i + 1)
}

/// Comma-separated client URLs, for `--etcd-endpoints`.
pub(super) fn endpoints(ports: &[MemberPorts]) -> String {
    ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{}", p.client))
        .collect::<Vec<_>>()
        .join(",")
}

/// The command-line arguments of member `i`.
pub(super) fn member_args(
    i: usize,
    ports: &[MemberPorts],
    data_dir: &Path,
) -> Result<Vec<String>, EtcdError> {
    let name = member_name(i);
    for port in [ports[i].client, ports[i].peer] {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            return Err(EtcdError::PortBusy { name, port });
        }
    }
    let initial_cluster = ports
        .iter()
        .enumerate()
        .map(|(j, p)| format!("{}=http://127.0.0.1:{}", member_name(j), p.peer))
        .collect::<Vec<_>>()
        .join(",");
    let client = format!("http://127.0.0.1:{}", ports[i].client);
    let peer = format!("http://127.0.0.1:{}", ports[i].peer);
    Ok(vec![
        "--name".into(),
        name,
        "--data-dir".into(),
        data_dir.join("data").display().to_string(),
        "--listen-client-urls".into(),
        client.clone(),
        "--advertise-client-urls".into(),
        client,
        "--listen-peer-urls".into(),
        peer.clone(),
        "--initial-advertise-peer-urls".into(),
        peer,
        "--initial-cluster".into(),
        initial_cluster,
        "--initial-cluster-token".into(),
        "flotilla-dev".into(),
        "--initial-cluster-state".into(),
        "new".into(),
    ])
}

/// Waits until member `i` answers `GET /health` with `"health":"true"` (it has a leader).
pub(super) async fn wait_healthy(
    i: usize,
    ports: &[MemberPorts],
    log: &Path,
) -> Result<(), EtcdError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if healthy(ports[i].client).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(EtcdError::NotReady {
        name: member_name(i),
        log: super::log_tail_of(log),
    })
}

async fn healthy(port: u16) -> bool {
    let probe = async {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        tcp.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut body = String::new();
        tcp.read_to_string(&mut body).await?;
        Ok::<_, std::io::Error>(body.contains("\"health\":\"true\""))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Ok(true))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_know_each_other() {
        let ports: Vec<MemberPorts> = (0..3)
            .map(|i| MemberPorts {
                client: 0,
                peer: 40000 + i,
            })
            .collect();
        let args = member_args(1, &ports, Path::new("/d")).unwrap();
        let at = |flag: &str| args[args.iter().position(|a| a == flag).unwrap() + 1].clone();
        assert_eq!(at("--name"), "etcd-2");
        assert_eq!(
            at("--initial-cluster"),
            "etcd-1=http://127.0.0.1:40000,etcd-2=http://127.0.0.1:40001,etcd-3=http://127.0.0.1:40002"
        );
        assert_eq!(endpoints(&ports[..1]), "http://127.0.0.1:0");
    }

    #[test]
    fn a_missing_binary_names_the_package() {
        assert!(
            EtcdError::Missing
                .to_string()
                .contains("apt-get install -y etcd-server")
        );
    }
}
