//! A throwaway single-member etcd for `--storage etcd` benchmarks, started from the `etcd`
//! binary on PATH (Debian package `etcd-server`) on free loopback ports; killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running etcd.
pub struct LocalEtcd {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl LocalEtcd {
    /// Starts etcd and waits until it answers a write.
    pub async fn start() -> anyhow::Result<LocalEtcd> {
        let dir = tempfile::tempdir()?;
        let client = format!("http://127.0.0.1:{}", free_port()?);
        let peer = format!("http://127.0.0.1:{}", free_port()?);
        let log = std::fs::File::create(dir.path().join("etcd.log"))?;
        let child = Command::new("etcd")
            .args(["--name", "bench", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("bench={peer}")])
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting etcd (apt-get install -y etcd-server)")?;
        let etcd = LocalEtcd {
            child,
            endpoint: client,
            _dir: dir,
        };
        let backend = flotilla_storage::etcd::EtcdBackend::connect(&[&etcd.endpoint]).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while flotilla_storage::Backend::current_revision(&backend)
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("etcd at {} did not answer within 30s", etcd.endpoint);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(etcd)
    }
}

/// The floor for `--storage etcd`: `writers` tasks each making `per_writer` plain etcd-client
/// puts of `value` to new keys under `prefix` (no transaction, no compare: the cheapest
/// durable write etcd offers), from this process.
pub async fn raw_puts(
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
