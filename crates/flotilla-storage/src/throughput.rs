//! Raw write throughput of a [`Backend`]: the floor that the hub's own benchmarks compare
//! against (an API request that writes can never be faster than the store's write).
//!
//! The workload is the API server's: compare-and-swap updates of Kubernetes-sized values.
//! Each of `writers` concurrent tasks owns `keys_per_writer` keys under a prefix, creates
//! each with [`Precondition::Absent`] and then updates them round-robin with
//! [`Precondition::ModRevision`] of its last write.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{Backend, Precondition, Result};

/// What to run.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Concurrent writing tasks.
    pub writers: usize,
    /// Writes each task makes (creates included).
    pub writes_per_writer: usize,
    /// Distinct keys each task cycles through.
    pub keys_per_writer: usize,
    /// The value written (e.g. a 1 KiB JSON object).
    pub value: Bytes,
    /// Keys are `{prefix}w{writer}/k{n}`.
    pub prefix: String,
}

/// What was measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Acknowledged writes.
    pub writes: usize,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Acknowledged writes per second, over all writers.
    pub writes_per_sec: f64,
    /// Median latency of one write as its caller saw it.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// The slowest write.
    pub max: Duration,
}

impl Report {
    /// The report of writes that took `latencies` each and `elapsed` in all.
    pub fn from_latencies(mut latencies: Vec<Duration>, elapsed: Duration) -> Report {
        latencies.sort_unstable();
        let pick = |q: f64| {
            latencies
                .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        Report {
            writes: latencies.len(),
            elapsed,
            writes_per_sec: latencies.len() as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
            p50: pick(0.50),
            p99: pick(0.99),
            max: latencies.last().copied().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} writes in {:.2?}: {:.0} writes/s, p50 {:.2?}, p99 {:.2?}, max {:.2?}",
            self.writes, self.elapsed, self.writes_per_sec, self.p50, self.p99, self.max
        )
    }
}

/// A JSON value of about `size` bytes shaped like a ConfigMap.
pub fn json_value(size: usize) -> Bytes {
    let head = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bench","namespace":"default","labels":{"app":"bench"}},"data":{"payload":""#;
    let tail = r#""}}"#;
    let fill = size.saturating_sub(head.len() + tail.len());
    let mut s = String::with_capacity(head.len() + fill + tail.len());
    s.push_str(head);
    s.extend(std::iter::repeat_n('x', fill));
    s.push_str(tail);
    Bytes::from(s)
}

/// Runs `workload` against `backend` and reports throughput and latency. Any refused or
/// failed write fails the run: on a store nobody else writes under `prefix`, every CAS
/// must succeed.
pub async fn measure_writes(backend: Arc<dyn Backend>, workload: &Workload) -> Result<Report> {
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(workload.writers);
    for w in 0..workload.writers {
        let backend = Arc::clone(&backend);
        let workload = workload.clone();
        tasks.push(tokio::spawn(async move {
            let keys = workload.keys_per_writer.max(1);
            let mut last: Vec<Option<i64>> = vec![None; keys];
            let mut latencies = Vec::with_capacity(workload.writes_per_writer);
            for n in 0..workload.writes_per_writer {
                let slot = n % keys;
                let key = format!("{}w{w}/k{slot}", workload.prefix);
                let precondition = match last[slot] {
                    Some(rev) => Precondition::ModRevision(rev),
                    None => Precondition::Absent,
                };
                let t = Instant::now();
                let kv = backend
                    .put(&key, workload.value.clone(), precondition)
                    .await?;
                latencies.push(t.elapsed());
                last[slot] = Some(kv.mod_revision);
            }
            Ok::<_, crate::Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        let task_latencies = task
            .await
            .map_err(|e| crate::Error::Backend(Box::new(e)))??;
        latencies.extend(task_latencies);
    }
    Ok(Report::from_latencies(latencies, started.elapsed()))
}
