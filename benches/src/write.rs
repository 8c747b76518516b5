//! `write-throughput`: concurrent ConfigMap creates through the hub's HTTPS API against the
//! raw storage engine doing the same number of ~1 KiB creates in this process. With
//! `--storage etcd` the floor is plain etcd-client puts to the same etcd, and the store
//! layer's own compare-and-swap creates are reported beside it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

use crate::hub::{self, Flotilla};
use crate::stats::Summary;

/// Flags of `write-throughput`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Concurrent writers.
    #[arg(long, default_value_t = 32)]
    pub writers: usize,
    /// ConfigMaps each writer creates.
    #[arg(long, default_value_t = 200)]
    pub writes_per_writer: usize,
    /// Approximate size of each object in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// The flotilla binary.
    #[arg(long, default_value_os_t = hub::default_binary())]
    pub flotilla: PathBuf,
    /// The hub's storage: `embedded`, or `etcd` (the floor is then raw etcd puts from this
    /// process to the same etcd).
    #[arg(long, default_value = "embedded", value_parser = ["embedded", "etcd"])]
    pub storage: String,
    /// etcd to use with `--storage etcd`; without it a single-member etcd is started from the
    /// `etcd` binary on PATH.
    #[arg(long)]
    pub etcd_endpoints: Option<String>,
}

/// A ConfigMap named `name` whose serialized form is about `size` bytes.
pub(crate) fn config_map(namespace: &str, name: &str, size: usize) -> ConfigMap {
    let overhead = 120 + name.len() + namespace.len();
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([("app".to_string(), "bench".to_string())])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "payload".to_string(),
            "x".repeat(size.saturating_sub(overhead)),
        )])),
        ..Default::default()
    }
}

/// Creates namespace `name` (no error if it exists).
pub(crate) async fn ensure_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e).context("creating the namespace"),
    }
}

/// Result of creating ConfigMaps concurrently through the API.
pub(crate) struct ApiWrites {
    pub writes: usize,
    pub elapsed: Duration,
    pub latency: Summary,
}

impl ApiWrites {
    pub(crate) fn per_sec(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// `writers` tasks each create `per_writer` ConfigMaps `w{i}-{n}` in `namespace`.
pub(crate) async fn create_config_maps(
    client: &kube::Client,
    namespace: &str,
    writers: usize,
    per_writer: usize,
    size: usize,
) -> anyhow::Result<ApiWrites> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let namespace = namespace.to_string();
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(per_writer);
            for n in 0..per_writer {
                let cm = config_map(&namespace, &format!("w{w}-{n}"), size);
                let t = Instant::now();
                api.create(&PostParams::default(), &cm)
                    .await
                    .with_context(|| format!("creating w{w}-{n}"))?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut latencies = Vec::with_capacity(writers * per_writer);
    while let Some(r) = tasks.join_next().await {
        latencies.extend(r??);
    }
    let elapsed = started.elapsed();
    Ok(ApiWrites {
        writes: latencies.len(),
        elapsed,
        latency: Summary::of(&mut latencies),
    })
}

/// Creates one ConfigMap of the benchmark's shape through the hub and returns the size of
/// the value the hub stored for it in etcd.
async fn stored_size(client: &kube::Client, etcd: &[&str], size: usize) -> anyhow::Result<usize> {
    // A name as long as the longest of the run's (`w31-199`).
    let name = "size-01";
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "bench");
    api.create(&PostParams::default(), &config_map("bench", name, size))
        .await
        .context("creating the size probe")?;
    let key = format!("/registry/core/configmaps/bench/{name}");
    let mut etcd = etcd_client::Client::connect(etcd, None).await?;
    let got = etcd.get(key.as_str(), None).await?;
    let kv = got
        .kvs()
        .first()
        .with_context(|| format!("the hub stored no {key} in etcd"))?;
    Ok(kv.value().len())
}

/// CPU seconds used so far by this process (the clients) and by the local etcd, if any.
#[derive(Clone, Copy)]
struct SideCpu {
    client: f64,
    etcd: Option<f64>,
}

impl SideCpu {
    fn now(etcd: Option<u32>) -> anyhow::Result<SideCpu> {
        Ok(SideCpu {
            client: hub::Usage::of(std::process::id())?.cpu_secs,
            etcd: etcd.map(hub::Usage::of).transpose()?.map(|u| u.cpu_secs),
        })
    }

    /// Prints the CPU per write the clients and etcd spent since `self`.
    fn report_since(self, etcd: Option<u32>, writes: usize) -> anyhow::Result<()> {
        let now = SideCpu::now(etcd)?;
        let per = |secs: f64| secs * 1e6 / writes.max(1) as f64;
        let etcd = match now.etcd.zip(self.etcd) {
            Some((after, before)) => format!(", etcd {:.0} µs", per(after - before)),
            None => String::new(),
        };
        println!(
            "    CPU per write: client {:.0} µs{etcd}",
            per(now.client - self.client)
        );
        Ok(())
    }
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    println!(
        "write-throughput: {} writers x {} creates of ~{} B objects",
        args.writers, args.writes_per_writer, args.size
    );

    // The floor: the engine the hub runs on, driven in-process with the same number of
    // writers and creates of the same size.
    let workload = flotilla_storage::throughput::Workload {
        writers: args.writers,
        writes_per_writer: args.writes_per_writer,
        keys_per_writer: args.writes_per_writer,
        value: flotilla_storage::throughput::json_value(args.size),
        prefix: "/bench-floor/configmaps/bench/".into(),
    };
    let mut _local_etcd = None;
    let mut etcd_pid = None;
    let writes = args.writers * args.writes_per_writer;
    let (hub, client, floor) = if args.storage == "etcd" {
        let endpoints = match &args.etcd_endpoints {
            Some(e) => e.clone(),
            None => {
                let etcd = crate::etcd::LocalEtcd::start().await?;
                let endpoint = etcd.endpoint.clone();
                etcd_pid = etcd.pid;
                _local_etcd = Some(etcd);
                endpoint
            }
        };
        let list: Vec<&str> = endpoints.split(',').collect();
        // The hub first, idle during the floors: the floors then write values of the size
        // the hub stores for these ConfigMaps (the object plus the uid, timestamps and
        // managedFields the hub adds), not of the size the client sends.
        let hub = hub::Flotilla::spawn(
            &args.flotilla,
            &[
                "hub",
                "--listen",
                "127.0.0.1:0",
                "--storage",
                "etcd",
                "--etcd-endpoints",
                &endpoints,
            ],
        )?;
        let client = hub
            .wait_ready(&hub.data_dir().join("admin.kubeconfig"))
            .await?;
        ensure_namespace(&client, "bench").await?;
        let stored = stored_size(&client, &list, args.size).await?;
        println!(
            "  one ConfigMap as the hub stores it in etcd: {stored} B (floors write values of this size)"
        );
        let workload = flotilla_storage::throughput::Workload {
            value: flotilla_storage::throughput::json_value(stored),
            // Keys as long as the hub's (`/registry/core/configmaps/bench/w1-2`), outside
            // the hub's watch of `/registry/`.
            prefix: "/registry-floor/configmaps/cas01/".into(),
            ..workload
        };
        let cpu = SideCpu::now(etcd_pid)?;
        let floor = crate::etcd::raw_puts(
            &list,
            args.writers,
            args.writes_per_writer,
            workload.value.to_vec(),
            "/registry-floor/configmaps/bench/",
        )
        .await?;
        println!("  floor (raw etcd-client puts):        {floor}");
        cpu.report_since(etcd_pid, writes)?;
        let backend = flotilla_storage::etcd::EtcdBackend::connect(&list).await?;
        let cpu = SideCpu::now(etcd_pid)?;
        let store =
            flotilla_storage::throughput::measure_writes(Arc::new(backend), &workload).await?;
        println!("  flotilla-storage etcd creates (CAS): {store}");
        cpu.report_since(etcd_pid, writes)?;
        (hub, client, floor)
    } else {
        let floor_dir = tempfile::tempdir()?;
        let backend = {
            let dir = floor_dir.path().to_path_buf();
            tokio::task::spawn_blocking(move || flotilla_storage::EmbeddedBackend::open(dir))
                .await??
        };
        let backend: Arc<dyn flotilla_storage::Backend> = Arc::new(backend);
        let cpu = SideCpu::now(None)?;
        let floor = flotilla_storage::throughput::measure_writes(backend, &workload).await?;
        println!("  floor (embedded engine, in-process): {floor}");
        cpu.report_since(None, writes)?;
        let (hub, client) = Flotilla::hub(&args.flotilla).await?;
        ensure_namespace(&client, "bench").await?;
        (hub, client, floor)
    };
    let rss_before = hub.rss_kib()?;
    let cpu_before = hub::Usage::of(hub.pid())?.cpu_secs;
    let side_cpu = SideCpu::now(etcd_pid)?;
    let api = create_config_maps(
        &client,
        "bench",
        args.writers,
        args.writes_per_writer,
        args.size,
    )
    .await?;
    let rss_after = hub.rss_kib()?;
    let hub_cpu = hub::Usage::of(hub.pid())?.cpu_secs - cpu_before;
    println!(
        "  hub (HTTPS, kube-rs create):         {} writes in {:.2?}: {:.0} writes/s, p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        api.writes,
        api.elapsed,
        api.per_sec(),
        api.latency.p50,
        api.latency.p99,
        api.latency.max
    );
    side_cpu.report_since(etcd_pid, api.writes)?;
    println!(
        "  hub / floor throughput: {:.2} (goal >= 0.5)",
        api.per_sec() / floor.writes_per_sec
    );
    // CPU per create is what a loaded machine changes least: the ratio above swings with
    // whatever else runs on the cores, this does not.
    println!(
        "  hub CPU: {:.2} s for {} creates, {:.0} µs per create",
        hub_cpu,
        api.writes,
        hub_cpu * 1e6 / api.writes.max(1) as f64
    );
    println!(
        "  hub RSS: {} before, {} after",
        hub::mib(rss_before),
        hub::mib(rss_after)
    );
    Ok(())
}
