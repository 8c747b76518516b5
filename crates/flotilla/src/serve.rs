//! `flotilla hub` and `flotilla member`: the API server plus the controllers that run beside it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use flotilla_apiserver::server::{Faults, RunningServer, ServerOptions};
use flotilla_cli::args::{HubArgs, MemberArgs};

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Raises the soft open-file limit to the hard one, as servers do: every member of
/// `flotilla member --count N` holds its own listener, store and client connections.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(error = %e, soft, hard, "could not raise the open-file limit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not read the open-file limit"),
    }
}

/// Opens the embedded store in `data_dir` (blocking work, off the async threads).
async fn open_embedded(
    data_dir: &Path,
    options: flotilla_storage::EmbeddedOptions,
) -> anyhow::Result<flotilla_storage::SharedBackend> {
    let dir = data_dir.to_path_buf();
    let backend = tokio::task::spawn_blocking(move || {
        flotilla_storage::EmbeddedBackend::open_with_options(&dir, options)
    })
    .await
    .context("opening the store")??;
    Ok(Arc::new(backend))
}

/// A simulated member's store: its watch history sized for one small cluster's watchers
/// (its own simulator and exporter on loopback, the hub's drift watches), not for the hub's.
/// A watch from further back gets 410 Expired and its client lists again, as with
/// kube-apiserver once etcd has compacted. Its file cache is small too.
fn member_store_options() -> flotilla_storage::EmbeddedOptions {
    flotilla_storage::EmbeddedOptions {
        history_capacity: MEMBER_HISTORY_EVENTS,
        history_max_bytes: MEMBER_HISTORY_BYTES,
        cache_bytes: MEMBER_FILE_CACHE_BYTES,
        ..Default::default()
    }
}

/// Events a member's watch history keeps ...
const MEMBER_HISTORY_EVENTS: usize = 1_000;
/// ... and at most this many bytes of objects in them.
const MEMBER_HISTORY_BYTES: usize = 1 << 20;
/// File pages a member's store keeps in memory (every value is in its index already; the
/// store's default, 2 MiB, would be 2 GiB for `--count 1000` once every member had written).
const MEMBER_FILE_CACHE_BYTES: usize = 1 << 20;

/// Connects to etcd and waits until it answers, saying so every 2 s. Meanwhile `listener`
/// answers probes: `/livez` ok, `/readyz` failing with the cause, the API 503.
async fn open_etcd(
    args: &HubArgs,
    listener: &tokio::net::TcpListener,
) -> anyhow::Result<flotilla_storage::SharedBackend> {
    anyhow::ensure!(
        !args.etcd_endpoints.is_empty(),
        "--storage etcd needs --etcd-endpoints URL[,URL...]"
    );
    let options = flotilla_storage::etcd::EtcdOptions {
        endpoints: args.etcd_endpoints.clone(),
        ca_file: args.etcd_cafile.clone(),
        cert_file: args.etcd_certfile.clone(),
        key_file: args.etcd_keyfile.clone(),
        prefix: args.etcd_prefix.clone(),
    };
    let backend = flotilla_storage::etcd::EtcdBackend::connect_with(&options)
        .await
        .context("connecting to etcd")?;
    let endpoints = args.etcd_endpoints.join(",");
    let cause =
        flotilla_apiserver::waiting::WaitingCause::new(format!("waiting for etcd at {endpoints}"));
    let reachable = backend.wait_reachable(std::time::Duration::from_secs(2), |e| {
        tracing::warn!(%endpoints, error = %e, "etcd is unreachable; retrying in 2s (/readyz fails until it answers)");
        cause.set(format!("etcd at {endpoints} is unreachable: {e}"));
    });
    flotilla_apiserver::waiting::answer_probes_until(listener, cause.clone(), reachable).await?;
    tracing::info!(%endpoints, prefix = %args.etcd_prefix, "connected to etcd");
    Ok(Arc::new(backend))
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures_pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

async fn futures_pending() {
    std::future::pending::<()>().await
}

/// The kube config of a server's admin kubeconfig.
async fn admin_config(kubeconfig: &Path) -> anyhow::Result<kube::Config> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .context("loading the admin kubeconfig")
}

/// A kube client for a server's admin kubeconfig, multiplexing every request and watch of
/// the controllers beside the server over one HTTP/2 connection to it.
async fn admin_client(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    Ok(flotilla_controllers::multiplexed_client::client(
        admin_config(kubeconfig).await?,
    )?)
}

async fn serving(server: RunningServer) -> anyhow::Result<()> {
    server.serving.await.context("the API server stopped")?;
    anyhow::bail!("the API server stopped")
}

/// `flotilla hub`
pub(crate) async fn hub(args: HubArgs) -> anyhow::Result<()> {
    init_tracing();
    raise_open_file_limit();
    // Listening first: a hub waiting for etcd already answers its probes.
    let listener = flotilla_apiserver::server::bind(&args.listen).await?;
    let store = match args.storage.as_str() {
        "etcd" => open_etcd(&args, &listener).await?,
        _ => open_embedded(&args.data_dir, Default::default()).await?,
    };
    let gateway = Arc::new(crate::cluster_gateway::GatewayBackend::default());
    let pushes = flotilla_controllers::gitops::PushQueue::default();
    let server = flotilla_apiserver::server::start_on(
        listener,
        ServerOptions {
            listen: args.listen.clone(),
            data_dir: args.data_dir.clone(),
            store,
            cluster_name: "flotilla-hub".into(),
            bootstrap: flotilla_apis::crds(),
            faults: Faults::default(),
            extra_metrics: Some(Box::new(|registry| {
                flotilla_controllers::cluster::health::register_metrics(registry);
                flotilla_controllers::application::metrics::register_metrics(registry);
            })),
            simulated_member: false,
            extra_routes: Some(fleet_metrics_routes()),
            ui: true,
            cluster_gateway: Some(gateway.clone()),
            webhook: Some(gitops_webhook(&pushes, args.gitops_webhook_secret.clone())),
        },
    )
    .await?;
    eprintln!(
        "flotilla hub serving at {}; admin kubeconfig: {}",
        server.url,
        server.admin_kubeconfig.display()
    );
    let hub_client = admin_client(&server.admin_kubeconfig).await?;
    gateway.connect(hub_client.clone());
    let identity = args
        .id
        .clone()
        .unwrap_or_else(|| format!("{}:{}", hostname(), server.addr.port()));
    let mut election = flotilla_controllers::leader::ElectionOptions::new(identity);
    // An embedded store belongs to this one process: no other hub can hold the Lease.
    election.sole_candidate = args.storage == "embedded";
    let options = flotilla_controllers::hub::HubControllerOptions {
        cluster_probe_interval: args.cluster_probe_interval,
        cluster_probe_concurrency: args.cluster_probe_concurrency as usize,
        fleet_metrics_interval: args
            .fleet_metrics_interval
            .unwrap_or(args.cluster_probe_interval),
        mcs_resync_interval: args.mcs_resync_interval,
        gitops: flotilla_controllers::gitops::GitOpsOptions {
            cache_dir: args.data_dir.join("gitops"),
            poll_interval: args.gitops_poll_interval,
            resync_interval: std::time::Duration::from_secs(5),
        },
        gitops_pushes: pushes,
        application_revision_limit: args.application_revision_limit as usize,
        member_request_concurrency: args.member_request_concurrency as usize,
        application_concurrency: args.application_concurrency,
        application_health_recheck: args.application_health_recheck,
        application_resync_period: args.application_resync_period,
    };
    let every_hub = {
        let (client, options) = (hub_client.clone(), options.clone());
        keep_running("fleet metrics", move || {
            flotilla_controllers::hub::run_on_every_hub(client.clone(), options.clone())
        })
    };
    let state = server.state.clone();
    let kubeconfig = server.admin_kubeconfig.clone();
    let lead = move || {
        let (kubeconfig, state, options) = (kubeconfig.clone(), state.clone(), options.clone());
        contained(move || while_leading(kubeconfig, state, options))
    };
    let elected =
        flotilla_controllers::leader::run_elected(hub_client, election, lead, shutdown_signal());
    tokio::select! {
        r = serving(server) => r,
        () = elected => Ok(()),
        () = every_hub => Ok(()),
    }
}

/// `flotilla gateway`
pub(crate) async fn gateway(
    kubeconfig: Option<&Path>,
    args: flotilla_cli::args::GatewayArgs,
) -> anyhow::Result<()> {
    init_tracing();
    let hub_client = flotilla_cli::kubeconfig::hub_client(kubeconfig).await?;
    tokio::select! {
        r = flotilla_gateway::run(hub_client, &args.listen) => Ok(r?),
        _ = shutdown_signal() => Ok(()),
    }
}

/// `/metrics/clusters` (every member's kube-state-metrics series with a `cluster` label) and
/// `/metrics/clusters/history` (the last hour, JSON) on the hub, behind its auth.
fn fleet_metrics_routes() -> axum::Router {
    use axum::response::IntoResponse;
    axum::Router::new()
        .route(
            "/metrics/clusters",
            axum::routing::get(|| async {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    flotilla_controllers::fleetmetrics::text(),
                )
                    .into_response()
            }),
        )
        .route(
            "/metrics/clusters/history",
            axum::routing::get(|| async {
                axum::Json(flotilla_controllers::fleetmetrics::history()).into_response()
            }),
        )
}

/// `POST /api/webhook` on the hub: push notifications queued for the GitOps controller.
fn gitops_webhook(
    pushes: &flotilla_controllers::gitops::PushQueue,
    secret: Option<String>,
) -> flotilla_apiserver::webhook::WebhookHandler {
    let pushes = pushes.clone();
    Arc::new(move |headers, body| {
        let (code, message) = pushes.handle(headers, body, secret.as_deref());
        flotilla_apiserver::webhook::WebhookReply { code, message }
    })
}

/// Everything that runs only on the hub holding the Lease `kube-system/flotilla-controllers`,
/// and stops when it loses it. This is the one place to register a hub controller: add
/// kube-rs controllers to `flotilla_controllers::hub::run`, anything else here. It runs on a
/// runtime of its own (see [`contained`]), so even tasks a controller spawns stop with it.
async fn while_leading(
    kubeconfig: PathBuf,
    state: flotilla_apiserver::state::SharedState,
    options: flotilla_controllers::hub::HubControllerOptions,
) {
    let hub_client = loop {
        match admin_client(&kubeconfig).await {
            Ok(c) => break c,
            Err(e) => tracing::error!(error = %format!("{e:#}"), "hub client for the controllers"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    };
    tokio::join!(
        keep_running("hub controllers", || {
            flotilla_controllers::hub::run(hub_client.clone(), options.clone())
        }),
        keep_running("garbage collection and namespace lifecycle", || {
            leader_tasks(state.clone())
        }),
    );
}

/// Runs `work()` on a tokio runtime of its own until this future is dropped, then shuts that
/// runtime down: every task spawned inside (`tokio::spawn` from a controller) is cancelled
/// too, so a hub that lost the Lease leaves nothing acting behind.
async fn contained<F, Fut>(work: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    struct ShutDownOnDrop(Option<tokio::runtime::Runtime>);
    impl Drop for ShutDownOnDrop {
        fn drop(&mut self) {
            if let Some(runtime) = self.0.take() {
                runtime.shutdown_background();
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("flotilla-leader")
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the controllers' runtime");
            return futures_pending().await;
        }
    };
    let done = runtime.spawn(async move { work().await });
    let _guard = ShutDownOnDrop(Some(runtime));
    let _ = done.await;
}

/// The API server's own leader-only work (GC, namespace lifecycle, compaction).
async fn leader_tasks(state: flotilla_apiserver::state::SharedState) -> anyhow::Result<()> {
    flotilla_apiserver::leader_tasks::run(state)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))
}

/// This machine's name, for the default leader-election identity.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Runs `start()` again (after a pause) whenever it fails: the API server keeps serving
/// even if the controllers beside it hit an error.
async fn keep_running<F, Fut>(what: &'static str, mut start: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    loop {
        match start().await {
            Ok(()) => tracing::warn!("{what} stopped; restarting"),
            Err(e) => tracing::error!(error = %format!("{e:#}"), "{what} failed; restarting"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// Starts one simulated member's API server; returns it, the admin client the simulator uses
/// and the workload metrics exporter the simulator feeds.
async fn one_member(
    name: String,
    listen: String,
    data_dir: PathBuf,
    args: &MemberArgs,
) -> anyhow::Result<(
    RunningServer,
    kube::Client,
    flotilla_controllers::statemetrics::StateMetrics,
)> {
    let store = open_embedded(&data_dir, member_store_options()).await?;
    let state_metrics = flotilla_controllers::statemetrics::StateMetrics::new(&name);
    let registered = state_metrics.clone();
    let server = flotilla_apiserver::start(ServerOptions {
        listen,
        data_dir: data_dir.clone(),
        store,
        cluster_name: name.clone(),
        bootstrap: flotilla_apis::mcs_crds(),
        faults: Faults {
            latency: args.fault_latency,
            refuse_verbs: args.fault_refuse.clone(),
        },
        extra_metrics: Some(Box::new(move |registry| registered.register(registry))),
        simulated_member: true,
        extra_routes: None,
        ui: false,
        cluster_gateway: None,
        webhook: None,
    })
    .await
    .with_context(|| format!("starting member {name}"))?;
    eprintln!(
        "flotilla member {name} serving at {}; admin kubeconfig: {}",
        server.url,
        server.admin_kubeconfig.display()
    );
    // One HTTP/2 connection carries the simulator's watches and requests (HTTP/1.1 took a
    // connection, two descriptors in this process, per watch).
    let client = admin_client(&server.admin_kubeconfig).await?;
    Ok((server, client, state_metrics))
}

/// `flotilla member`
pub(crate) async fn member(args: MemberArgs) -> anyhow::Result<()> {
    init_tracing();
    raise_open_file_limit();
    let simulator = flotilla_controllers::membersim::SimulatorOptions {
        ready_delay: args.ready_delay,
        stuck: args.fault_stuck,
        ..Default::default()
    };
    let (host, port) = args
        .listen
        .rsplit_once(':')
        .with_context(|| format!("--listen {:?} is not host:port", args.listen))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("bad port in --listen {:?}", args.listen))?;
    let mut members = Vec::new();
    if args.count <= 1 {
        let data_dir = args
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(".flotilla/members").join(&args.name));
        members.push((args.name.clone(), args.listen.clone(), data_dir));
    } else {
        let base = args
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(".flotilla/members"));
        for i in 1..=args.count {
            let name = format!("{}-{i}", args.name);
            let p = if port == 0 { 0 } else { port + (i as u16) - 1 };
            members.push((name.clone(), format!("{host}:{p}"), base.join(&name)));
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (name, listen, data_dir) in members {
        let (server, client, state_metrics) =
            one_member(name.clone(), listen, data_dir, &args).await?;
        let simulator = flotilla_controllers::membersim::SimulatorOptions {
            cluster_name: name.clone(),
            state_metrics: Some(state_metrics),
            ..simulator.clone()
        };
        tasks.spawn(async move {
            let simulate = keep_running("member simulator", move || {
                flotilla_controllers::membersim::run(client.clone(), simulator.clone())
            });
            // A member is alone on its store: its GC and namespace lifecycle always run.
            let state = server.state.clone();
            let lifecycles =
                keep_running("garbage collection and namespace lifecycle", move || {
                    leader_tasks(state.clone())
                });
            tokio::select! {
                r = serving(server) => r.with_context(|| format!("member {name}")),
                _ = simulate => Ok(()),
                _ = lifecycles => Ok(()),
            }
        });
    }
    tokio::select! {
        r = tasks.join_next() => match r {
            Some(Ok(r)) => r,
            Some(Err(e)) => Err(e.into()),
            None => Ok(()),
        },
        _ = shutdown_signal() => Ok(()),
    }
}
