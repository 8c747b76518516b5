//! A throwaway single-member etcd for `--storage etcd` benchmarks
//! (`flotilla_storage::etcd_process`: the `etcd` binary on PATH, Debian package
//! `etcd-server`, on free loopback ports; killed on drop), and raw etcd puts as the floor.

use std::time::{Duration, Instant};

use anyhow::bail;
use flotilla_storage::etcd_process::EtcdCluster;

/// A running etcd.
pub(crate) struct LocalEtcd {
    _cluster: EtcdCluster,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// The etcd process (for its CPU time).
    pub pid: Option<u32>,
    _dir: tempfile::TempDir,
}

impl LocalEtcd {
    /// Starts etcd and waits until it answers a write.
    pub(crate) async fn start() -> anyhow::Result<LocalEtcd> {
        let dir = tempfile::tempdir()?;
        let cluster = tokio::task::block_in_place(|| EtcdCluster::start(1, dir.path()))?;
        let endpoint = cluster.endpoints();
        let backend = flotilla_storage::etcd::EtcdBackend::connect(&[&endpoint]).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while flotilla_storage::Backend::current_revision(&backend)
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("etcd at {endpoint} did not answer within 30s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(LocalEtcd {
            pid: cluster.pid(0),
            _cluster: cluster,
            endpoint,
            _dir: dir,
        })
    }
}

/// The floor for `--storage etcd`: `writers` tasks each making `per_writer` plain etcd-client
/// puts of `value` to new keys under `prefix` (no transaction, no compare: the cheapest
/// durable write etcd offers), from this process.
pub(crate) async fn raw_puts(
    endpoints: &[&str],
    writers: usize,
    per_writer: usize,
    value: Vec<u8>,
    prefix: &str,
) -> anyhow::Result<flotilla_storage::throughput::Report> {
    let client = etcd_client::Client::connect(endpoints, None).await?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(writers);
    for w in 0..writers {
        let mut kv = client.kv_client();
        let (value, prefix) = (value.clone(), prefix.to_string());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_writer);
            for n in 0..per_writer {
                let t = Instant::now();
                kv.put(format!("{prefix}w{w}/k{n}"), value.clone(), None)
                    .await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, etcd_client::Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(flotilla_storage::throughput::Report::from_latencies(
        latencies,
        started.elapsed(),
    ))
}
