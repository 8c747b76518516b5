//! The workload controllers of a simulated member: Deployments get ReplicaSets, ReplicaSets
//! get Pods, and a kubelet per simulated Node runs the Pods (`Pending` while the containers
//! are created, `Running` and `Ready` after the ready delay). Deployment and ReplicaSet status
//! is counted from the Pods. Each controller caches slim objects (see `slim.rs`).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::{StreamExt, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use super::expectations::{Cached, Expectations, LastWrites};
use super::nodes::{AddressPlan, PodAddresses};
use super::pods::{self, Placement, PodName};
use super::replicasets::{self as rsets, POD_TEMPLATE_HASH};
use super::slim::{self, SimDeployment, SimPod, SimReplicaSet, SimService};
use super::{
    Error, FIELD_MANAGER, READY_DELAY_ANNOTATION, STUCK_ANNOTATION, Shared, parse_delay,
    patch_params, progress_at,
};
use super::{endpoints, feeds};

/// How often a ReplicaSet whose own writes are not in the Pod cache yet is looked at again
/// (its trigger is another watch than the cache, which may be behind it).
const AWAITING_RECHECK: Duration = Duration::from_millis(500);
/// How often an unsettled Deployment or ReplicaSet is looked at again.
const UNSETTLED_RECHECK: Duration = Duration::from_secs(1);

/// What the three controllers share.
pub(super) struct Workloads {
    shared: Arc<Shared>,
    plan: AddressPlan,
    addresses: Mutex<PodAddresses>,
    /// Addresses handed to Pods whose status does not show them yet.
    assigned: Mutex<HashMap<String, Ipv4Addr>>,
    replicasets: Store<SimReplicaSet>,
    pods: Store<SimPod>,
    /// The ReplicaSet controller's Pod creations and deletions the Pod cache does not show yet.
    expectations: Mutex<Expectations>,
    /// Object uid -> the resourceVersion our last write to it was based on, until the cache
    /// shows a newer one (see [`Workloads::stale`]).
    written: Mutex<LastWrites>,
    next_node: AtomicUsize,
}

/// Readiness of one Pod on the member's rollout clock.
enum Clock {
    Ready,
    /// Not ready yet; look again after this long (never, when stuck).
    Starting(Option<Duration>),
}

fn resource(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", kind), plural)
}

fn dynamic(v: Value) -> Result<DynamicObject, Error> {
    Ok(serde_json::from_value(v)?)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the Deployment, ReplicaSet and Pod controllers until dropped.
pub(super) async fn run(shared: Arc<Shared>) -> anyhow::Result<()> {
    let client = shared.member_client.clone();
    let plan = AddressPlan::new(&shared.options.cluster_name, shared.options.nodes);
    ensure_nodes(&client, &plan).await?;
    let addresses = addresses_in_use(&client, &plan).await?;
    let config = watcher::Config::default;
    let bounded = super::bounded_reconciles;
    // The Pod and ReplicaSet caches are fed by one watch each, which also triggers the
    // controllers that read them (feeds.rs): a trigger never comes before the cache shows its
    // change, and a re-list still reaches the owners of what vanished. The kubelet and the
    // ReplicaSet controller run on those caches, not on watches and caches of their own.
    let (pods, pod_writer) = reflector::store::<SimPod>();
    let (replicasets, replicaset_writer) = reflector::store::<SimReplicaSet>();
    let (to_deployments, deployment_triggers) = mpsc::unbounded();
    let (to_replicasets, replicaset_triggers) = mpsc::unbounded();
    let (to_kubelet, kubelet_triggers) = mpsc::unbounded();
    let (to_services, service_triggers) = mpsc::unbounded();
    let deployments = Controller::new(Api::<SimDeployment>::all(client.clone()), config())
        .reconcile_on(deployment_triggers)
        .with_config(bounded());
    let replicaset_controller = Controller::for_stream(stream::pending(), replicasets.clone())
        .reconcile_on(replicaset_triggers)
        .with_config(bounded());
    let kubelet = Controller::for_stream(stream::pending(), pods.clone())
        .reconcile_on(kubelet_triggers)
        .with_config(bounded());
    let services = Controller::new(Api::<SimService>::all(client.clone()), config())
        .reconcile_on(service_triggers)
        .with_config(bounded());
    if let Some(metrics) = &shared.options.state_metrics {
        metrics
            .read_caches(&client, deployments.store(), pods.clone())
            .await;
    }
    let pod_feed = pod_feed(
        client.clone(),
        pod_writer,
        services.store(),
        PodTriggers {
            kubelet: to_kubelet,
            replicasets: to_replicasets.clone(),
            services: to_services,
        },
    );
    let replicaset_feed = feeds::follow(
        watcher(Api::<SimReplicaSet>::all(client), config()).default_backoff(),
        replicaset_writer,
        move |rs| {
            let _ = to_replicasets.unbounded_send(ObjectRef::from_obj(rs));
            if let Some(d) = feeds::controller_of(&rs.metadata, "Deployment") {
                let _ = to_deployments.unbounded_send(d);
            }
        },
    );
    let ctx = Arc::new(Workloads::new(
        shared,
        plan,
        addresses,
        replicasets.clone(),
        pods.clone(),
    ));
    let d = deployments
        .run(reconcile_deployment, error_policy, ctx.clone())
        .for_each(log);
    let r = replicaset_controller
        .run(reconcile_replicaset, error_policy, ctx.clone())
        .for_each(log);
    let k = kubelet
        .run(reconcile_pod, error_policy, ctx.clone())
        .for_each(log);
    let e = services
        .run(reconcile_endpoints, error_policy, ctx)
        .for_each(log);
    let controllers = async {
        // None acts before the caches hold a first list (on an empty Pod cache the ReplicaSet
        // controller would create every Pod again).
        let _ = futures::join!(pods.wait_until_ready(), replicasets.wait_until_ready());
        futures::join!(d, r, k, e);
    };
    futures::join!(pod_feed, replicaset_feed, controllers);
    Ok(())
}

/// The Pod address plan with every address the member's Pods already hold marked taken
/// (a restarted simulator must not hand out an address twice).
async fn addresses_in_use(
    client: &kube::Client,
    plan: &AddressPlan,
) -> anyhow::Result<PodAddresses> {
    let mut addresses = PodAddresses::new(plan.clone());
    let existing: Api<SimPod> = Api::all(client.clone());
    for pod in existing.list(&ListParams::default()).await?.items {
        if let Some(ip) = pod.status.pod_ip.as_deref() {
            addresses.mark(ip);
        }
    }
    Ok(addresses)
}

/// Whom a changed Pod triggers: the kubelet (the Pod itself), its ReplicaSet and the Services
/// selecting it.
struct PodTriggers {
    kubelet: mpsc::UnboundedSender<ObjectRef<SimPod>>,
    replicasets: mpsc::UnboundedSender<ObjectRef<SimReplicaSet>>,
    services: mpsc::UnboundedSender<ObjectRef<SimService>>,
}

/// The Pod cache's feed: a Pod's change triggers the kubelet, its ReplicaSet and the Services
/// selecting it.
fn pod_feed(
    client: kube::Client,
    writer: reflector::store::Writer<SimPod>,
    services: Store<SimService>,
    to: PodTriggers,
) -> impl std::future::Future<Output = ()> {
    let pods = watcher(
        Api::<SimPod>::all(client.clone()),
        watcher::Config::default(),
    );
    feeds::follow(pods.default_backoff(), writer, move |pod| {
        let _ = to.kubelet.unbounded_send(ObjectRef::from_obj(pod));
        if let Some(rs) = feeds::controller_of(&pod.metadata, "ReplicaSet") {
            let _ = to.replicasets.unbounded_send(rs);
        }
        for svc in services.state() {
            if endpoints::selects(&svc, pod) {
                let _ = to.services.unbounded_send(ObjectRef::from_obj(&*svc));
            }
        }
    })
}

async fn log<T>(r: Result<T, kube::runtime::controller::Error<Error, watcher::Error>>) {
    if let Err(e) = r {
        tracing::debug!(error = %e, "member simulator workload reconcile failed");
    }
}

fn error_policy<K>(_object: Arc<K>, error: &Error, _ctx: Arc<Workloads>) -> Action {
    match error {
        Error::Api(e) if matches!(&**e, kube::Error::Api(s) if s.code == 409) => {
            Action::requeue(Duration::from_millis(200))
        }
        _ => Action::requeue(Duration::from_secs(2)),
    }
}

/// Creates the member's Nodes (Ready) if they are not there.
async fn ensure_nodes(client: &kube::Client, plan: &AddressPlan) -> Result<(), Error> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource("", "Node", "nodes"));
    let now = super::now_rfc3339();
    for i in 0..plan.node_count() {
        let name = plan.node_name(i);
        if api.get_opt(&name).await?.is_none() {
            let pp = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PostParams::default()
            };
            match api.create(&pp, &dynamic(plan.node(i))?).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        let status = json!({"status": plan.node_status(i, &now)});
        api.patch_status(&name, &patch_params(), &Patch::Merge(&status))
            .await?;
    }
    Ok(())
}

/// A merge patch of `status` that also removes the `counters` it leaves out (zeros).
fn status_patch(mut status: Value, counters: &[&str]) -> Value {
    if let Some(map) = status.as_object_mut() {
        for c in counters {
            map.entry(c.to_string()).or_insert(Value::Null);
        }
    }
    json!({ "status": status })
}

fn namespace_of(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("default")
}

impl Workloads {
    fn new(
        shared: Arc<Shared>,
        plan: AddressPlan,
        addresses: PodAddresses,
        replicasets: Store<SimReplicaSet>,
        pods: Store<SimPod>,
    ) -> Self {
        Self {
            shared,
            plan,
            addresses: Mutex::new(addresses),
            assigned: Mutex::new(HashMap::new()),
            replicasets,
            pods,
            expectations: Mutex::new(Expectations::default()),
            written: Mutex::new(LastWrites::default()),
            next_node: AtomicUsize::new(0),
        }
    }

    fn client(&self) -> kube::Client {
        self.shared.member_client.clone()
    }

    fn replicasets_of(&self, d: &SimDeployment) -> Vec<Arc<SimReplicaSet>> {
        let (ns, uid) = (namespace_of(&d.metadata), d.metadata.uid.as_deref());
        self.replicasets
            .state()
            .into_iter()
            .filter(|rs| {
                namespace_of(&rs.metadata) == ns && slim::controller_uid(&rs.metadata) == uid
            })
            .collect()
    }

    fn pods_of(&self, namespace: &str, uid: Option<&str>) -> Vec<Arc<SimPod>> {
        self.pods
            .state()
            .into_iter()
            .filter(|p| namespace_of(&p.metadata) == namespace && p.controller_uid() == uid)
            .collect()
    }

    /// Whether the ReplicaSet `owner`'s own creations and deletions are not all in the Pod
    /// cache yet (`pods`: its Pods as cached); then it must not act on the cache.
    fn awaiting(&self, owner: &str, pods: &[Arc<SimPod>]) -> bool {
        let cached = |name: &str| {
            pods.iter()
                .find(|p| p.metadata.name.as_deref() == Some(name))
                .map_or(Cached::Absent, |p| {
                    if p.is_inactive() {
                        Cached::Inactive
                    } else {
                        Cached::Active
                    }
                })
        };
        lock(&self.expectations).outstanding(owner, cached, Instant::now())
    }

    /// Whether the cached `meta` is the very version our last write to that object was based
    /// on: the cache has not caught up with our write, so anything we would write now comes
    /// from an outdated view (writing it anyway makes an event per look, and a cache that
    /// falls further behind).
    fn stale(&self, meta: &ObjectMeta) -> bool {
        let (Some(uid), Some(rv)) = (meta.uid.as_deref(), meta.resource_version.as_deref()) else {
            return false;
        };
        lock(&self.written).stale(uid, rv)
    }

    /// Records a write to the object of `meta` (as cached) that the server answered with
    /// `new_rv`; a write that changed nothing (same resourceVersion) is not waited for.
    fn wrote(&self, meta: &ObjectMeta, new_rv: Option<&str>) {
        let (Some(uid), Some(rv)) = (meta.uid.as_deref(), meta.resource_version.as_deref()) else {
            return;
        };
        lock(&self.written).wrote(uid, rv, new_rv);
    }

    /// The ready delay and stuck fault that apply to a Pod: its controller's (a ReplicaSet
    /// carries its Deployment's annotations), else its own. A Pod's own stuck annotation
    /// also counts, so one running Pod can be made unready (as a failing readiness probe).
    fn timing(&self, pod: &SimPod) -> (Duration, bool) {
        let owner = pod.controller_uid().and_then(|uid| {
            self.replicasets
                .find(|rs| rs.metadata.uid.as_deref() == Some(uid))
        });
        let meta = owner.as_ref().map_or(&pod.metadata, |rs| &rs.metadata);
        let options = &self.shared.options;
        let stuck = options.stuck
            || slim::annotation(meta, STUCK_ANNOTATION) == Some("true")
            || slim::annotation(&pod.metadata, STUCK_ANNOTATION) == Some("true");
        let delay = slim::annotation(meta, READY_DELAY_ANNOTATION)
            .and_then(parse_delay)
            .unwrap_or(options.ready_delay);
        (delay, stuck)
    }

    fn clock(&self, pod: &SimPod) -> Clock {
        let (delay, stuck) = self.timing(pod);
        let key = format!("Pod/{}", pod.metadata.uid.as_deref().unwrap_or_default());
        let mut seen = lock(&self.shared.first_seen);
        match progress_at(&mut seen, key, delay, stuck, pod.is_ready(), Instant::now()) {
            (super::rollout::Progress::Ready, _) => Clock::Ready,
            (super::rollout::Progress::Rolling, again) => Clock::Starting(again),
        }
    }

    /// The Pod's address: the one it reports, the one handed to it, or a new one.
    fn pod_ip(&self, pod: &SimPod, node: usize) -> Result<Ipv4Addr, Error> {
        if let Some(ip) = pod.status.pod_ip.as_deref().and_then(|ip| ip.parse().ok()) {
            return Ok(ip);
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if let Some(ip) = lock(&self.assigned).get(&uid) {
            return Ok(*ip);
        }
        let mut pool = lock(&self.addresses);
        let ip = match pool.allocate(node) {
            Some(ip) => ip,
            None => {
                // Went round the block: keep only live Pods' addresses and go again.
                pool.clear(node);
                for p in self.pods.state() {
                    if let Some(ip) = p.status.pod_ip.as_deref() {
                        pool.mark(ip);
                    }
                }
                for ip in lock(&self.assigned).values() {
                    pool.mark(&ip.to_string());
                }
                pool.allocate(node).ok_or_else(|| {
                    Error::Allocate(super::network::Error::Exhausted(self.plan.pod_cidr()))
                })?
            }
        };
        lock(&self.assigned).insert(uid, ip);
        Ok(ip)
    }

    fn pick_node(&self) -> String {
        let i = self.next_node.fetch_add(1, Ordering::Relaxed) % self.plan.node_count();
        self.plan.node_name(i)
    }
}

async fn reconcile_deployment(d: Arc<SimDeployment>, ctx: Arc<Workloads>) -> Result<Action, Error> {
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = namespace_of(&d.metadata).to_string();
    let name = d.metadata.name.clone().unwrap_or_default();
    let sets = ctx.replicasets_of(&d);
    let hash = rsets::template_hash(&d.spec.template);
    let (new, old): (Vec<_>, Vec<_>) = sets
        .iter()
        .partition(|rs| slim::labels(&rs.metadata).get(POD_TEMPLATE_HASH) == Some(&hash));
    let all: Vec<&SimReplicaSet> = sets.iter().map(|rs| &**rs).collect();
    let old: Vec<&SimReplicaSet> = old.into_iter().map(|rs| &**rs).collect();
    let new: Option<&SimReplicaSet> = new.first().map(|rs| &***rs);
    let max_revision = rsets::max_revision(&all);
    let rs_api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client(),
        &ns,
        &resource("apps", "ReplicaSet", "replicasets"),
    );
    let paused = d.spec.paused == Some(true);
    let revision = match new {
        None if paused => max_revision,
        None => {
            create_replicaset(&d, &hash, max_revision + 1, &old, &rs_api).await?;
            max_revision + 1
        }
        Some(rs) => sync_replicaset(&d, rs, &old, max_revision, &rs_api, paused).await?,
    };
    if ctx.stale(&d.metadata) {
        return Ok(Action::requeue(UNSETTLED_RECHECK));
    }
    let api = Api::<SimDeployment>::namespaced(ctx.client(), &ns);
    let mut new_rv = None;
    if revision > 0 && slim::annotation(&d.metadata, rsets::REVISION) != Some(&revision.to_string())
    {
        let patch = json!({"metadata": {"annotations": {rsets::REVISION: revision.to_string()}}});
        let patched = api
            .patch(&name, &patch_params(), &Patch::Merge(&patch))
            .await?;
        new_rv = patched.metadata.resource_version;
    }
    let status = rsets::deployment_status(&d, new, &all, &super::now_rfc3339());
    if status != d.status {
        let counters = [
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
        ];
        let patched = api
            .patch_status(
                &name,
                &patch_params(),
                &Patch::Merge(status_patch(status, &counters)),
            )
            .await?;
        new_rv = patched.metadata.resource_version;
    }
    if new_rv.is_some() {
        ctx.wrote(&d.metadata, new_rv.as_deref());
    }
    Ok(until_settled(rsets::settled(&d, new, &old)))
}

/// Looks again soon while a rollout is under way: the caches a reconcile reads come from
/// other watches than the one that triggered it, so the last change may not be in them yet.
fn until_settled(settled: bool) -> Action {
    if settled {
        Action::await_change()
    } else {
        Action::requeue(UNSETTLED_RECHECK)
    }
}

async fn create_replicaset(
    d: &SimDeployment,
    hash: &str,
    revision: i64,
    old: &[&SimReplicaSet],
    api: &Api<DynamicObject>,
) -> Result<(), Error> {
    // Start from what the rolling-update rules allow next to the old ones.
    let empty: SimReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": ""}, "spec": {"replicas": 0}
    }))?;
    let replicas = rsets::scaling(d, &empty, old)
        .into_iter()
        .find(|(n, _)| n.is_empty())
        .map_or(0, |(_, r)| r);
    let rs = rsets::new_replicaset(d, hash, revision, replicas)?;
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    match api.create(&pp, &dynamic(rs)?).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Brings an existing ReplicaSet for the current template up to date (revision, annotations)
/// and scales it and the old ones; returns its revision.
async fn sync_replicaset(
    d: &SimDeployment,
    new: &SimReplicaSet,
    old: &[&SimReplicaSet],
    max_revision: i64,
    api: &Api<DynamicObject>,
    paused: bool,
) -> Result<i64, Error> {
    let name = new.metadata.name.clone().unwrap_or_default();
    let mut revision = new.revision();
    let mut patch = rsets::annotations_patch(d, new, true).unwrap_or_else(|| json!({}));
    if revision < max_revision || revision == 0 {
        // Rolled back to an older template: it becomes the newest revision.
        let mut history: Vec<String> = slim::annotation(&new.metadata, rsets::REVISION_HISTORY)
            .map(|h| h.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        if revision > 0 {
            history.push(revision.to_string());
        }
        revision = max_revision + 1;
        patch["metadata"]["annotations"][rsets::REVISION] = json!(revision.to_string());
        if !history.is_empty() {
            patch["metadata"]["annotations"][rsets::REVISION_HISTORY] = json!(history.join(","));
        }
    }
    if patch.get("metadata").is_some() {
        api.patch(&name, &patch_params(), &Patch::Merge(&patch))
            .await?;
    }
    for rs in old {
        if let Some(p) = rsets::annotations_patch(d, rs, false) {
            let n = rs.metadata.name.clone().unwrap_or_default();
            api.patch(&n, &patch_params(), &Patch::Merge(&p)).await?;
        }
    }
    if !paused {
        for (n, replicas) in rsets::scaling(d, new, old) {
            let p = json!({"spec": {"replicas": replicas}});
            api.patch(&n, &patch_params(), &Patch::Merge(&p)).await?;
        }
        for n in rsets::prunable(d, old) {
            match api.delete(&n, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(revision)
}

async fn reconcile_replicaset(
    rs: Arc<SimReplicaSet>,
    ctx: Arc<Workloads>,
) -> Result<Action, Error> {
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    if rs.metadata.deletion_timestamp.is_some() {
        lock(&ctx.expectations).forget(&uid);
        return Ok(Action::await_change());
    }
    let ns = namespace_of(&rs.metadata).to_string();
    let name = rs.metadata.name.clone().unwrap_or_default();
    let pods = ctx.pods_of(&ns, Some(&uid));
    if ctx.awaiting(&uid, &pods) {
        return Ok(Action::requeue(AWAITING_RECHECK));
    }
    let mut active: Vec<&SimPod> = pods
        .iter()
        .map(|p| &**p)
        .filter(|p| !p.is_inactive())
        .collect();
    let want = rs.desired() as usize;
    let pod_api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client(), &ns, &resource("", "Pod", "pods"));
    if active.len() < want {
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        let prefix = format!("{name}-");
        for _ in active.len()..want {
            let pod = pods::pod_from_template(
                &rs.spec.template,
                &ns,
                PodName::Generate(&prefix),
                ("ReplicaSet", &name, &uid),
                &ctx.pick_node(),
            )?;
            let created = pod_api.create(&pp, &dynamic(pod)?).await?;
            let created = created.metadata.name.unwrap_or_default();
            lock(&ctx.expectations).created(&uid, &created, Instant::now());
        }
    } else if active.len() > want {
        // Not-ready Pods go first, then the newest.
        active.sort_by_key(|p| {
            (
                p.is_ready(),
                std::cmp::Reverse(p.metadata.creation_timestamp.clone()),
            )
        });
        for p in &active[..active.len() - want] {
            let n = p.metadata.name.clone().unwrap_or_default();
            lock(&ctx.expectations).deleted(&uid, &n, Instant::now());
            match pod_api.delete(&n, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let counts = pods::counts(pods.iter().map(|p| &**p));
    if !pods::replicaset_status_current(&rs, counts) && !ctx.stale(&rs.metadata) {
        let status = pods::replicaset_status(&rs, counts);
        let counters = ["fullyLabeledReplicas", "readyReplicas", "availableReplicas"];
        let patched = Api::<SimReplicaSet>::namespaced(ctx.client(), &ns)
            .patch_status(
                &name,
                &patch_params(),
                &Patch::Merge(status_patch(status, &counters)),
            )
            .await?;
        ctx.wrote(&rs.metadata, patched.metadata.resource_version.as_deref());
    }
    Ok(until_settled(counts == (want as i64, want as i64)))
}

/// The kubelet: schedules an unscheduled Pod onto a simulated Node, then reports it starting
/// and, after the ready delay, running.
async fn reconcile_pod(pod: Arc<SimPod>, ctx: Arc<Workloads>) -> Result<Action, Error> {
    if pod.is_inactive() {
        return Ok(Action::await_change());
    }
    let ns = namespace_of(&pod.metadata).to_string();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<SimPod> = Api::namespaced(ctx.client(), &ns);
    let Some(node_name) = pod.spec.node_name.clone() else {
        let patch = json!({"spec": {"nodeName": ctx.pick_node()}});
        api.patch(&name, &patch_params(), &Patch::Merge(&patch))
            .await?;
        return Ok(Action::await_change());
    };
    let Some(node) = ctx.plan.node_index(&node_name) else {
        // Bound to a Node this member does not simulate: nothing runs it.
        return Ok(Action::await_change());
    };
    let ip = ctx.pod_ip(&pod, node)?;
    let at = Placement {
        host_ip: ctx.plan.host_ip(node).to_string(),
        pod_ip: ip.to_string(),
    };
    let (ready, again) = match ctx.clock(&pod) {
        Clock::Ready => (true, None),
        Clock::Starting(again) => (false, again),
    };
    if !pods::status_current(&pod, &at, ready) && !ctx.stale(&pod.metadata) {
        let status = pods::pod_status(&pod, &at, ready, &super::now_rfc3339());
        let patched = api
            .patch_status(
                &name,
                &patch_params(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await?;
        ctx.wrote(&pod.metadata, patched.metadata.resource_version.as_deref());
    }
    if pod.status.pod_ip.is_some()
        && let Some(uid) = pod.metadata.uid.as_deref()
    {
        lock(&ctx.assigned).remove(uid);
    }
    Ok(match again {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// The endpoint-slice and endpoints controllers: a Service with a selector gets
/// EndpointSlices and an Endpoints object listing its selected Pods' addresses.
async fn reconcile_endpoints(svc: Arc<SimService>, ctx: Arc<Workloads>) -> Result<Action, Error> {
    if svc.metadata.deletion_timestamp.is_some()
        || svc.spec.selector.as_ref().is_none_or(|s| s.is_empty())
    {
        return Ok(Action::await_change());
    }
    let ns = namespace_of(&svc.metadata).to_string();
    let name = svc.metadata.name.clone().unwrap_or_default();
    let all = ctx.pods.state();
    let pods: Vec<&SimPod> = all
        .iter()
        .map(|p| &**p)
        .filter(|p| endpoints::selects(&svc, p))
        .collect();
    sync_slices(&svc, &ns, &name, &pods, &ctx).await?;
    sync_endpoints_object(&svc, &ns, &name, &pods, &ctx).await?;
    Ok(Action::await_change())
}

async fn sync_slices(
    svc: &SimService,
    ns: &str,
    name: &str,
    pods: &[&SimPod],
    ctx: &Workloads,
) -> Result<(), Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client(),
        ns,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("discovery.k8s.io", "v1", "EndpointSlice"),
            "endpointslices",
        ),
    );
    let selector = format!(
        "{}={name},{}={}",
        endpoints::SERVICE_NAME_LABEL,
        endpoints::MANAGED_BY_LABEL,
        endpoints::MANAGED_BY
    );
    let mut existing = api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let wanted = endpoints::slices(svc, pods);
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    for (i, (eps, ports)) in wanted.into_iter().enumerate() {
        match existing.get(i) {
            Some(slice) if slice.data["endpoints"] == eps && slice.data["ports"] == ports => {}
            Some(slice) => {
                let mut updated = slice.clone();
                updated.data["endpoints"] = eps;
                updated.data["ports"] = ports;
                let n = slice.metadata.name.clone().unwrap_or_default();
                api.replace(&n, &pp, &updated).await?;
            }
            None => {
                api.create(&pp, &dynamic(endpoints::new_slice(svc, eps, ports))?)
                    .await?;
            }
        }
    }
    let keep = endpoints::slices(svc, pods).len();
    for slice in existing.iter().skip(keep) {
        let n = slice.metadata.name.clone().unwrap_or_default();
        match api.delete(&n, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn sync_endpoints_object(
    svc: &SimService,
    ns: &str,
    name: &str,
    pods: &[&SimPod],
    ctx: &Workloads,
) -> Result<(), Error> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client(), ns, &resource("", "Endpoints", "endpoints"));
    let subsets = endpoints::subsets(svc, pods);
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    match api.get_opt(name).await? {
        Some(current) if current.data.get("subsets").unwrap_or(&json!([])) == &subsets => {}
        Some(mut current) => {
            current.data["subsets"] = subsets;
            api.replace(name, &pp, &current).await?;
        }
        None => {
            let mut labels = slim::labels(&svc.metadata).clone();
            labels.insert(
                "endpoints.kubernetes.io/managed-by".into(),
                "endpoint-controller".into(),
            );
            let object = json!({
                "apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": name, "namespace": ns, "labels": labels},
                "subsets": subsets,
            });
            match api.create(&pp, &dynamic(object)?).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}
