//! The drift watch: per member and per kind, one watch on the objects the hub dispatched there
//! (selected by the `app.oam.dev/name` ownership label, shared by every application). A change
//! away from the desired state (see `drift.rs`) is corrected at once by a server-side apply as
//! the application's user, counted in `flotilla_drift_corrections_total{cluster,kind}` and
//! recorded as an Event on the Application; with the annotation `app.oam.dev/drift: report`
//! the drift is listed in `status.drift` instead.
//!
//! Dispatch registers the desired object before it applies it (so the watch never compares
//! against an older desired state) and gc/cleanup forget it before they delete.
//!
//! The same events wake the application up: each entry keeps the health its application's
//! last pass judged (or the watch saw last), and an event that makes all objects of one
//! component in one step healthy, or one of them unhealthy while all were, re-queues the
//! application at once ([`DriftWatch::wakeups`], counted in `desired_set.rs`), so an
//! application waiting for its workloads to become healthy is not polled every few seconds.
//!
//! An event that shows an object as desired (its render hash and every field the desired
//! state sets) is kept as [`Verified`], healthy or not, with the watch session it came in: a
//! pass that would only read the object to judge its health takes that instead
//! ([`DriftWatch::verified`]), as long as that watch has not been interrupted since and the
//! desired object is the same. Any later event of the object replaces it, and one that
//! changes its health wakes the application as above, so the watch's word is as fresh as a
//! read (an informer's cache, not a poll).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_apis::{Application, DriftReport, labels};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::{Value, json};

use super::desired_object::DesiredObject;
use super::desired_set::DesiredSet;
use super::dispatch::{self, FIELD_MANAGER, KindInfo};
use super::drift::{DELETED, applied_by_others, drifted_fields};
use super::health::{Observed, workload_health};
use super::member_clients::{Identity, MemberClients};

/// One watch: cluster, apiVersion, kind.
pub(crate) type WatchKey = (String, String, String);

/// An object's namespace and name.
pub(crate) type NameKey = (String, String);

/// Identity of a dispatched object: its watch and its namespace and name, apart, so that
/// the desired set keeps each watch's part once (`desired_set.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ObjectKey {
    /// Cluster, apiVersion, kind.
    pub(crate) watch: WatchKey,
    /// Namespace (empty for a cluster-scoped object), name.
    pub(crate) name: NameKey,
}

impl ObjectKey {
    pub(crate) fn new(
        cluster: &str,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> ObjectKey {
        ObjectKey {
            watch: (cluster.into(), api_version.into(), kind.into()),
            name: (namespace.into(), name.into()),
        }
    }

    pub(crate) fn cluster(&self) -> &str {
        &self.watch.0
    }

    pub(crate) fn api_version(&self) -> &str {
        &self.watch.1
    }

    pub(crate) fn kind(&self) -> &str {
        &self.watch.2
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.name.0
    }

    pub(crate) fn name(&self) -> &str {
        &self.name.1
    }
}

/// One application's drifted objects and their fields.
type AppReport = BTreeMap<ObjectKey, Vec<String>>;

/// The desired state of one dispatched object, kept for as long as the object is dispatched
/// (one per object per cluster, so it is kept small: the object as compact JSON shared by
/// the clusters it goes to, decoded only when a watch event of it is compared or it is
/// re-applied; the application's identity and reference shared by all its objects of a
/// pass).
#[derive(Debug, Clone)]
pub(crate) struct Desired {
    /// The prepared object as dispatch applies it (`desired_object.rs`).
    pub object: DesiredObject,
    /// Its kind's plural and scope in the cluster.
    pub kind: KindInfo,
    /// Paths left to the cluster (apply-once).
    pub exempt: Vec<String>,
    /// Who applies it.
    pub identity: Arc<Identity>,
    /// The application (for the Event and the report).
    pub app: Arc<ObjectReference>,
    /// Report instead of correcting.
    pub report: bool,
    /// The object's health as last judged by a pass or seen by the watch (`None`: not yet).
    pub health: Option<bool>,
    /// Its step and component, hashed (the wake-up group, `desired_set.rs`).
    pub group: u64,
    /// The watch's last event of it showed it as desired (kept while the desired object
    /// stays the same).
    pub verified: Option<Verified>,
}

/// What the drift watch's last event of an object showed, when it showed the object as
/// desired (healthy or not).
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    /// The watch session the event came in ([`DriftWatch::verified`] trusts only the
    /// current one: an interrupted watch may have missed events).
    pub session: u64,
    /// What health takes from the object.
    pub observed: Observed,
}

/// Desired objects, the running watches and the reports.
pub(crate) struct DriftWatch {
    hub_client: kube::Client,
    members: MemberClients,
    recorder: Recorder,
    desired: Mutex<DesiredSet>,
    watching: Mutex<HashSet<WatchKey>>,
    /// Each watch's current session: a new one at every (re)start, list and error.
    sessions: Mutex<HashMap<WatchKey, u64>>,
    next_session: AtomicU64,
    reports: tokio::sync::Mutex<HashMap<(String, String), AppReport>>,
    wake: futures::channel::mpsc::UnboundedSender<ObjectRef<Application>>,
    wakeups: Mutex<Option<futures::channel::mpsc::UnboundedReceiver<ObjectRef<Application>>>>,
}

fn key_of(cluster: &str, object: &Value) -> ObjectKey {
    let text = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or("");
    ObjectKey::new(
        cluster,
        text("/apiVersion"),
        text("/kind"),
        text("/metadata/namespace"),
        text("/metadata/name"),
    )
}

impl DriftWatch {
    /// A drift watch acting through `members`, recording Events through `hub_client`.
    pub(crate) fn new(hub_client: kube::Client, members: MemberClients) -> Arc<Self> {
        let reporter = Reporter {
            controller: "flotilla-application".into(),
            instance: None,
        };
        let (wake, wakeups) = futures::channel::mpsc::unbounded();
        Arc::new(DriftWatch {
            wake,
            wakeups: Mutex::new(Some(wakeups)),
            recorder: Recorder::new(hub_client.clone(), reporter),
            hub_client,
            members,
            desired: Mutex::new(DesiredSet::default()),
            watching: Mutex::new(HashSet::new()),
            sessions: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            reports: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The applications to reconcile again because one of their objects' health changed
    /// (taken once, by the controller).
    pub(crate) fn wakeups(
        &self,
    ) -> Option<futures::channel::mpsc::UnboundedReceiver<ObjectRef<Application>>> {
        self.wakeups.lock().ok()?.take()
    }

    /// Records the desired state of `object`, about to be dispatched to `cluster`, and makes
    /// sure its kind is watched there. The health last judged or seen is kept.
    pub(crate) fn register(self: &Arc<Self>, cluster: &str, object: &Value, desired: Desired) {
        let key = key_of(cluster, object);
        let kind = desired.kind.clone();
        if let Ok(mut map) = self.desired.lock() {
            map.insert(key.clone(), desired);
        }
        let new = self
            .watching
            .lock()
            .map(|mut w| w.insert(key.watch.clone()))
            .unwrap_or(false);
        if new {
            let this = Arc::clone(self);
            let (cluster, api_version, kind_name) = key.watch;
            tokio::spawn(
                async move { this.watch_kind(cluster, api_version, kind_name, kind).await },
            );
        }
    }

    /// Forgets one object (about to be deleted, or no longer ours to keep).
    pub(crate) fn forget(
        &self,
        cluster: &str,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
    ) {
        let key = ObjectKey::new(cluster, api_version, kind, ns, name);
        if let Ok(mut map) = self.desired.lock() {
            map.remove(&key);
        }
    }

    /// Forgets every object of an application (being deleted).
    pub(crate) async fn forget_app(&self, app_namespace: &str, app_name: &str) {
        if let Ok(mut map) = self.desired.lock() {
            map.remove_app(app_namespace, app_name);
        }
        self.reports
            .lock()
            .await
            .remove(&(app_namespace.to_string(), app_name.to_string()));
    }

    /// Starts a new session of `watch`: what earlier ones verified is no longer trusted.
    fn new_session(&self, watch: &WatchKey) -> u64 {
        let session = self.next_session.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.insert(watch.clone(), session);
        }
        session
    }

    /// How `object` in `cluster` looked in the drift watch's last event of it, if that event
    /// showed it as desired (the desired state registered now), and the watch has run
    /// without interruption since: a pass needs no read of it to judge its health (a later
    /// change of that health comes as an event, which wakes the application).
    pub(crate) fn verified(&self, cluster: &str, object: &Value) -> Option<Observed> {
        let key = key_of(cluster, object);
        let session = self.sessions.lock().ok()?.get(&key.watch).copied()?;
        let map = self.desired.lock().ok()?;
        let verified = map.get(&key)?.verified.as_ref()?;
        (verified.session == session).then(|| verified.observed.clone())
    }

    fn desired_for(&self, key: &ObjectKey) -> Option<Desired> {
        self.desired.lock().ok()?.get(key).cloned()
    }

    /// Records the health a pass judged `object` in `cluster` to have, until the watch
    /// reports it (the pass acts on it itself, so nothing is woken).
    pub(crate) fn judged(&self, cluster: &str, object: &Value, healthy: bool) {
        if let Ok(mut map) = self.desired.lock() {
            map.judged(&key_of(cluster, object), healthy);
        }
    }

    /// Records the health an event shows; when it makes the objects of its component in its
    /// step all healthy, or one of them unhealthy while all were, the application is
    /// reconciled again at once.
    fn seen(&self, key: &ObjectKey, healthy: bool) {
        let app = match self.desired.lock() {
            Ok(mut map) => map.set_health(key, healthy),
            Err(_) => None,
        };
        if let Some((namespace, name)) = app {
            // A closed channel (no controller) only loses the early wake-up: the pass's
            // own recheck still comes.
            let _ = self
                .wake
                .unbounded_send(ObjectRef::new(&name).within(&namespace));
        }
    }

    /// Watches one kind on one member for as long as the hub runs: one task per member and
    /// kind. What it awaits per event (checks, corrections, reports) is boxed for the
    /// event's time, so the task does not keep room for the largest of them (~6 KB) all along.
    async fn watch_kind(
        self: Arc<Self>,
        cluster: String,
        api_version: String,
        kind: String,
        info: KindInfo,
    ) {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.clone()),
        };
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(&group, &version, &kind),
            &info.plural,
        );
        // The first list comes while the first objects are still being applied; a later
        // one (the watch fell too far behind, or the member was away) may miss objects
        // deleted meanwhile, with no Delete event.
        let mut relisted = false;
        let watch = (cluster.clone(), api_version.clone(), kind.clone());
        loop {
            let mut session = self.new_session(&watch);
            let client = match Box::pin(self.members.as_user(&cluster, &watcher_identity())).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(%cluster, error = %e, "drift watch: no client yet");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            let api: Api<DynamicObject> = Api::all_with(client, &resource);
            let config = watcher::Config::default().labels(labels::APP_NAME);
            let mut stream = watcher(api, config).default_backoff().boxed();
            // Objects a (re)list returned, to find those deleted while the watch was down.
            let mut listed: Option<HashSet<NameKey>> = None;
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::Apply(o)) => {
                        Box::pin(self.check(&cluster, &api_version, &kind, o, session)).await;
                    }
                    Ok(watcher::Event::InitApply(o)) => {
                        let checked = self.check(&cluster, &api_version, &kind, o, session);
                        if let Some(key) = Box::pin(checked).await {
                            listed.get_or_insert_with(HashSet::new).insert(key.name);
                        }
                    }
                    Ok(watcher::Event::Delete(o)) => {
                        Box::pin(self.deleted(&cluster, &api_version, &kind, o)).await;
                    }
                    Ok(watcher::Event::Init) => {
                        session = self.new_session(&watch);
                        listed = Some(HashSet::new());
                    }
                    Ok(watcher::Event::InitDone) => {
                        let listed = listed.take().unwrap_or_default();
                        if relisted {
                            Box::pin(self.missing_after_relist(&watch, &listed)).await;
                        }
                        relisted = true;
                    }
                    Err(e) => {
                        session = self.new_session(&watch);
                        tracing::debug!(%cluster, %kind, error = %e, "drift watch interrupted");
                    }
                }
            }
            self.new_session(&watch);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Compares one object the watch saw in `session` with its desired state; returns its
    /// key. What it shows is recorded (verified or not) before the application is woken.
    async fn check(
        &self,
        cluster: &str,
        api_version: &str,
        kind: &str,
        o: DynamicObject,
        session: u64,
    ) -> Option<ObjectKey> {
        let mut live = serde_json::to_value(&o).unwrap_or(Value::Null);
        live["apiVersion"] = json!(api_version);
        live["kind"] = json!(kind);
        let key = key_of(cluster, &live);
        let healthy = workload_health(&live).0;
        // Not ours (any more): nothing to record or wake.
        let desired = self.desired_for(&key)?;
        let wanted = desired.object.decoded(cluster);
        let mut exempt = desired.exempt.clone();
        exempt.extend(applied_by_others(&live));
        let mut fields = drifted_fields(&wanted, &live, &exempt);
        if fields.iter().any(|f| f == "spec.replicas") && self.scaled_by_hpa(cluster, &key).await {
            fields.retain(|f| f != "spec.replicas");
        }
        let verified = (fields.is_empty() && same_render_hash(&live, &wanted)).then(|| Verified {
            session,
            observed: Observed::of(&live),
        });
        if let Ok(mut map) = self.desired.lock() {
            map.set_verified(&key, &desired.object, verified);
        }
        self.seen(&key, healthy);
        self.handle(key.clone(), desired, fields).await;
        Some(key)
    }

    /// Treats every desired object of `watch` that its relist did not return (`listed`: the
    /// namespaces and names it did) as deleted (put back, or reported).
    async fn missing_after_relist(&self, watch: &WatchKey, listed: &HashSet<NameKey>) {
        let missing = match self.desired.lock() {
            Ok(map) => map.keys_of_watch(watch, listed),
            Err(_) => return,
        };
        for key in missing {
            self.gone(key).await;
        }
    }

    async fn deleted(&self, cluster: &str, api_version: &str, kind: &str, o: DynamicObject) {
        let mut live = serde_json::to_value(&o).unwrap_or(Value::Null);
        live["apiVersion"] = json!(api_version);
        live["kind"] = json!(kind);
        self.gone(key_of(cluster, &live)).await;
    }

    /// One desired object is gone from its cluster: no longer verified, its application
    /// woken, and it is put back (or reported).
    async fn gone(&self, key: ObjectKey) {
        if let Some(desired) = self.desired_for(&key) {
            if let Ok(mut map) = self.desired.lock() {
                map.set_verified(&key, &desired.object, None);
            }
            self.seen(&key, false);
            self.handle(key, desired, vec![DELETED.to_string()]).await;
        }
    }

    /// Whether a HorizontalPodAutoscaler in the object's namespace scales it.
    async fn scaled_by_hpa(&self, cluster: &str, key: &ObjectKey) -> bool {
        let Ok(client) = self.members.as_user(cluster, &watcher_identity()).await else {
            return false;
        };
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("autoscaling", "v2", "HorizontalPodAutoscaler"),
            "horizontalpodautoscalers",
        );
        let api: Api<DynamicObject> = Api::namespaced_with(client, key.namespace(), &resource);
        let Ok(list) = api.list(&ListParams::default()).await else {
            return false;
        };
        list.items.iter().any(|h| {
            let target = &h.data["spec"]["scaleTargetRef"];
            target["kind"] == key.kind() && target["name"] == key.name()
        })
    }

    async fn handle(&self, key: ObjectKey, desired: Desired, fields: Vec<String>) {
        if desired.report {
            self.report(&desired.app, key, fields).await;
            return;
        }
        if fields.is_empty() {
            return;
        }
        if let Err(e) = self.correct(&key, &desired).await {
            tracing::warn!(cluster = %key.cluster(), object = %key.name(), error = %e,
                "cannot correct drift; the next converge pass retries");
            return;
        }
        super::metrics::count_drift_correction(key.cluster(), key.kind());
        let note = format!(
            "{} {} in cluster {}: {} drifted; corrected",
            key.kind(),
            object_name(&key),
            key.cluster(),
            fields.join(", ")
        );
        tracing::info!(app = ?desired.app.name, "{note}");
        let event = Event {
            type_: EventType::Normal,
            reason: "DriftCorrected".into(),
            note: Some(note),
            action: "Correct".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &desired.app).await {
            tracing::debug!(error = %e, "cannot record the drift Event");
        }
    }

    async fn correct(&self, key: &ObjectKey, desired: &Desired) -> Result<(), kube::Error> {
        let client = self
            .members
            .as_user(key.cluster(), &desired.identity)
            .await
            .map_err(|e| kube::Error::Service(Box::new(e)))?;
        let api = dispatch::api_for(
            &client,
            key.api_version(),
            key.kind(),
            &desired.kind,
            key.namespace(),
        );
        let object = desired.object.decoded(key.cluster());
        let applied = api
            .patch(
                key.name(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await?;
        // A value the cluster normalises differently would drift forever: leave it alone.
        let live = serde_json::to_value(&applied).unwrap_or(Value::Null);
        let stuck = drifted_fields(&object, &live, &desired.exempt);
        if !stuck.is_empty()
            && let Ok(mut map) = self.desired.lock()
            && let Some(entry) = map.get_mut(key)
        {
            tracing::info!(object = %key.name(), fields = ?stuck, "cluster normalises these fields; not watched");
            entry.exempt.extend(stuck);
        }
        Ok(())
    }

    /// Updates the application's `status.drift` when the report for `key` changes.
    async fn report(&self, app: &ObjectReference, key: ObjectKey, fields: Vec<String>) {
        let app_key = (
            app.namespace.clone().unwrap_or_default(),
            app.name.clone().unwrap_or_default(),
        );
        let mut reports = self.reports.lock().await;
        // The first check after a (re)start rewrites what an earlier run reported.
        let first = !reports.contains_key(&app_key);
        let entry = reports.entry(app_key.clone()).or_default();
        let changed = if fields.is_empty() {
            entry.remove(&key).is_some()
        } else {
            entry.insert(key, fields.clone()).as_ref() != Some(&fields)
        } || first;
        if !changed {
            return;
        }
        let list: Vec<DriftReport> = entry
            .iter()
            .map(|(k, f)| DriftReport {
                cluster: k.cluster().to_string(),
                api_version: k.api_version().to_string(),
                kind: k.kind().to_string(),
                namespace: k.namespace().to_string(),
                name: k.name().to_string(),
                fields: f.clone(),
            })
            .collect();
        let api: Api<Application> = Api::namespaced(self.hub_client.clone(), &app_key.0);
        let patch = json!({"status": {"drift": list}});
        if let Err(e) = api
            .patch_status(&app_key.1, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(app = %app_key.1, error = %e, "cannot report drift");
        }
    }
}

/// Whether `live` carries `desired`'s render hash.
fn same_render_hash(live: &Value, desired: &Value) -> bool {
    render_hash(live).is_some_and(|live| render_hash(desired) == Some(live))
}

fn render_hash(object: &Value) -> Option<&str> {
    object["metadata"]["annotations"][labels::RENDER_HASH].as_str()
}

fn object_name(key: &ObjectKey) -> String {
    if key.namespace().is_empty() {
        key.name().to_string()
    } else {
        format!("{}/{}", key.namespace(), key.name())
    }
}

/// Who the shared watch acts as on members: it serves every application there, not one user,
/// and the hub's stored credential may only impersonate.
fn watcher_identity() -> Identity {
    Identity::hub_component("drift-watch", &["system:masters"])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(hash: Option<&str>) -> Value {
        match hash {
            Some(hash) => json!({"metadata": {"annotations": {labels::RENDER_HASH: hash}}}),
            None => json!({"metadata": {}}),
        }
    }

    #[tokio::test]
    async fn a_watch_task_keeps_little_room_between_events() {
        let service = tower::service_fn(|_: http::Request<kube::client::Body>| async {
            Err::<http::Response<kube::client::Body>, tower::BoxError>("no server".into())
        });
        let hub = kube::Client::new(service, "default");
        let watch = DriftWatch::new(hub.clone(), MemberClients::new(hub));
        let info = KindInfo::of("apps/v1", "Deployment");
        let task = watch.watch_kind("m".into(), "apps/v1".into(), "Deployment".into(), info);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 4096, "a drift watch task is {size} bytes");
    }

    #[test]
    fn the_render_hash_must_be_present_and_equal() {
        assert!(same_render_hash(&object(Some("a")), &object(Some("a"))));
        assert!(!same_render_hash(&object(Some("a")), &object(Some("b"))));
        assert!(!same_render_hash(&object(Some("a")), &object(None)));
        assert!(!same_render_hash(&object(None), &object(None)));
    }
}
