//! `gateway`: requests through `flotilla gateway` (hub Ingress of class `flotilla`, echo
//! Service on M simulated members) against the floor of calling one member's service proxy
//! directly, in the same run with the same client: latency of sequential requests (p50/p99)
//! and the most requests per second C concurrent clients get.
//!
//! Beside them, as a reference (not the product): the same member's service proxy reached
//! through a bare TCP pass-through in its own process (`splice`), the same client and TLS
//! session as the floor. It costs what one more process on the path costs at least, so
//! gateway / floor can be read against splice / floor.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::hub::{self, Flotilla};
use crate::splice::SpliceProcess;
use crate::stats::Summary;

/// Flags of `gateway`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Simulated member clusters (one `flotilla member --count M` process).
    #[arg(long, default_value_t = 2)]
    pub members: u32,
    /// Sequential requests per latency measurement (floor, impersonating and gateway
    /// requests interleaved).
    #[arg(long, default_value_t = 1000)]
    pub requests: usize,
    /// Concurrent clients of the throughput measurement.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds of each throughput measurement.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// The flotilla binary.
    #[arg(long, default_value_os_t = hub::default_binary())]
    pub flotilla: PathBuf,
}

const NAMESPACE: &str = "bench";

/// The echo workload of one member: a Service and a Deployment of two simulated Pods.
fn echo_objects() -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "echo", "namespace": NAMESPACE,
                "annotations": {"sim.flotilla.io/ready-delay": "0s"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "echo"}},
                "template": {"metadata": {"labels": {"app": "echo"}},
                    "spec": {"containers": [{"name": "echo", "image": "echo:1"}]}}}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "echo", "namespace": NAMESPACE},
            "spec": {"selector": {"app": "echo"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
    ]
}

/// The hub's Ingress: every host and path to Service `echo`.
fn ingress() -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "echo", "namespace": NAMESPACE},
            "spec": {"ingressClassName": "flotilla",
                "defaultBackend": {"service": {"name": "echo", "port": {"number": 80}}}}}),
    ]
}

/// Server-side applies `objects` (the plural is the lower-case kind + `s`, or `es` after `s`).
async fn apply(client: &kube::Client, objects: &[Value]) -> anyhow::Result<()> {
    for object in objects {
        let api_version = object["apiVersion"].as_str().unwrap_or("v1");
        let kind = object["kind"].as_str().unwrap_or_default();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let lower = kind.to_lowercase();
        let plural = if lower.ends_with('s') {
            format!("{lower}es")
        } else {
            format!("{lower}s")
        };
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, kind),
            &plural,
        );
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            name,
            &PatchParams::apply("flotilla-bench").force(),
            &Patch::Apply(object),
        )
        .await
        .with_context(|| format!("applying {kind} {name}"))?;
    }
    Ok(())
}

/// A running `flotilla gateway`; killed on drop.
struct GatewayProcess {
    child: Child,
    address: String,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GatewayProcess {
    fn start(binary: &Path, hub_kubeconfig: &Path, log: &Path) -> anyhow::Result<Self> {
        let child = Command::new(binary)
            .arg("gateway")
            .arg("--kubeconfig")
            .arg(hub_kubeconfig)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(log)?))
            .spawn()
            .context("spawning flotilla gateway")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(address) = text
                .lines()
                .find_map(|l| l.split("serving at http://").nth(1))
            {
                return Ok(GatewayProcess {
                    child,
                    address: address.trim().to_string(),
                });
            }
            if Instant::now() > deadline {
                bail!("the gateway printed no address:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One GET of `path`; `Err` unless the answer is a 2xx.
async fn get(client: &kube::Client, path: &str) -> anyhow::Result<()> {
    get_as(client, path, &[]).await
}

/// One GET of `path` with extra `headers`.
async fn get_as(client: &kube::Client, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut request = http::Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    client.request_text(request.body(Vec::new())?).await?;
    Ok(())
}

/// The identity the gateway acts as on members (the hub's credential only impersonates).
const AS_GATEWAY: &[(&str, &str)] = &[
    ("Impersonate-User", "system:flotilla:ingress-gateway"),
    ("Impersonate-Group", "system:masters"),
];

/// Polls until `path` answers 200 `times` in a row.
async fn until_served(client: &kube::Client, path: &str, times: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut in_a_row = 0;
    while in_a_row < times {
        match get(client, path).await {
            Ok(()) => in_a_row += 1,
            Err(e) if Instant::now() > deadline => bail!("{path} never answered: {e}"),
            Err(_) => {
                in_a_row = 0;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Ok(())
}

/// One way of asking for the echo: a client, a path and extra headers.
struct Target<'a> {
    client: &'a kube::Client,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
}

/// Latency of `n` sequential GETs of each target, interleaved (one of each in turn), so every
/// target sees the same load on the shared machine; one summary per target, in order.
async fn latencies(targets: &[Target<'_>], n: usize) -> anyhow::Result<Vec<Summary>> {
    let mut samples = vec![Vec::with_capacity(n); targets.len()];
    for _ in 0..n {
        for (target, samples) in targets.iter().zip(samples.iter_mut()) {
            let started = Instant::now();
            get_as(target.client, target.path, target.headers).await?;
            samples.push(started.elapsed());
        }
    }
    Ok(samples.iter_mut().map(|s| Summary::of(s)).collect())
}

/// Requests per second `concurrency` clients complete in `seconds`; (rate, failures).
async fn throughput(
    client: &kube::Client,
    path: &str,
    concurrency: usize,
    seconds: u64,
) -> (f64, usize) {
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, path) = (client.clone(), path.to_string());
            let (done, failed) = (done.clone(), failed.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    let counter = if get(&client, &path).await.is_ok() {
                        &done
                    } else {
                        &failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    for w in workers {
        let _ = w.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    (
        done.load(Ordering::Relaxed) as f64 / elapsed,
        failed.load(Ordering::Relaxed),
    )
}

/// The hub, the members with the echo workload, the Ingress and the gateway, ready to serve.
struct Fleet {
    _hub: Flotilla,
    _members: Flotilla,
    gateway: GatewayProcess,
    member_client: kube::Client,
    /// The first member's kubeconfig (the floor's and the splice's).
    member_kubeconfig: PathBuf,
}

async fn start_fleet(args: &Args) -> anyhow::Result<Fleet> {
    let (hub, hub_client) = Flotilla::hub_probing_every(&args.flotilla, "1s", &[]).await?;
    let hub_kubeconfig = hub.data_dir().join("admin.kubeconfig");
    let count = args.members.to_string();
    let members = Flotilla::spawn(
        &args.flotilla,
        &[
            "member",
            "--name",
            "m",
            "--listen",
            "127.0.0.1:0",
            "--count",
            &count,
        ],
    )?;
    let mut member_client = None;
    let member_kubeconfig = members.data_dir().join("m-1").join("admin.kubeconfig");
    for i in 1..=args.members {
        let name = format!("m-{i}");
        let kubeconfig = members.data_dir().join(&name).join("admin.kubeconfig");
        let client = members.wait_ready(&kubeconfig).await?;
        crate::dispatch::join(&args.flotilla, &hub_kubeconfig, &kubeconfig, &name)?;
        apply(&client, &echo_objects()).await?;
        member_client.get_or_insert(client);
    }
    apply(&hub_client, &ingress()).await?;
    let log = hub.data_dir().join("gateway.log");
    let gateway = GatewayProcess::start(&args.flotilla, &hub_kubeconfig, &log)?;
    Ok(Fleet {
        _hub: hub,
        _members: members,
        gateway,
        member_client: member_client.context("--members must be at least 1")?,
        member_kubeconfig,
    })
}

/// A bare TCP pass-through to the member of `kubeconfig`, and a client that reaches the
/// member through it (same credentials and TLS as the floor's client).
async fn splice_to(kubeconfig: &Path) -> anyhow::Result<(SpliceProcess, kube::Client)> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await?;
    let member = config
        .cluster_url
        .authority()
        .context("the member's URL has no host")?
        .to_string();
    let splice = SpliceProcess::start(&std::env::current_exe()?, &member)?;
    config.cluster_url = format!("https://{}", splice.address).parse()?;
    Ok((splice, kube::Client::try_from(config)?))
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    println!(
        "gateway: {} members, {} sequential requests, {} clients for {} s",
        args.members, args.requests, args.concurrency, args.seconds
    );
    let fleet = start_fleet(&args).await?;
    let gateway_url = format!("http://{}", fleet.gateway.address);
    let gateway_client = kube::Client::try_from(kube::Config::new(gateway_url.parse()?))?;
    let floor_path = format!("/api/v1/namespaces/{NAMESPACE}/services/echo:http/proxy/bench");
    let gateway_path = "/bench";
    until_served(&fleet.member_client, &floor_path, 20).await?;
    until_served(&gateway_client, gateway_path, 20).await?;
    let (_splice, splice_client) = splice_to(&fleet.member_kubeconfig).await?;
    until_served(&splice_client, &floor_path, 20).await?;

    let targets = [
        Target {
            client: &fleet.member_client,
            path: &floor_path,
            headers: &[],
        },
        Target {
            client: &fleet.member_client,
            path: &floor_path,
            headers: AS_GATEWAY,
        },
        Target {
            client: &splice_client,
            path: &floor_path,
            headers: &[],
        },
        Target {
            client: &gateway_client,
            path: gateway_path,
            headers: &[],
        },
    ];
    let [floor, impersonating, spliced, through] =
        <[Summary; 4]>::try_from(latencies(&targets, args.requests).await?)
            .map_err(|_| anyhow::anyhow!("one summary per target"))?;
    let ratio = |s: &Summary| s.p50.as_secs_f64() / floor.p50.as_secs_f64();
    println!("  floor (member service proxy): {floor}");
    println!("  same, as the gateway's identity (impersonating): {impersonating}");
    println!("  reference, bare TCP hop (splice process, not the product): {spliced}");
    println!("  gateway:                      {through}");
    println!(
        "  p50 ratio: gateway {:.2} (goal <= 1.2), bare TCP hop {:.2}",
        ratio(&through),
        ratio(&spliced)
    );
    let (floor_rate, floor_failed) = throughput(
        &fleet.member_client,
        &floor_path,
        args.concurrency,
        args.seconds,
    )
    .await;
    let (splice_rate, splice_failed) =
        throughput(&splice_client, &floor_path, args.concurrency, args.seconds).await;
    let (gateway_rate, gateway_failed) = throughput(
        &gateway_client,
        gateway_path,
        args.concurrency,
        args.seconds,
    )
    .await;
    println!("  floor max rate:   {floor_rate:.0} requests/s ({floor_failed} failed)");
    println!("  bare hop max rate: {splice_rate:.0} requests/s ({splice_failed} failed)");
    println!("  gateway max rate: {gateway_rate:.0} requests/s ({gateway_failed} failed)");
    Ok(())
}
