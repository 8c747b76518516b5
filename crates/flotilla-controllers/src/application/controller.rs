//! The reconcile loop of one application: gather → revision → workflow (render → place →
//! override → dispatch → health per deploy step) → converge and gc once finished → status.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use flotilla_apis::{
    Application, ApplicationComponentStatus, ApplicationPhase, ApplicationRevision,
    ApplicationStatus, ApplicationWorkflow, AppliedResource, Condition, ManagedCluster, Policy,
    ResourceTracker, Revision, Workflow, WorkflowStatus, WorkflowStep, labels,
    resource_tracker_name, step_phase,
};
use futures::StreamExt as _;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::dispatch::{self, Target, describe};
use super::health::component_status;
use super::member_clients::{Identity, MemberClients, impersonating};
use super::r#override;
use super::placement::{self, ClusterInfo, Placement};
use super::render::{self, RenderedComponent, RenderedObject};
use super::resource_policy::{GcStrategy, ResourceFacts, ResourcePolicies};
use super::revision::{self, Decision, Snapshot};
use super::workflow::{self, Outcome, StepPath};

/// The finalizer that makes deleting an application delete what it dispatched.
pub const FINALIZER: &str = "app.oam.dev/resource-tracker-finalizer";
/// How many revisions are kept per application.
pub const REVISION_LIMIT: usize = 10;

/// Errors that make a reconcile retry with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The hub API failed.
    #[error("hub API: {0}")]
    Hub(#[source] Box<kube::Error>),
    /// The finalizer helper failed.
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

fn hub(e: kube::Error) -> Error {
    Error::Hub(Box::new(e))
}

/// Shared state of the controller.
pub struct Context {
    /// The controller's own hub client.
    pub hub_client: kube::Client,
    /// Member clients.
    pub members: MemberClients,
    /// How often dispatched state is re-asserted while an application runs.
    pub reassert_interval: Duration,
    /// Plural and scope of custom kinds, per cluster.
    pub kinds: dispatch::KindCache,
    last_reassert: Mutex<HashMap<String, Instant>>,
}

impl Context {
    /// A context with the given re-assert interval.
    pub fn new(hub_client: kube::Client, reassert_interval: Duration) -> Self {
        Context {
            members: MemberClients::new(hub_client.clone()),
            hub_client,
            reassert_interval,
            kinds: dispatch::KindCache::default(),
            last_reassert: Mutex::new(HashMap::new()),
        }
    }
}

/// Reconciles one application.
pub async fn reconcile(app: Arc<Application>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(app, ctx).await;
    super::metrics::observe_reconcile(started.elapsed(), result.is_ok());
    result
}

async fn reconcile_inner(app: Arc<Application>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = app.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Application> = Api::namespaced(ctx.hub_client.clone(), &namespace);
    finalizer(&api, FINALIZER, app, |event| async {
        match event {
            FinalizerEvent::Apply(app) => apply(&app, &ctx).await,
            FinalizerEvent::Cleanup(app) => cleanup(&app, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// What went wrong gathering the snapshot.
enum GatherError {
    /// A user error: shown on the application.
    Spec(String),
    /// The hub failed.
    Hub(Error),
}

fn collect_step_policies(steps: &[WorkflowStep], out: &mut BTreeSet<String>) {
    for step in steps {
        if step.step_type == "deploy"
            && let Ok(props) = workflow::deploy_properties(step)
        {
            out.extend(props.policies);
        }
        collect_step_policies(&step.sub_steps, out);
    }
}

/// Reads everything the application refers to (as the application's user where it reads
/// user content) into a fresh snapshot.
async fn gather(
    app: &Application,
    ctx: &Context,
    hub_as_user: &kube::Client,
) -> Result<Snapshot, GatherError> {
    let namespace = app.metadata.namespace.clone().unwrap_or_default();
    let spec = app.spec.clone();
    let mut workflow_ref = None;
    if let Some(name) = spec.workflow.as_ref().and_then(|w| w.reference.clone()) {
        let api: Api<Workflow> = Api::namespaced(ctx.hub_client.clone(), &namespace);
        if let Some(w) = api
            .get_opt(&name)
            .await
            .map_err(|e| GatherError::Hub(hub(e)))?
        {
            workflow_ref = Some(ApplicationWorkflow {
                reference: None,
                steps: w.steps,
                mode: w.mode,
            });
        }
    }
    let steps = workflow::effective_steps(
        &spec,
        workflow_ref.as_ref().map(|w| w.steps.as_slice()),
        &spec.policies,
    )
    .map_err(|e| GatherError::Spec(e.to_string()))?;
    let mut names = BTreeSet::new();
    collect_step_policies(&steps, &mut names);
    let mut policies = Vec::new();
    let policy_api: Api<Policy> = Api::namespaced(ctx.hub_client.clone(), &namespace);
    for name in names {
        if spec.policies.iter().any(|p| p.name == name) {
            continue;
        }
        if let Some(p) = policy_api
            .get_opt(&name)
            .await
            .map_err(|e| GatherError::Hub(hub(e)))?
        {
            policies.push(p.to_app_policy());
        }
    }
    let queries = render::ref_object_queries(&spec.components, &namespace)
        .map_err(|e| GatherError::Spec(e.to_string()))?;
    let mut referred = Vec::new();
    for q in queries {
        let info = dispatch::KindInfo {
            plural: q.plural.clone(),
            namespaced: render::is_namespaced(&q.api_version, &q.kind),
        };
        let api = dispatch::api_for(hub_as_user, &q.api_version, &q.kind, &info, &q.namespace);
        let found: Vec<Value> = if let Some(name) = &q.name {
            match api.get_opt(name).await {
                Ok(o) => o.into_iter().map(to_value).collect(),
                Err(kube::Error::Api(s)) => {
                    return Err(GatherError::Spec(format!("ref-objects: {}", s.message)));
                }
                Err(e) => return Err(GatherError::Hub(hub(e))),
            }
        } else {
            let selector = q
                .label_selector
                .iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            match api.list(&ListParams::default().labels(&selector)).await {
                Ok(list) => list.items.into_iter().map(to_value).collect(),
                Err(kube::Error::Api(s)) => {
                    return Err(GatherError::Spec(format!("ref-objects: {}", s.message)));
                }
                Err(e) => return Err(GatherError::Hub(hub(e))),
            }
        };
        referred.extend(found.iter().map(|o| {
            let mut copy = render::strip_for_copy(o);
            // kube's DynamicObject may drop apiVersion/kind on lists; restore them.
            copy["apiVersion"] = json!(q.api_version);
            copy["kind"] = json!(q.kind);
            copy
        }));
    }
    referred.sort_by_key(|o| o.to_string());
    referred.dedup();
    Ok(Snapshot {
        spec,
        policies,
        workflow: workflow_ref,
        referred_objects: referred,
    })
}

fn to_value<T: serde::Serialize>(o: T) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Creates revision `<app>-v<N+1>` and prunes old ones.
async fn create_revision(
    ctx: &Context,
    app: &Application,
    snapshot: &Snapshot,
    publish: Option<&str>,
) -> Result<Revision, Error> {
    let name = app.metadata.name.clone().unwrap_or_default();
    let namespace = app.metadata.namespace.clone().unwrap_or_default();
    let api: Api<ApplicationRevision> = Api::namespaced(ctx.hub_client.clone(), &namespace);
    let existing = api
        .list(&ListParams::default().labels(&format!("{}={name}", labels::APP_NAME)))
        .await
        .map_err(hub)?
        .items;
    // A revision already written for this content (a status write lost to a conflict).
    let hash = snapshot.hash();
    if let Some(same) = existing.iter().find(|r| {
        r.spec.revision_hash == hash
            && r.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(labels::PUBLISH_VERSION))
                .map(String::as_str)
                == publish
    }) {
        let name = same.metadata.name.clone().unwrap_or_default();
        let number = flotilla_apis::operation::revision_number(&name);
        let newest = existing
            .iter()
            .map(|r| {
                flotilla_apis::operation::revision_number(r.metadata.name.as_deref().unwrap_or(""))
            })
            .max()
            .unwrap_or(0);
        if number == newest {
            return Ok(Revision {
                name,
                revision: number,
                revision_hash: hash,
                publish_version: publish.map(str::to_string),
            });
        }
    }
    let number = existing
        .iter()
        .map(|r| {
            flotilla_apis::operation::revision_number(r.metadata.name.as_deref().unwrap_or(""))
        })
        .max()
        .unwrap_or(0)
        .max(
            app.status
                .as_ref()
                .and_then(|s| s.latest_revision.as_ref())
                .map(|r| r.revision)
                .unwrap_or(0),
        )
        + 1;
    let revision = Revision {
        name: format!("{name}-v{number}"),
        revision: number,
        revision_hash: snapshot.hash(),
        publish_version: publish.map(str::to_string),
    };
    let mut object = ApplicationRevision {
        api_version: ApplicationRevision::API_VERSION.into(),
        kind: ApplicationRevision::KIND.into(),
        spec: snapshot.to_revision_spec(),
        ..Default::default()
    };
    object.metadata.name = Some(revision.name.clone());
    object.metadata.namespace = Some(namespace.clone());
    object.metadata.labels = Some(BTreeMap::from([(
        labels::APP_NAME.to_string(),
        name.clone(),
    )]));
    if let Some(p) = publish {
        object.metadata.annotations = Some(BTreeMap::from([(
            labels::PUBLISH_VERSION.to_string(),
            p.to_string(),
        )]));
    }
    if let Some(uid) = &app.metadata.uid {
        object.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: Application::API_VERSION.into(),
                kind: Application::KIND.into(),
                name: name.clone(),
                uid: uid.clone(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
        ]);
    }
    api.patch(
        &revision.name,
        &PatchParams::apply(dispatch::FIELD_MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await
    .map_err(hub)?;
    // Keep the newest REVISION_LIMIT (never the last succeeded one).
    let mut old: Vec<&ApplicationRevision> = existing.iter().collect();
    old.sort_by_key(|r| {
        flotilla_apis::operation::revision_number(r.metadata.name.as_deref().unwrap_or(""))
    });
    let last_succeeded = old
        .iter()
        .rev()
        .find(|r| r.status.as_ref().is_some_and(|s| s.succeeded))
        .and_then(|r| r.metadata.name.clone());
    let excess = (old.len() + 1).saturating_sub(REVISION_LIMIT);
    for r in old.iter().take(excess) {
        if r.metadata.name != last_succeeded
            && let Some(n) = &r.metadata.name
            && let Err(e) = api.delete(n, &DeleteParams::default()).await
        {
            tracing::warn!(revision = %n, error = %e, "cannot prune application revision");
        }
    }
    Ok(revision)
}

async fn load_revision(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<Snapshot>, Error> {
    let api: Api<ApplicationRevision> = Api::namespaced(ctx.hub_client.clone(), namespace);
    Ok(api
        .get_opt(name)
        .await
        .map_err(hub)?
        .map(|r| Snapshot::from_revision_spec(&r.spec)))
}

/// Identity of a tracked object (component and trait are not part of it).
fn resource_key(r: &AppliedResource) -> (String, String, String, String, String) {
    (
        r.cluster.clone(),
        r.api_version.clone(),
        r.kind.clone(),
        r.namespace.clone(),
        r.name.clone(),
    )
}

/// One prepared object of a component in a cluster.
struct PlannedObject {
    object: Value,
    kind: dispatch::KindInfo,
    trait_type: Option<String>,
}

/// One component in one cluster.
struct Task {
    component: usize,
    placement: Placement,
    objects: Vec<PlannedObject>,
    namespace: String,
}

enum TaskResult {
    Done(ApplicationComponentStatus),
    Failed(String),
    Unreachable(String, String),
}

/// What a deploy step did.
#[derive(Default)]
struct DeployResult {
    outcome: Option<Outcome>,
    services: Vec<ApplicationComponentStatus>,
    produced: Vec<AppliedResource>,
    unreachable: BTreeSet<String>,
}

impl DeployResult {
    fn failed(message: impl Into<String>) -> DeployResult {
        DeployResult {
            outcome: Some(Outcome::Failed(message.into())),
            ..Default::default()
        }
    }
}

/// One pass over an application: what every deploy step shares.
struct Pass<'a> {
    ctx: &'a Context,
    app_name: String,
    app_namespace: String,
    identity: Identity,
    snapshot: &'a Snapshot,
    revision: String,
    clusters: Vec<ClusterInfo>,
    policies: ResourcePolicies,
    tracker: Mutex<ResourceTracker>,
    create_namespace: bool,
}

impl Pass<'_> {
    async fn track(&self, entries: &[AppliedResource]) -> Result<(), Error> {
        let mut tracker = self.tracker.lock().await;
        let mut changed = false;
        for entry in entries {
            match tracker
                .spec
                .managed_resources
                .iter_mut()
                .find(|r| resource_key(r) == resource_key(entry))
            {
                Some(existing) if existing == entry => {}
                Some(existing) => {
                    *existing = entry.clone();
                    changed = true;
                }
                None => {
                    tracker.spec.managed_resources.push(entry.clone());
                    changed = true;
                }
            }
        }
        if changed {
            write_tracker(self.ctx, &mut tracker).await?;
        }
        Ok(())
    }

    async fn deploy(&self, step: &WorkflowStep, force: bool) -> DeployResult {
        let props = match workflow::deploy_properties(step) {
            Ok(p) => p,
            Err(e) => return DeployResult::failed(e.to_string()),
        };
        let mut topologies = Vec::new();
        let mut components = self.snapshot.spec.components.clone();
        for name in &props.policies {
            let Some(policy) = self.snapshot.policy(name) else {
                return DeployResult::failed(format!("policy {name} not found"));
            };
            match policy.policy_type.as_str() {
                "topology" => match placement::parse(name, policy.properties.as_ref()) {
                    Ok(t) => topologies.push(t),
                    Err(e) => return DeployResult::failed(e.to_string()),
                },
                "override" => {
                    let result = r#override::parse(name, policy.properties.as_ref())
                        .and_then(|o| r#override::apply(name, &components, &o));
                    match result {
                        Ok(c) => components = c,
                        Err(e) => return DeployResult::failed(e.to_string()),
                    }
                }
                _ => {}
            }
        }
        let mut rendered = Vec::new();
        for c in &components {
            match render::render_component(
                c,
                &self.app_name,
                &self.app_namespace,
                &self.snapshot.referred_objects,
            ) {
                Ok(r) => rendered.push(r),
                Err(e) => return DeployResult::failed(e.to_string()),
            }
        }
        let mut placements = BTreeSet::new();
        if topologies.is_empty() {
            placements.insert(Placement::local());
        }
        for t in &topologies {
            match placement::place(t, &self.clusters) {
                Ok(p) => placements.extend(p),
                Err(e) => return DeployResult::failed(e.to_string()),
            }
        }
        let mut tasks = Vec::new();
        let mut planned = Vec::new();
        for placement in &placements {
            // Scope and plural of kinds outside the built-in table come from the cluster.
            let client = self
                .ctx
                .members
                .as_user(&placement.cluster, &self.identity)
                .await
                .ok();
            for (index, component) in rendered.iter().enumerate() {
                let target = Target {
                    app_name: &self.app_name,
                    app_namespace: &self.app_namespace,
                    component: &component.name,
                    cluster: &placement.cluster,
                    revision: &self.revision,
                    namespace: placement.namespace.as_deref(),
                };
                let mut objects = Vec::new();
                for o in &component.objects {
                    let o: &RenderedObject = o;
                    let api_version = o.object["apiVersion"].as_str().unwrap_or_default();
                    let kind_name = o.object["kind"].as_str().unwrap_or_default();
                    let kind = match &client {
                        Some(c) => match self
                            .ctx
                            .kinds
                            .resolve(c, &placement.cluster, api_version, kind_name)
                            .await
                        {
                            Ok(kind) => kind,
                            Err(e) => {
                                return DeployResult::failed(format!(
                                    "cluster {}: {e}",
                                    placement.cluster
                                ));
                            }
                        },
                        None => dispatch::KindInfo::of(api_version, kind_name),
                    };
                    objects.push(PlannedObject {
                        object: dispatch::prepare(&o.object, &target, kind.namespaced),
                        kind,
                        trait_type: o.trait_type.clone(),
                    });
                }
                for o in &objects {
                    planned.push(applied_resource(&placement.cluster, &component.name, o));
                }
                let namespace = objects
                    .first()
                    .and_then(|o| o.object["metadata"]["namespace"].as_str())
                    .map(str::to_string)
                    .or_else(|| placement.namespace.clone())
                    .unwrap_or_else(|| self.app_namespace.clone());
                tasks.push(Task {
                    component: index,
                    placement: placement.clone(),
                    objects,
                    namespace,
                });
            }
        }
        if let Err(e) = self.track(&planned).await {
            return DeployResult::failed(format!("cannot record dispatched resources: {e}"));
        }
        let parallelism = props.parallelism.max(1);
        let results: Vec<(String, TaskResult)> = futures::stream::iter(0..tasks.len())
            .map(|i| {
                let task = &tasks[i];
                let rendered = &rendered;
                async move {
                    let r = self
                        .dispatch_task(&rendered[task.component], task, force)
                        .await;
                    (task.placement.cluster.clone(), r)
                }
            })
            .buffered(parallelism)
            .collect()
            .await;
        let mut result = DeployResult {
            produced: planned,
            ..Default::default()
        };
        let mut failures = Vec::new();
        let mut waiting = Vec::new();
        for (_, r) in results {
            match r {
                TaskResult::Done(status) => {
                    if !status.healthy {
                        waiting.push(format!(
                            "{}/{}/{} is not healthy",
                            status.cluster, status.namespace, status.name
                        ));
                    }
                    result.services.push(status);
                }
                TaskResult::Failed(message) => failures.push(message),
                TaskResult::Unreachable(cluster, message) => {
                    result.unreachable.insert(cluster);
                    waiting.push(message);
                }
            }
        }
        failures.dedup();
        waiting.dedup();
        result.outcome = Some(if !failures.is_empty() {
            Outcome::Failed(failures.join("; "))
        } else if !waiting.is_empty() {
            Outcome::Waiting(waiting.join(", "))
        } else {
            Outcome::Succeeded
        });
        result
    }

    async fn dispatch_task(
        &self,
        rendered: &RenderedComponent,
        task: &Task,
        force: bool,
    ) -> TaskResult {
        let started = Instant::now();
        let result = self.dispatch_task_inner(rendered, task, force).await;
        super::metrics::observe_dispatch(&task.placement.cluster, started.elapsed());
        result
    }

    async fn dispatch_task_inner(
        &self,
        rendered: &RenderedComponent,
        task: &Task,
        force: bool,
    ) -> TaskResult {
        let cluster = task.placement.cluster.as_str();
        let client = match self.ctx.members.as_user(cluster, &self.identity).await {
            Ok(c) => c,
            Err(e) => return TaskResult::Failed(e.to_string()),
        };
        if self.create_namespace {
            let mut namespaces: Vec<&str> = task
                .objects
                .iter()
                .filter_map(|o| o.object["metadata"]["namespace"].as_str())
                .collect();
            namespaces.sort_unstable();
            namespaces.dedup();
            for namespace in namespaces {
                if let Err(e) = dispatch::ensure_namespace(&client, namespace).await {
                    if e.is_unreachable() {
                        self.ctx.members.forget(cluster).await;
                        return TaskResult::Unreachable(
                            cluster.to_string(),
                            format!("cluster {cluster} is unreachable: {e}"),
                        );
                    }
                    return TaskResult::Failed(format!(
                        "failed to create namespace {namespace} in cluster {cluster}: {e}"
                    ));
                }
            }
        }
        for o in &task.objects {
            let facts = facts(rendered, o);
            let mut options = self.policies.apply_options(&facts);
            options.force = force;
            if let Err(e) = dispatch::apply(
                &client,
                &o.object,
                &o.kind,
                &self.app_name,
                &self.app_namespace,
                &options,
            )
            .await
            {
                if e.is_unreachable() {
                    self.ctx.members.forget(cluster).await;
                    return TaskResult::Unreachable(
                        cluster.to_string(),
                        format!("cluster {cluster} is unreachable: {e}"),
                    );
                }
                return TaskResult::Failed(format!(
                    "failed to apply {} in cluster {cluster}: {e}",
                    describe(&o.object)
                ));
            }
        }
        let mut live = Vec::new();
        for o in &task.objects {
            let text = |p: &str| o.object.pointer(p).and_then(Value::as_str).unwrap_or("");
            match dispatch::get(
                &client,
                text("/apiVersion"),
                text("/kind"),
                &o.kind,
                text("/metadata/namespace"),
                text("/metadata/name"),
            )
            .await
            {
                Ok(v) => live.push(v),
                Err(e) if e.is_unreachable() => {
                    return TaskResult::Unreachable(
                        cluster.to_string(),
                        format!("cluster {cluster} is unreachable: {e}"),
                    );
                }
                Err(e) => {
                    return TaskResult::Failed(format!(
                        "failed to read {} in cluster {cluster}: {e}",
                        describe(&o.object)
                    ));
                }
            }
        }
        TaskResult::Done(component_status(rendered, cluster, &task.namespace, &live))
    }
}

fn facts<'a>(rendered: &'a RenderedComponent, o: &'a PlannedObject) -> ResourceFacts<'a> {
    ResourceFacts {
        component: &rendered.name,
        component_type: &rendered.component_type,
        trait_type: o.trait_type.as_deref(),
        kind: o.object["kind"].as_str().unwrap_or_default(),
        name: o.object["metadata"]["name"].as_str().unwrap_or_default(),
    }
}

fn applied_resource(cluster: &str, component: &str, o: &PlannedObject) -> AppliedResource {
    let text = |p: &str| {
        o.object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    AppliedResource {
        cluster: cluster.to_string(),
        api_version: text("/apiVersion"),
        kind: text("/kind"),
        namespace: text("/metadata/namespace"),
        name: text("/metadata/name"),
        component: component.to_string(),
        trait_type: o.trait_type.clone().unwrap_or_default(),
    }
}

async fn write_tracker(ctx: &Context, tracker: &mut ResourceTracker) -> Result<(), Error> {
    tracker.spec.managed_resources.sort();
    let api: Api<ResourceTracker> = Api::all(ctx.hub_client.clone());
    let name = tracker.metadata.name.clone().unwrap_or_default();
    let mut object = tracker.clone();
    object.api_version = ResourceTracker::API_VERSION.into();
    object.kind = ResourceTracker::KIND.into();
    object.metadata.resource_version = None;
    object.metadata.managed_fields = None;
    object.metadata.uid = None;
    object.metadata.creation_timestamp = None;
    api.patch(
        &name,
        &PatchParams::apply(dispatch::FIELD_MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await
    .map_err(hub)?;
    Ok(())
}

async fn read_tracker(
    ctx: &Context,
    app_name: &str,
    app_namespace: &str,
) -> Result<ResourceTracker, Error> {
    let api: Api<ResourceTracker> = Api::all(ctx.hub_client.clone());
    let name = resource_tracker_name(app_name, app_namespace);
    Ok(match api.get_opt(&name).await.map_err(hub)? {
        Some(t) => t,
        None => {
            let mut t = ResourceTracker::default();
            t.metadata.name = Some(name);
            t.metadata.labels = Some(BTreeMap::from([
                (labels::APP_NAME.to_string(), app_name.to_string()),
                (labels::APP_NAMESPACE.to_string(), app_namespace.to_string()),
            ]));
            t.spec.tracker_type = "root".into();
            t
        }
    })
}

async fn list_clusters(ctx: &Context) -> Result<Vec<ClusterInfo>, Error> {
    let api: Api<ManagedCluster> = Api::all(ctx.hub_client.clone());
    Ok(api
        .list(&ListParams::default())
        .await
        .map_err(hub)?
        .items
        .into_iter()
        .map(|c| ClusterInfo {
            name: c.metadata.name.unwrap_or_default(),
            labels: c.metadata.labels.unwrap_or_default(),
        })
        .collect())
}

fn step_at(steps: &[WorkflowStep], path: StepPath) -> Option<&WorkflowStep> {
    let top = steps.get(path.index)?;
    match path.sub {
        Some(sub) => top.sub_steps.get(sub),
        None => Some(top),
    }
}

fn deploy_steps(steps: &[WorkflowStep]) -> Vec<&WorkflowStep> {
    let mut out = Vec::new();
    for s in steps {
        if s.step_type == "deploy" {
            out.push(s);
        }
        out.extend(deploy_steps(&s.sub_steps));
    }
    out
}

fn service_key(s: &ApplicationComponentStatus) -> (String, String, String) {
    (s.name.clone(), s.cluster.clone(), s.namespace.clone())
}

fn merge_services(
    into: &mut Vec<ApplicationComponentStatus>,
    from: Vec<ApplicationComponentStatus>,
) {
    for s in from {
        match into.iter_mut().find(|x| service_key(x) == service_key(&s)) {
            Some(existing) => *existing = s,
            None => into.push(s),
        }
    }
}

fn set_condition(
    status: &mut ApplicationStatus,
    condition_type: &str,
    ok: bool,
    reason: &str,
    message: &str,
) {
    let value = if ok { "True" } else { "False" };
    if let Some(c) = status
        .conditions
        .iter_mut()
        .find(|c| c.condition_type == condition_type)
    {
        if c.status != value {
            c.last_transition_time = Some(now_text());
        }
        c.status = value.into();
        c.reason = Some(reason.into());
        c.message = (!message.is_empty()).then(|| message.to_string());
    } else {
        status.conditions.push(Condition {
            condition_type: condition_type.into(),
            status: value.into(),
            reason: Some(reason.into()),
            message: (!message.is_empty()).then(|| message.to_string()),
            last_transition_time: Some(now_text()),
        });
    }
}

/// Writes the status if it changed, failing on a concurrent change (a workflow operation)
/// so that the next pass sees it.
async fn write_status(
    ctx: &Context,
    app: &Application,
    status: &ApplicationStatus,
) -> Result<bool, Error> {
    if app.status.as_ref() == Some(status) {
        return Ok(false);
    }
    let api: Api<Application> = Api::namespaced(
        ctx.hub_client.clone(),
        app.metadata.namespace.as_deref().unwrap_or(""),
    );
    let name = app.metadata.name.clone().unwrap_or_default();
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": app.metadata.resource_version},
        {"op": "add", "path": "/status", "value": status},
    ]))
    .map_err(|e| hub(kube::Error::SerdeError(e)))?;
    match api
        .patch_status(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => Ok(true),
        // Changed under us (e.g. `workflow resume`): the watch brings the new version.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 422 => Ok(true),
        Err(e) => Err(hub(e)),
    }
}

async fn apply(app: &Application, ctx: &Context) -> Result<Action, Error> {
    let app_name = app.metadata.name.clone().unwrap_or_default();
    let app_namespace = app.metadata.namespace.clone().unwrap_or_default();
    let identity = Identity::of(app.metadata.annotations.as_ref());
    let hub_as_user = impersonating(ctx.hub_client.clone(), &identity);
    let mut status = app.status.clone().unwrap_or_default();
    status.observed_generation = app.metadata.generation;
    let publish = app
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(labels::PUBLISH_VERSION))
        .cloned();

    let spec_error = |mut status: ApplicationStatus, message: String| async move {
        status.status = Some(ApplicationPhase::Rendering.as_str().into());
        set_condition(&mut status, "Rendered", false, "RenderFailed", &message);
        // Shown by `flotilla status` under Workflow.
        let workflow = status.workflow.get_or_insert_with(|| WorkflowStatus {
            mode: workflow::MODE.into(),
            ..Default::default()
        });
        workflow.message = message;
        write_status(ctx, app, &status).await?;
        Ok::<_, Error>(Action::requeue(Duration::from_secs(30)))
    };

    let current = status.latest_revision.clone();
    // With an unchanged publishVersion the run keeps its stored snapshot, whatever the spec now
    // says (even when the new spec would not render).
    let pinned = publish.is_some()
        && current.as_ref().and_then(|c| c.publish_version.as_deref()) == publish.as_deref();
    let fresh = match gather(app, ctx, &hub_as_user).await {
        Ok(s) => Some(s),
        Err(GatherError::Spec(_)) if pinned => None,
        Err(GatherError::Spec(message)) => return spec_error(status, message).await,
        Err(GatherError::Hub(e)) => return Err(e),
    };
    let (snapshot, revision) = match (fresh, current) {
        (None, Some(cur)) => match load_revision(ctx, &app_namespace, &cur.name).await? {
            Some(stored) => (stored, cur),
            None => {
                let message = format!("application revision {} not found", cur.name);
                return spec_error(status, message).await;
            }
        },
        (None, None) => return spec_error(status, "nothing to run".into()).await,
        (Some(fresh), current) => {
            let fresh_hash = fresh.hash();
            match (
                revision::decide(current.as_ref(), &fresh_hash, publish.as_deref()),
                current,
            ) {
                (Decision::Keep { use_stored: true }, Some(cur)) => {
                    let stored = load_revision(ctx, &app_namespace, &cur.name).await?;
                    (stored.unwrap_or(fresh), cur)
                }
                (Decision::Keep { .. }, Some(cur)) => (fresh, cur),
                (Decision::Rerun, Some(mut cur)) => {
                    cur.publish_version = publish.clone();
                    (fresh, cur)
                }
                _ => {
                    let r = create_revision(ctx, app, &fresh, publish.as_deref()).await?;
                    (fresh, r)
                }
            }
        }
    };
    let policies = match ResourcePolicies::from_policies(&snapshot.spec.policies) {
        Ok(p) => p,
        Err(e) => return spec_error(status, e.to_string()).await,
    };
    status.latest_revision = Some(revision.clone());
    let run = revision::run_key(&revision);
    let steps = match workflow::effective_steps(
        &snapshot.spec,
        snapshot.workflow.as_ref().map(|w| w.steps.as_slice()),
        &snapshot.spec.policies,
    ) {
        Ok(s) => s,
        Err(e) => return spec_error(status, e.to_string()).await,
    };
    set_condition(&mut status, "Rendered", true, "Rendered", "");
    let now = Utc::now();
    let mut wf: WorkflowStatus = match status.workflow.take() {
        Some(mut w) if w.app_revision == run => {
            workflow::align(&mut w, &steps);
            w
        }
        _ => workflow::start(&run, &steps, now),
    };
    // The overall message is the first failing step's (a spec error's message is gone).
    wf.message = wf
        .steps
        .iter()
        .find(|s| s.phase == step_phase::FAILED)
        .map(|s| s.message.clone())
        .unwrap_or_default();
    let was_finished = wf.finished;

    let pass = Pass {
        ctx,
        app_name: app_name.clone(),
        app_namespace: app_namespace.clone(),
        identity,
        snapshot: &snapshot,
        revision: revision.name.clone(),
        clusters: list_clusters(ctx).await?,
        policies,
        tracker: Mutex::new(read_tracker(ctx, &app_name, &app_namespace).await?),
        create_namespace: app
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(labels::CREATE_NAMESPACE))
            .is_some_and(|v| v == "true"),
    };

    let mut requeue = Duration::from_secs(30);
    let mut finished = false;
    // Bounded: each round either stops or moves at least one step forward.
    for _ in 0..=steps.len() * 4 + 4 {
        let action = match workflow::next_action(&mut wf, &steps, now) {
            Ok(a) => a,
            Err(e) => {
                wf.message = e.to_string();
                break;
            }
        };
        match action {
            workflow::Action::Execute(paths) => {
                let runs = paths.iter().copied().map(|p| {
                    let (steps, pass) = (&steps, &pass);
                    async move {
                        match step_at(steps, p) {
                            Some(step) => pass.deploy(step, false).await,
                            None => DeployResult::failed("step not found"),
                        }
                    }
                });
                let results = futures::future::join_all(runs).await;
                let mut all_succeeded = true;
                for (path, result) in paths.iter().zip(results) {
                    let outcome = result
                        .outcome
                        .unwrap_or(Outcome::Failed("no outcome".into()));
                    match &outcome {
                        Outcome::Succeeded => {}
                        Outcome::Waiting(_) => {
                            all_succeeded = false;
                            requeue = requeue.min(Duration::from_secs(2));
                        }
                        Outcome::Failed(_) => {
                            all_succeeded = false;
                            requeue = requeue.min(Duration::from_secs(10));
                        }
                    }
                    workflow::record(&mut wf, *path, &outcome, now);
                    merge_services(&mut status.services, result.services);
                }
                if !all_succeeded {
                    break;
                }
            }
            workflow::Action::Suspended { recheck } => {
                requeue = recheck
                    .unwrap_or(Duration::from_secs(60))
                    .max(Duration::from_millis(200));
                break;
            }
            workflow::Action::Finished => {
                finished = true;
                break;
            }
            workflow::Action::Terminated => {
                requeue = Duration::from_secs(300);
                break;
            }
        }
    }

    let mut converge_failed = false;
    if finished {
        let key = format!("{app_namespace}/{app_name}");
        let force = {
            let mut last = ctx.last_reassert.lock().await;
            let due = last
                .get(&key)
                .is_none_or(|t| t.elapsed() >= ctx.reassert_interval);
            if due {
                last.insert(key.clone(), Instant::now());
            }
            due && was_finished
        };
        let mut produced = Vec::new();
        let mut services = Vec::new();
        let mut unreachable = BTreeSet::new();
        for step in deploy_steps(&steps) {
            let result = pass.deploy(step, force).await;
            if let Some(Outcome::Failed(message)) = &result.outcome {
                converge_failed = true;
                wf.message = message.clone();
            }
            produced.extend(result.produced);
            merge_services(&mut services, result.services);
            unreachable.extend(result.unreachable);
        }
        if !converge_failed {
            wf.message.clear();
        }
        // An unreachable cluster keeps its entries, marked as not known to be healthy.
        for old in status
            .services
            .iter()
            .filter(|s| unreachable.contains(&s.cluster))
        {
            if !services.iter().any(|s| service_key(s) == service_key(old)) {
                let mut entry = old.clone();
                entry.healthy = false;
                entry.message = format!("cluster {} is unreachable", old.cluster);
                services.push(entry);
            }
        }
        status.services = services;
        if !converge_failed && !pass.policies.keep_legacy() {
            gc(&pass, &produced, &unreachable).await?;
        }
        if !was_finished {
            mark_succeeded(ctx, &app_namespace, &revision.name).await;
        }
        if status.services.iter().any(|s| !s.healthy) {
            requeue = Duration::from_secs(3);
        }
    }
    status.services.sort_by_key(service_key);
    status.applied_resources = pass.tracker.lock().await.spec.managed_resources.clone();

    let phase = if wf.terminated {
        ApplicationPhase::WorkflowTerminated
    } else if finished {
        if converge_failed || status.services.iter().any(|s| !s.healthy) {
            ApplicationPhase::Unhealthy
        } else {
            ApplicationPhase::Running
        }
    } else if wf.suspend {
        ApplicationPhase::WorkflowSuspending
    } else if workflow::has_failed(&wf) || !wf.message.is_empty() {
        ApplicationPhase::WorkflowFailed
    } else {
        ApplicationPhase::RunningWorkflow
    };
    status.status = Some(phase.as_str().into());
    set_condition(
        &mut status,
        "WorkflowFinished",
        wf.finished,
        if wf.finished { "Finished" } else { "Running" },
        "",
    );
    status.workflow = Some(wf);
    write_status(ctx, app, &status).await?;
    Ok(Action::requeue(requeue))
}

async fn mark_succeeded(ctx: &Context, namespace: &str, revision: &str) {
    let api: Api<ApplicationRevision> = Api::namespaced(ctx.hub_client.clone(), namespace);
    let patch = json!({"status": {"succeeded": true}});
    if let Err(e) = api
        .patch_status(revision, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(%revision, error = %e, "cannot mark the application revision succeeded");
    }
}

/// Deletes tracked objects that the last full pass no longer produced.
async fn gc(
    pass: &Pass<'_>,
    produced: &[AppliedResource],
    unreachable: &BTreeSet<String>,
) -> Result<(), Error> {
    let keep: BTreeSet<_> = produced.iter().map(resource_key).collect();
    let tracked = pass.tracker.lock().await.spec.managed_resources.clone();
    let mut released = Vec::new();
    for r in tracked.iter().filter(|r| !keep.contains(&resource_key(r))) {
        if unreachable.contains(&r.cluster) {
            continue;
        }
        let strategy = pass.policies.gc_strategy(&ResourceFacts {
            component: &r.component,
            component_type: "",
            trait_type: (!r.trait_type.is_empty()).then_some(r.trait_type.as_str()),
            kind: &r.kind,
            name: &r.name,
        });
        if strategy != GcStrategy::OnAppUpdate {
            continue;
        }
        if delete_tracked(
            pass.ctx,
            &pass.identity,
            r,
            &pass.app_name,
            &pass.app_namespace,
        )
        .await
        {
            released.push(resource_key(r));
        }
    }
    if !released.is_empty() {
        let mut tracker = pass.tracker.lock().await;
        tracker
            .spec
            .managed_resources
            .retain(|r| !released.contains(&resource_key(r)));
        write_tracker(pass.ctx, &mut tracker).await?;
    }
    Ok(())
}

/// Deletes one tracked object; true when it is gone (or its cluster is no longer registered).
async fn delete_tracked(
    ctx: &Context,
    identity: &Identity,
    r: &AppliedResource,
    app_name: &str,
    app_namespace: &str,
) -> bool {
    let client = match ctx.members.as_user(&r.cluster, identity).await {
        Ok(c) => c,
        Err(super::member_clients::Error::Credentials { source, .. })
            if matches!(*source, crate::cluster::credentials::Error::NotFound { .. }) =>
        {
            // Detached: the hub forgets what it tracked there.
            return true;
        }
        Err(e) => {
            tracing::warn!(cluster = %r.cluster, error = %e, "cannot reach cluster to delete");
            return false;
        }
    };
    let kind = match ctx
        .kinds
        .resolve(&client, &r.cluster, &r.api_version, &r.kind)
        .await
    {
        Ok(kind) => kind,
        // The kind is gone from the cluster, and its objects with it.
        Err(dispatch::Error::Refused(_)) => return true,
        Err(e) => {
            tracing::warn!(cluster = %r.cluster, error = %e, "cannot resolve kind to delete");
            return false;
        }
    };
    match dispatch::delete(
        &client,
        &r.api_version,
        &r.kind,
        &kind,
        &r.namespace,
        &r.name,
        app_name,
        app_namespace,
    )
    .await
    {
        Ok(()) => true,
        Err(e) => {
            if e.is_unreachable() {
                ctx.members.forget(&r.cluster).await;
            }
            tracing::warn!(cluster = %r.cluster, object = %r.name, error = %e, "cannot delete");
            false
        }
    }
}

/// Application deleted: delete everything it dispatched, its tracker and its revisions.
async fn cleanup(app: &Application, ctx: &Context) -> Result<Action, Error> {
    let app_name = app.metadata.name.clone().unwrap_or_default();
    let app_namespace = app.metadata.namespace.clone().unwrap_or_default();
    let identity = Identity::of(app.metadata.annotations.as_ref());
    let mut status = app.status.clone().unwrap_or_default();
    status.status = Some(ApplicationPhase::Deleting.as_str().into());
    let _ = write_status(ctx, app, &status).await;
    let tracker = read_tracker(ctx, &app_name, &app_namespace).await?;
    let policies = ResourcePolicies::from_policies(&app.spec.policies).unwrap_or_default();
    let deletions: Vec<AppliedResource> = tracker
        .spec
        .managed_resources
        .iter()
        .filter(|r| {
            policies.gc_strategy(&ResourceFacts {
                component: &r.component,
                component_type: "",
                trait_type: (!r.trait_type.is_empty()).then_some(r.trait_type.as_str()),
                kind: &r.kind,
                name: &r.name,
            }) != GcStrategy::Never
        })
        .cloned()
        .collect();
    // Unreachable members never block the deletion; what fails is logged.
    futures::stream::iter(0..deletions.len())
        .for_each_concurrent(8, |i| {
            let (identity, deletions) = (&identity, &deletions);
            let (app_name, app_namespace) = (&app_name, &app_namespace);
            async move {
                delete_tracked(ctx, identity, &deletions[i], app_name, app_namespace).await;
            }
        })
        .await;
    let trackers: Api<ResourceTracker> = Api::all(ctx.hub_client.clone());
    match trackers
        .delete(
            &resource_tracker_name(&app_name, &app_namespace),
            &DeleteParams::default(),
        )
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(hub(e)),
    }
    let revisions: Api<ApplicationRevision> =
        Api::namespaced(ctx.hub_client.clone(), &app_namespace);
    if let Ok(list) = revisions
        .list(&ListParams::default().labels(&format!("{}={app_name}", labels::APP_NAME)))
        .await
    {
        for r in list.items {
            if let Some(n) = r.metadata.name {
                let _ = revisions.delete(&n, &DeleteParams::default()).await;
            }
        }
    }
    ctx.last_reassert
        .lock()
        .await
        .remove(&format!("{app_namespace}/{app_name}"));
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, cluster: &str, healthy: bool) -> ApplicationComponentStatus {
        ApplicationComponentStatus {
            name: name.into(),
            namespace: "default".into(),
            cluster: cluster.into(),
            healthy,
            ..Default::default()
        }
    }

    #[test]
    fn services_merge_by_component_cluster_and_namespace() {
        let mut services = vec![service("web", "a", false), service("web", "b", true)];
        merge_services(
            &mut services,
            vec![service("web", "a", true), service("db", "a", true)],
        );
        let got: Vec<(&str, &str, bool)> = services
            .iter()
            .map(|s| (s.name.as_str(), s.cluster.as_str(), s.healthy))
            .collect();
        assert_eq!(
            got,
            [("web", "a", true), ("web", "b", true), ("db", "a", true)]
        );
    }

    #[test]
    fn deploy_steps_include_sub_steps_in_order() {
        let steps: Vec<WorkflowStep> = serde_json::from_value(json!([
            {"name": "a", "type": "deploy"},
            {"name": "s", "type": "suspend"},
            {"name": "g", "type": "step-group", "subSteps": [
                {"name": "b", "type": "deploy"}, {"name": "c", "type": "suspend"}]},
        ]))
        .unwrap();
        let names: Vec<&str> = deploy_steps(&steps)
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(
            step_at(
                &steps,
                StepPath {
                    index: 2,
                    sub: Some(0)
                }
            )
            .map(|s| s.name.as_str()),
            Some("b")
        );
        assert!(
            step_at(
                &steps,
                StepPath {
                    index: 9,
                    sub: None
                }
            )
            .is_none()
        );
    }

    #[test]
    fn conditions_change_time_only_when_their_status_flips() {
        let mut status = ApplicationStatus::default();
        set_condition(&mut status, "Rendered", false, "RenderFailed", "bad");
        let first = status.conditions[0].last_transition_time.clone();
        status.conditions[0].last_transition_time = Some("then".into());
        set_condition(&mut status, "Rendered", false, "RenderFailed", "still bad");
        assert_eq!(
            status.conditions[0].last_transition_time.as_deref(),
            Some("then")
        );
        assert_eq!(status.conditions[0].message.as_deref(), Some("still bad"));
        set_condition(&mut status, "Rendered", true, "Rendered", "");
        assert_ne!(
            status.conditions[0].last_transition_time.as_deref(),
            Some("then")
        );
        assert!(first.is_some());
        assert_eq!(status.conditions[0].message, None);
    }

    #[test]
    fn tracked_resources_are_identified_without_component_or_trait() {
        let a = AppliedResource {
            cluster: "a".into(),
            api_version: "v1".into(),
            kind: "Service".into(),
            namespace: "default".into(),
            name: "web".into(),
            component: "web".into(),
            trait_type: "gateway".into(),
        };
        let mut b = a.clone();
        b.trait_type = "expose".into();
        assert_eq!(resource_key(&a), resource_key(&b));
        b.cluster = "b".into();
        assert_ne!(resource_key(&a), resource_key(&b));
    }
}
