//! The simulated member's workload controllers (see README.md in this folder).
//!
//! They stand in for the controllers of a real cluster and reach the member's own API server
//! only through kube-rs, so they would run unchanged against any Kubernetes API server.

pub(crate) mod endpoints;
pub(crate) mod expectations;
pub(crate) mod feeds;
pub(crate) mod hpa;
pub(crate) mod network;
pub(crate) mod nodes;
pub(crate) mod pods;
pub(crate) mod replicasets;
pub(crate) mod rollout;
pub(crate) mod slim;
mod workloads;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use serde_json::{Value, json};

use rollout::Progress;

/// Annotation: `"true"` keeps a rollout (Deployment, StatefulSet, ReplicaSet, DaemonSet, Job)
/// from ever becoming ready, as if its pods never started.
pub(crate) const STUCK_ANNOTATION: &str = "sim.flotilla.io/stuck";
/// Annotation: this object's rollout delay (`500ms`, `3s`, ...), overriding the member's.
pub(crate) const READY_DELAY_ANNOTATION: &str = "sim.flotilla.io/ready-delay";
/// The field manager the simulator writes with.
pub(crate) const FIELD_MANAGER: &str = "flotilla-member-simulator";

/// Options for the workload simulator.
///
/// Build it with struct-update syntax so new fields keep old callers compiling:
/// `SimulatorOptions { ready_delay, stuck, ..Default::default() }`.
#[derive(Debug, Clone)]
pub struct SimulatorOptions {
    /// How long a rollout takes before it reports ready.
    pub ready_delay: Duration,
    /// Fault injection: every rollout stays not ready (as annotation `sim.flotilla.io/stuck`).
    pub stuck: bool,
    /// The member's name: its Nodes are named after it and its pod CIDR derives from it.
    pub cluster_name: String,
    /// How many Nodes the member simulates (1 to 16).
    pub nodes: usize,
    /// The member's workload metrics exporter, which reads the simulator's caches.
    pub state_metrics: Option<crate::statemetrics::StateMetrics>,
}

impl Default for SimulatorOptions {
    fn default() -> Self {
        SimulatorOptions {
            ready_delay: Duration::from_secs(1),
            stuck: false,
            cluster_name: String::new(),
            nodes: 1,
            state_metrics: None,
        }
    }
}

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The member API refused or failed a request.
    #[error("member API: {0}")]
    Api(#[source] Box<kube::Error>),
    /// No address left to allocate.
    #[error(transparent)]
    Allocate(#[from] network::Error),
    /// The object could not be (de)serialized.
    #[error("object encoding: {0}")]
    Encoding(#[from] serde_json::Error),
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Api(Box::new(e))
    }
}

/// The kinds the simulator drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SimKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` ReplicaSet.
    ReplicaSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
    /// `batch/v1` Job.
    Job,
    /// `v1` Service.
    Service,
    /// `networking.k8s.io/v1` Ingress.
    Ingress,
    /// `v1` PersistentVolumeClaim.
    PersistentVolumeClaim,
    /// `autoscaling/v2` HorizontalPodAutoscaler.
    HorizontalPodAutoscaler,
}

impl SimKind {
    /// Every simulated kind.
    pub(crate) const ALL: [SimKind; 9] = [
        SimKind::Deployment,
        SimKind::StatefulSet,
        SimKind::ReplicaSet,
        SimKind::DaemonSet,
        SimKind::Job,
        SimKind::Service,
        SimKind::Ingress,
        SimKind::PersistentVolumeClaim,
        SimKind::HorizontalPodAutoscaler,
    ];

    /// The API resource the kind is served at.
    pub(crate) fn api_resource(self) -> ApiResource {
        let (group, version, kind, plural) = match self {
            SimKind::Deployment => ("apps", "v1", "Deployment", "deployments"),
            SimKind::StatefulSet => ("apps", "v1", "StatefulSet", "statefulsets"),
            SimKind::ReplicaSet => ("apps", "v1", "ReplicaSet", "replicasets"),
            SimKind::DaemonSet => ("apps", "v1", "DaemonSet", "daemonsets"),
            SimKind::Job => ("batch", "v1", "Job", "jobs"),
            SimKind::Service => ("", "v1", "Service", "services"),
            SimKind::Ingress => ("networking.k8s.io", "v1", "Ingress", "ingresses"),
            SimKind::PersistentVolumeClaim => {
                ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims")
            }
            SimKind::HorizontalPodAutoscaler => (
                "autoscaling",
                "v2",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
            ),
        };
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
    }

    fn rollout_status(self) -> Option<fn(&Value, Progress, &str) -> Value> {
        match self {
            SimKind::Deployment => Some(rollout::deployment_status),
            SimKind::StatefulSet => Some(rollout::statefulset_status),
            SimKind::ReplicaSet => Some(rollout::replicaset_status),
            SimKind::DaemonSet => Some(rollout::daemonset_status),
            SimKind::Job => Some(rollout::job_status),
            _ => None,
        }
    }
}

/// State shared by every simulated controller of one member.
struct Shared {
    member_client: kube::Client,
    options: SimulatorOptions,
    /// Seeds address allocation so members hand out different addresses.
    seed: String,
    /// When each (object, generation, replicas) was first seen rolling.
    first_seen: Mutex<HashMap<String, Instant>>,
    cluster_ips: Mutex<network::Pool>,
    load_balancer_ips: Mutex<network::Pool>,
}

struct Context {
    kind: SimKind,
    shared: Arc<Shared>,
}

/// Runs the workload simulator against a member's own API server until the future is dropped.
pub async fn run(member_client: kube::Client, options: SimulatorOptions) -> anyhow::Result<()> {
    let shared = Arc::new(Shared {
        seed: member_seed(&member_client).await,
        cluster_ips: Mutex::new(network::cluster_ip_pool()),
        load_balancer_ips: Mutex::new(network::load_balancer_pool()),
        first_seen: Mutex::new(HashMap::new()),
        member_client,
        options,
    });
    seed_pools(&shared).await;
    // Deployments and ReplicaSets are run through their Pods (workloads.rs).
    let status_only = SimKind::ALL
        .into_iter()
        .filter(|k| !matches!(k, SimKind::Deployment | SimKind::ReplicaSet));
    let controllers = status_only.map(|kind| {
        let shared = shared.clone();
        async move {
            let resource = kind.api_resource();
            let api: Api<DynamicObject> = Api::all_with(shared.member_client.clone(), &resource);
            Controller::new_with(api, watcher::Config::default(), resource)
                .with_config(bounded_reconciles())
                .run(reconcile, error_policy, Arc::new(Context { kind, shared }))
                .for_each(|result| async move {
                    if let Err(e) = result {
                        tracing::debug!(?kind, error = %e, "member simulator reconcile failed");
                    }
                })
                .await;
        }
    });
    tokio::select! {
        _ = futures::future::join_all(controllers) => Ok(()),
        r = workloads::run(shared.clone()) => r,
    }
}

/// At most this many reconciles of one simulated controller run at once: each holds a request
/// to the member's own API server, and every concurrent request is a connection (two
/// descriptors in this process, with TLS and HTTP buffers on both ends) that the client's pool
/// keeps open afterwards.
const RECONCILE_CONCURRENCY: u16 = 4;

fn bounded_reconciles() -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(RECONCILE_CONCURRENCY)
}

/// The `default` namespace's uid: unique per member, stable across restarts.
async fn member_seed(member_client: &kube::Client) -> String {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(member_client.clone());
    for _ in 0..50 {
        match namespaces.get("default").await {
            Ok(ns) => return ns.metadata.uid.unwrap_or_default(),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    String::new()
}

/// Marks every address already handed out (from an earlier run) as taken.
async fn seed_pools(shared: &Shared) {
    let client = &shared.member_client;
    let services: Api<DynamicObject> =
        Api::all_with(client.clone(), &SimKind::Service.api_resource());
    if let Ok(list) = services.list(&ListParams::default()).await {
        for svc in list.items {
            let value = serde_json::to_value(&svc).unwrap_or_default();
            let key = network::key(&value);
            if let Some(ip) = value.pointer("/spec/clusterIP").and_then(Value::as_str)
                && let Ok(mut pool) = shared.cluster_ips.lock()
            {
                pool.mark(ip, &key);
            }
            if let Some(ip) = network::reported_load_balancer_ip(&value)
                && let Ok(mut pool) = shared.load_balancer_ips.lock()
            {
                pool.mark(&ip, &format!("service/{key}"));
            }
        }
    }
    let ingresses: Api<DynamicObject> =
        Api::all_with(client.clone(), &SimKind::Ingress.api_resource());
    if let Ok(list) = ingresses.list(&ListParams::default()).await {
        for ing in list.items {
            let value = serde_json::to_value(&ing).unwrap_or_default();
            if let Some(ip) = network::reported_load_balancer_ip(&value)
                && let Ok(mut pool) = shared.load_balancer_ips.lock()
            {
                pool.mark(&ip, &format!("ingress/{}", network::key(&value)));
            }
        }
    }
}

fn error_policy(_object: Arc<DynamicObject>, error: &Error, _ctx: Arc<Context>) -> Action {
    match error {
        Error::Api(e) if matches!(&**e, kube::Error::Api(s) if s.code == 409) => {
            Action::requeue(Duration::from_millis(200))
        }
        _ => Action::requeue(Duration::from_secs(2)),
    }
}

fn now_rfc3339() -> String {
    crate::cluster::managed_cluster::now_rfc3339()
}

fn annotation<'a>(object: &'a Value, name: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(name))
        .and_then(Value::as_str)
}

fn api_for(shared: &Shared, kind: SimKind, object: &DynamicObject) -> Api<DynamicObject> {
    let resource = kind.api_resource();
    match object.metadata.namespace.as_deref() {
        Some(ns) => Api::namespaced_with(shared.member_client.clone(), ns, &resource),
        None => Api::all_with(shared.member_client.clone(), &resource),
    }
}

async fn reconcile(object: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    if object.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let value = serde_json::to_value(&*object)?;
    match ctx.kind {
        SimKind::Service => reconcile_service(&object, &value, &ctx.shared).await,
        SimKind::Ingress => reconcile_ingress(&object, &value, &ctx.shared).await,
        SimKind::PersistentVolumeClaim => reconcile_claim(&object, &value, &ctx.shared).await,
        SimKind::HorizontalPodAutoscaler => reconcile_hpa(&object, &value, &ctx.shared).await,
        kind => reconcile_rollout(kind, &object, &value, &ctx.shared).await,
    }
}

/// Decides where a rollout stands and when to look again.
fn rollout_progress(
    kind: SimKind,
    value: &Value,
    shared: &Shared,
    already_ready: bool,
) -> (Progress, Option<Duration>) {
    let stuck = shared.options.stuck || annotation(value, STUCK_ANNOTATION) == Some("true");
    let delay = annotation(value, READY_DELAY_ANNOTATION)
        .and_then(parse_delay)
        .unwrap_or(shared.options.ready_delay);
    let key = format!(
        "{kind:?}/{}/{}/{}",
        value
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        rollout::generation(value),
        rollout::desired_replicas(value),
    );
    let mut seen = shared
        .first_seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    progress_at(&mut seen, key, delay, stuck, already_ready, Instant::now())
}

/// The rollout clock: a rollout (identified by `key`: object, generation and replica count)
/// is ready `delay` after it was first seen, unless stuck; one that already reports ready
/// stays ready (a restarted member does not roll everything out again).
fn progress_at(
    first_seen: &mut HashMap<String, Instant>,
    key: String,
    delay: Duration,
    stuck: bool,
    already_ready: bool,
    now: Instant,
) -> (Progress, Option<Duration>) {
    if stuck {
        return (Progress::Rolling, None);
    }
    if already_ready {
        return (Progress::Ready, None);
    }
    if first_seen.len() > 50_000 {
        first_seen.retain(|_, t| now.duration_since(*t) < Duration::from_secs(3600));
    }
    let first = *first_seen.entry(key).or_insert(now);
    let elapsed = now.duration_since(first);
    if elapsed >= delay {
        (Progress::Ready, None)
    } else {
        (Progress::Rolling, Some(delay - elapsed))
    }
}

/// Parses `500ms`, `2s`, `1m` or bare seconds.
fn parse_delay(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = number.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

async fn reconcile_rollout(
    kind: SimKind,
    object: &DynamicObject,
    value: &Value,
    shared: &Shared,
) -> Result<Action, Error> {
    let Some(status_of) = kind.rollout_status() else {
        return Ok(Action::await_change());
    };
    if kind == SimKind::Job && rollout::job_finished(value) {
        return Ok(Action::await_change());
    }
    let now = now_rfc3339();
    let current = value.get("status").cloned().unwrap_or(Value::Null);
    let ready_status = status_of(value, Progress::Ready, &now);
    let (progress, requeue) = rollout_progress(kind, value, shared, current == ready_status);
    let status = match progress {
        Progress::Ready => ready_status,
        Progress::Rolling => status_of(value, Progress::Rolling, &now),
    };
    if status != current {
        let mut updated = object.clone();
        updated.data["status"] = status;
        api_for(shared, kind, object)
            .replace_status(
                object.metadata.name.as_deref().unwrap_or_default(),
                &PostParams {
                    field_manager: Some(FIELD_MANAGER.to_string()),
                    ..PostParams::default()
                },
                &updated,
            )
            .await?;
    }
    Ok(match requeue {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    }
}

async fn reconcile_service(
    object: &DynamicObject,
    value: &Value,
    shared: &Shared,
) -> Result<Action, Error> {
    let key = network::key(value);
    let name = object.metadata.name.as_deref().unwrap_or_default();
    let api = api_for(shared, SimKind::Service, object);
    let cluster_ip = if network::needs_cluster_ip(value) {
        let mut pool = shared
            .cluster_ips
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(pool.allocate(&shared.seed, &key)?)
    } else {
        if let Some(ip) = value.pointer("/spec/clusterIP").and_then(Value::as_str)
            && let Ok(mut pool) = shared.cluster_ips.lock()
        {
            pool.mark(ip, &key);
        }
        None
    };
    if let Some(patch) = network::service_spec_patch(value, cluster_ip.as_deref(), &shared.seed) {
        api.patch(name, &patch_params(), &Patch::Merge(&patch))
            .await?;
    }
    if network::service_type(value) == "LoadBalancer" {
        let lb_key = format!("service/{key}");
        let ip = match network::reported_load_balancer_ip(value) {
            Some(ip) => ip,
            None => shared
                .load_balancer_ips
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .allocate(&shared.seed, &lb_key)?,
        };
        let wanted = network::load_balancer_status(&ip, true);
        if value.get("status") != Some(&wanted) {
            api.patch_status(
                name,
                &patch_params(),
                &Patch::Merge(json!({ "status": wanted })),
            )
            .await?;
        }
    }
    Ok(Action::await_change())
}

async fn reconcile_ingress(
    object: &DynamicObject,
    value: &Value,
    shared: &Shared,
) -> Result<Action, Error> {
    if network::reported_load_balancer_ip(value).is_some() {
        return Ok(Action::await_change());
    }
    let ip = shared
        .load_balancer_ips
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .allocate(&shared.seed, &format!("ingress/{}", network::key(value)))?;
    let status = network::load_balancer_status(&ip, false);
    api_for(shared, SimKind::Ingress, object)
        .patch_status(
            object.metadata.name.as_deref().unwrap_or_default(),
            &patch_params(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    Ok(Action::await_change())
}

async fn reconcile_claim(
    object: &DynamicObject,
    value: &Value,
    shared: &Shared,
) -> Result<Action, Error> {
    let status = network::bound_claim_status(value);
    if value.get("status") == Some(&status) {
        return Ok(Action::await_change());
    }
    api_for(shared, SimKind::PersistentVolumeClaim, object)
        .patch_status(
            object.metadata.name.as_deref().unwrap_or_default(),
            &patch_params(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    Ok(Action::await_change())
}

/// How often an HPA looks at its target again (a real one syncs every 15 s).
const HPA_SYNC: Duration = Duration::from_secs(3);

async fn reconcile_hpa(
    object: &DynamicObject,
    value: &Value,
    shared: &Shared,
) -> Result<Action, Error> {
    let name = object.metadata.name.as_deref().unwrap_or_default();
    let namespace = object.metadata.namespace.as_deref().unwrap_or("default");
    let hpa_api = api_for(shared, SimKind::HorizontalPodAutoscaler, object);
    let Some(target) = hpa::scale_target(value) else {
        return Ok(Action::await_change());
    };
    let target_kind = match target.kind.as_str() {
        "Deployment" => SimKind::Deployment,
        "StatefulSet" => SimKind::StatefulSet,
        "ReplicaSet" => SimKind::ReplicaSet,
        _ => return Ok(Action::await_change()),
    };
    let target_api: Api<DynamicObject> = Api::namespaced_with(
        shared.member_client.clone(),
        namespace,
        &target_kind.api_resource(),
    );
    let Some(target_object) = target_api.get_opt(&target.name).await? else {
        return Ok(Action::requeue(HPA_SYNC));
    };
    let target_value = serde_json::to_value(&target_object)?;
    let current = rollout::desired_replicas(&target_value);
    let desired = hpa::desired_replicas(value, current);
    let scaled = desired != current;
    if scaled {
        let patch = json!({"spec": {"replicas": desired}});
        match target_api
            .patch_scale(&target.name, &patch_params(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            // No /scale subresource served: scale the object itself.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => {
                target_api
                    .patch(&target.name, &patch_params(), &Patch::Merge(&patch))
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(hpa = %name, namespace, from = current, to = desired, "simulated HPA scaled its target");
    }
    let status = hpa::status(value, current, desired, scaled, &now_rfc3339());
    if value.get("status") != Some(&status) {
        let mut updated = object.clone();
        updated.data["status"] = status;
        hpa_api
            .replace_status(
                name,
                &PostParams {
                    field_manager: Some(FIELD_MANAGER.to_string()),
                    ..PostParams::default()
                },
                &updated,
            )
            .await?;
    }
    Ok(Action::requeue(HPA_SYNC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_parse() {
        assert_eq!(parse_delay("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_delay("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_delay("x"), None);
    }

    #[test]
    fn rollouts_become_ready_after_the_delay() {
        let mut seen = HashMap::new();
        let t0 = Instant::now();
        let delay = Duration::from_secs(2);
        let (p, again) = progress_at(&mut seen, "d/1".into(), delay, false, false, t0);
        assert_eq!(p, Progress::Rolling);
        assert_eq!(again, Some(delay));
        let (p, again) = progress_at(
            &mut seen,
            "d/1".into(),
            delay,
            false,
            false,
            t0 + Duration::from_secs(1),
        );
        assert_eq!(
            (p, again),
            (Progress::Rolling, Some(Duration::from_secs(1)))
        );
        let (p, again) = progress_at(&mut seen, "d/1".into(), delay, false, false, t0 + delay);
        assert_eq!((p, again), (Progress::Ready, None));
        // A new generation (or replica count) is a new rollout.
        let (p, _) = progress_at(&mut seen, "d/2".into(), delay, false, false, t0 + delay);
        assert_eq!(p, Progress::Rolling);
        // Stuck never gets ready; already ready stays ready.
        let later = t0 + Duration::from_secs(100);
        assert_eq!(
            progress_at(&mut seen, "d/1".into(), delay, true, false, later),
            (Progress::Rolling, None)
        );
        assert_eq!(
            progress_at(&mut seen, "x".into(), delay, false, true, t0),
            (Progress::Ready, None)
        );
    }

    #[test]
    fn every_kind_has_a_resource() {
        for kind in SimKind::ALL {
            let r = kind.api_resource();
            assert!(!r.plural.is_empty());
            assert_eq!(r.kind, format!("{kind:?}"));
        }
    }
}
