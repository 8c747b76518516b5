//! One deploy step: override → render → place (`plan`), then dispatch and health per
//! component × cluster (`execute`). Shared by the workflow and converge sub-reconcilers.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Instant;

use flotilla_apis::{
    ApplicationComponentStatus, AppliedResource, ManagedCluster, ResourceTracker, WorkflowStep,
};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::super::controller::{Context, Error, hub};
use super::super::desired_object::DesiredObject;
use super::super::dispatch::{self, Target, describe};
use super::super::drift_watch::Desired;
use super::super::health::{Observed, component_status};
use super::super::member_clients::Identity;
use super::super::placement::{self, ClusterInfo, Placement};
use super::super::render::RenderedComponent;
use super::super::resource_policy::{ResourceFacts, ResourcePolicies};
use super::super::revision::Snapshot;
use super::super::step_plan;
use super::super::workflow::Outcome;
use super::tracker;

/// One prepared object of a component in a cluster, kept as compact JSON until its task
/// runs: a pass plans every cluster's objects at once, and decoded (a `Value` is several
/// times the size of its JSON) they were the largest part of the hub's peak.
struct PlannedObject {
    /// The prepared object, as dispatch applies it.
    json: Arc<[u8]>,
    /// Its apiVersion, kind, namespace and name.
    id: ObjectId,
    kind: dispatch::KindInfo,
    trait_type: Option<String>,
}

/// What names an object.
struct ObjectId {
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
}

impl PlannedObject {
    fn new(object: &Value, kind: dispatch::KindInfo, trait_type: Option<String>) -> Self {
        let text = |p: &str| {
            object
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        PlannedObject {
            json: serde_json::to_vec(object).unwrap_or_default().into(),
            id: ObjectId {
                api_version: text("/apiVersion"),
                kind: text("/kind"),
                namespace: text("/metadata/namespace"),
                name: text("/metadata/name"),
            },
            kind,
            trait_type,
        }
    }

    /// The prepared object, decoded.
    fn object(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or_default()
    }

    /// `Kind namespace/name`, as [`describe`] says it.
    fn describe(&self) -> String {
        dispatch::describe_named(&self.id.kind, &self.id.namespace, &self.id.name)
    }
}

/// One component in one cluster.
struct Task {
    component: usize,
    /// The step and component, hashed: the drift watch wakes the application when the
    /// objects of one group are all healthy (`desired_set.rs`).
    group: u64,
    placement: Placement,
    objects: Vec<PlannedObject>,
    namespace: String,
}

enum TaskResult {
    /// Applied; the status and the first object as read back, as JSON (all that the step's
    /// output needs: a pass holds every task's result until it ends, and decoded objects
    /// were most of the hub's peak memory).
    Done(ApplicationComponentStatus, Option<Vec<u8>>),
    Failed(String),
    /// Refused for now; the cluster may accept it later (retried with backoff).
    Retry(String),
    Unreachable(String, String),
}

/// What a deploy step did.
#[derive(Default)]
pub(crate) struct DeployResult {
    /// How the step went (always set).
    pub(crate) outcome: Option<Outcome>,
    /// One entry per component per cluster reached.
    pub(crate) services: Vec<ApplicationComponentStatus>,
    /// Every object the step produced (recorded in the tracker).
    pub(crate) produced: Vec<AppliedResource>,
    /// Clusters that could not be reached.
    pub(crate) unreachable: BTreeSet<String>,
    /// The step's output for its `outputs`: `{"value": <the first object, as read back>}`.
    pub(crate) output: Option<Value>,
}

impl DeployResult {
    fn failed(message: impl Into<String>) -> DeployResult {
        DeployResult::ended(Outcome::Failed(message.into()))
    }

    pub(crate) fn ended(outcome: Outcome) -> DeployResult {
        DeployResult {
            outcome: Some(outcome),
            ..Default::default()
        }
    }
}

/// One pass over an application: what every deploy step shares.
pub(crate) struct Pass<'a> {
    pub(crate) ctx: &'a Context,
    pub(crate) app_name: String,
    pub(crate) app_namespace: String,
    pub(crate) identity: Arc<Identity>,
    pub(crate) snapshot: &'a Snapshot,
    pub(crate) revision: String,
    pub(crate) clusters: Vec<ClusterInfo>,
    /// The clusters whose ManagedCluster says they are available (and `local`): only there
    /// is the drift watch's last word on an object taken instead of a read.
    pub(crate) available: HashSet<String>,
    pub(crate) policies: ResourcePolicies,
    pub(crate) tracker: Mutex<ResourceTracker>,
    pub(crate) create_namespace: bool,
    /// The application, for Events (shared with the drift watch's entries).
    pub(crate) app_ref: Arc<ObjectReference>,
    /// `app.oam.dev/drift: report`: drift is listed, not corrected.
    pub(crate) report_drift: bool,
}

/// The registered clusters and their labels, and the names of those available (with
/// `local`, the hub itself).
pub(crate) async fn list_clusters(
    ctx: &Context,
) -> Result<(Vec<ClusterInfo>, HashSet<String>), Error> {
    let api: Api<ManagedCluster> = Api::all(ctx.hub_client.clone());
    let items = api.list(&ListParams::default()).await.map_err(hub)?.items;
    let mut available: HashSet<String> = items
        .iter()
        .filter(|c| c.is_available())
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    available.insert(flotilla_apis::LOCAL_CLUSTER.to_string());
    let clusters = items
        .into_iter()
        .map(|c| ClusterInfo {
            name: c.metadata.name.unwrap_or_default(),
            labels: c.metadata.labels.unwrap_or_default(),
        })
        .collect();
    Ok((clusters, available))
}

/// The step's plan: rendered components and one task per component × cluster.
struct Plan {
    /// The step's name (with each component's, the tasks' wake-up groups).
    step: String,
    rendered: Vec<RenderedComponent>,
    tasks: Vec<Task>,
    planned: Vec<AppliedResource>,
    parallelism: usize,
    /// The step gives no outputs: an object's health may come from the drift watch (an
    /// output needs the object as read).
    no_outputs: bool,
}

impl Pass<'_> {
    async fn track(&self, entries: &[AppliedResource]) -> Result<(), Error> {
        let mut tracker = self.tracker.lock().await;
        if tracker::merge(&mut tracker, entries) {
            tracker::write(self.ctx, &mut tracker).await?;
        }
        Ok(())
    }

    /// Runs one deploy step; `force` re-applies unchanged objects.
    pub(crate) async fn deploy(&self, step: &WorkflowStep, force: bool) -> DeployResult {
        let plan = match self.plan(step).await {
            Ok(plan) => plan,
            Err(outcome) => return DeployResult::ended(outcome),
        };
        if let Err(e) = self.track(&plan.planned).await {
            return DeployResult::failed(format!("cannot record dispatched resources: {e}"));
        }
        self.execute(plan, force).await
    }

    /// The step planned (`step_plan`) and prepared for every cluster; an error is the step's
    /// outcome (failed, or retried when the cluster may accept it later).
    async fn plan(&self, step: &WorkflowStep) -> Result<Plan, Outcome> {
        let step_plan = step_plan::plan(
            self.snapshot,
            step,
            &self.clusters,
            &self.app_name,
            &self.app_namespace,
        )
        .map_err(Outcome::Failed)?;
        let mut plan = Plan {
            step: step.name.clone(),
            rendered: step_plan.components,
            tasks: Vec::new(),
            planned: Vec::new(),
            parallelism: step_plan.parallelism,
            no_outputs: step.outputs.is_empty(),
        };
        for (placement, pinned_only) in &step_plan.targets {
            self.plan_cluster(placement, *pinned_only, &mut plan)
                .await?;
        }
        Ok(plan)
    }

    /// Prepares every rendered component for one cluster: the objects pinned there, and unless
    /// `pinned_only` (the cluster is there only for pins) the unpinned ones.
    async fn plan_cluster(
        &self,
        placement: &Placement,
        pinned_only: bool,
        plan: &mut Plan,
    ) -> Result<(), Outcome> {
        // Scope and plural of kinds outside the built-in table come from the cluster.
        let client = self
            .ctx
            .members
            .as_user(&placement.cluster, &self.identity)
            .await
            .ok();
        for (index, component) in plan.rendered.iter().enumerate() {
            let target = Target {
                app_name: &self.app_name,
                app_namespace: &self.app_namespace,
                component: &component.name,
                cluster: &placement.cluster,
                revision: &self.revision,
                namespace: placement.namespace.as_deref(),
            };
            let mut objects = Vec::new();
            for o in step_plan::objects_for(component, &placement.cluster, pinned_only) {
                let api_version = o.object["apiVersion"].as_str().unwrap_or_default();
                let kind_name = o.object["kind"].as_str().unwrap_or_default();
                let kind = match &client {
                    Some(c) => self
                        .ctx
                        .kinds
                        .resolve(c, &placement.cluster, api_version, kind_name)
                        .await
                        .map_err(|e| {
                            let message = format!("cluster {}: {e}", placement.cluster);
                            if e.may_succeed_later() {
                                Outcome::Retrying(message)
                            } else {
                                Outcome::Failed(message)
                            }
                        })?,
                    None => dispatch::KindInfo::of(api_version, kind_name),
                };
                let prepared = dispatch::prepare(&o.object, &target, kind.namespaced);
                objects.push(PlannedObject::new(&prepared, kind, o.trait_type.clone()));
            }
            if objects.is_empty() {
                continue;
            }
            for o in &objects {
                plan.planned
                    .push(applied_resource(&placement.cluster, &component.name, o));
            }
            let namespace = objects
                .first()
                .map(|o| o.id.namespace.clone())
                .filter(|ns| !ns.is_empty())
                .or_else(|| placement.namespace.clone())
                .unwrap_or_else(|| self.app_namespace.clone());
            plan.tasks.push(Task {
                component: index,
                group: wake_group(&plan.step, &component.name),
                placement: placement.clone(),
                objects,
                namespace,
            });
        }
        Ok(())
    }

    /// Dispatches every task (up to `parallelism` at once) and sums up the outcome.
    async fn execute(&self, plan: Plan, force: bool) -> DeployResult {
        let results = self.run_in_dependency_order(&plan, force).await;
        let tasks = &plan.tasks;
        let mut result = DeployResult {
            produced: plan.planned,
            ..Default::default()
        };
        let mut failures = Vec::new();
        let mut retrying = Vec::new();
        let mut waiting = Vec::new();
        for (r, task) in results.into_iter().zip(tasks) {
            let Some(r) = r else {
                let component = &plan.rendered[task.component].name;
                waiting.push(format!(
                    "component {component} waits for {} (dependsOn)",
                    self.depends_on(component).join(", ")
                ));
                continue;
            };
            match r {
                TaskResult::Done(status, live) => {
                    if result.output.is_none() {
                        result.output = live
                            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
                            .map(|v| json!({"value": v}));
                    }
                    if !status.healthy {
                        waiting.push(unhealthy_message(&status, task));
                    }
                    result.services.push(status);
                }
                TaskResult::Failed(message) => failures.push(message),
                TaskResult::Retry(message) => retrying.push(message),
                TaskResult::Unreachable(cluster, message) => {
                    result.unreachable.insert(cluster);
                    waiting.push(message);
                }
            }
        }
        failures.dedup();
        retrying.dedup();
        waiting.dedup();
        result.outcome = Some(if !failures.is_empty() {
            Outcome::Failed(failures.join("; "))
        } else if !retrying.is_empty() {
            Outcome::Retrying(retrying.join("; "))
        } else if !waiting.is_empty() {
            Outcome::Waiting(waiting.join(", "))
        } else {
            Outcome::Succeeded
        });
        result
    }

    /// The components `component` depends on (`dependsOn`).
    fn depends_on(&self, component: &str) -> Vec<String> {
        self.snapshot
            .spec
            .components
            .iter()
            .find(|c| c.name == component)
            .map(|c| c.depends_on.clone())
            .unwrap_or_default()
    }

    /// Dispatches the tasks in waves (up to `parallelism` at once): a component whose
    /// `dependsOn` components of this step are not all healthy yet waits (`None`) for a later
    /// wave, or for a later pass.
    async fn run_in_dependency_order(&self, plan: &Plan, force: bool) -> Vec<Option<TaskResult>> {
        let (tasks, rendered) = (&plan.tasks, &plan.rendered);
        let mut results: Vec<Option<TaskResult>> = tasks.iter().map(|_| None).collect();
        loop {
            // Components of this step that are healthy everywhere they went so far.
            let healthy: BTreeSet<&str> = rendered
                .iter()
                .enumerate()
                .filter(|(index, _)| {
                    tasks.iter().zip(&results).all(|(t, r)| {
                        t.component != *index
                            || matches!(r, Some(TaskResult::Done(status, _)) if status.healthy)
                    })
                })
                .map(|(_, c)| c.name.as_str())
                .collect();
            let wave: Vec<usize> = (0..tasks.len())
                .filter(|&i| results[i].is_none())
                .filter(|&i| {
                    self.depends_on(&rendered[tasks[i].component].name)
                        .iter()
                        .all(|d| {
                            healthy.contains(d.as_str()) || !rendered.iter().any(|c| &c.name == d)
                        })
                })
                .collect();
            if wave.is_empty() {
                return results;
            }
            // A sliding window: the next cluster starts as soon as any one finishes (a
            // finished cluster never waits behind a slower one started before it).
            let done: Vec<(usize, TaskResult)> = futures::stream::iter(wave)
                .map(|i| async move {
                    let task = &tasks[i];
                    let reads = Reads {
                        force,
                        trust_watch: !force
                            && plan.no_outputs
                            && self.available.contains(&task.placement.cluster),
                    };
                    let result = self
                        .dispatch_task(&rendered[task.component], task, reads)
                        .await;
                    (i, result)
                })
                .buffer_unordered(plan.parallelism)
                .collect()
                .await;
            for (i, r) in done {
                results[i] = Some(r);
            }
        }
    }

    async fn dispatch_task(
        &self,
        rendered: &RenderedComponent,
        task: &Task,
        reads: Reads,
    ) -> TaskResult {
        let started = Instant::now();
        let result = self.dispatch_task_inner(rendered, task, reads).await;
        super::super::metrics::observe_dispatch(&task.placement.cluster, started.elapsed());
        result
    }

    async fn dispatch_task_inner(
        &self,
        rendered: &RenderedComponent,
        task: &Task,
        reads: Reads,
    ) -> TaskResult {
        let cluster = task.placement.cluster.as_str();
        let client = match self.ctx.members.as_user(cluster, &self.identity).await {
            Ok(c) => c,
            Err(e) => return TaskResult::Failed(e.to_string()),
        };
        if self.create_namespace
            && let Err(failed) = self.ensure_namespaces(&client, cluster, task).await
        {
            return failed;
        }
        // Each object as the cluster holds it, for health: the apply's own read for an object
        // left as it was; none for an object the drift watch has seen as desired since it
        // was last written (its last event is the object's state). A written one is judged
        // by the write's answer when the drift watch follows it (what its cluster does next
        // comes as events, which wake the application when its health changes) or its kind
        // is one no cluster acts on; otherwise it is read again after all are applied.
        let mut live = Vec::with_capacity(task.objects.len());
        let mut from_watch: Vec<Option<Observed>> = vec![None; task.objects.len()];
        let mut written = Vec::new();
        let mut watched_objects = Vec::new();
        let objects: Vec<Value> = task.objects.iter().map(PlannedObject::object).collect();
        for (o, prepared) in task.objects.iter().zip(&objects) {
            let mut options = self.policies.apply_options(&facts(rendered, o));
            options.force = reads.force;
            let watched = !options.read_only && !options.apply_once_all;
            // A shared object's sharers are joined by the apply.
            let followed = watched && reads.trust_watch && !options.shared;
            if watched {
                watched_objects.push(live.len());
                self.ctx.drift.register(
                    cluster,
                    prepared,
                    self.desired(cluster, prepared, o, &options, task.group),
                );
                if followed && let Some(seen) = self.ctx.drift.verified(cluster, prepared) {
                    from_watch[live.len()] = Some(seen);
                    live.push(None);
                    continue;
                }
            }
            let applied = dispatch::apply(
                &client,
                prepared,
                &o.kind,
                &self.app_name,
                &self.app_namespace,
                &options,
            )
            .await;
            if watched && matches!(applied, Ok((dispatch::Applied::Skipped, _))) {
                self.forget(cluster, o);
            }
            match applied {
                // Nothing in a cluster changes these after a write, or the drift watch
                // reports what it does: the write's answer is the object as it stands.
                Ok((dispatch::Applied::Written, object))
                    if followed || !read_back_needed(prepared) =>
                {
                    live.push(Some(object));
                }
                Ok((dispatch::Applied::Written, _)) => {
                    written.push(live.len());
                    live.push(None);
                }
                Ok((_, object)) => live.push(Some(object)),
                Err(e) if e.is_unreachable() => return self.unreachable(cluster, &e).await,
                Err(e) => {
                    let message = format!(
                        "failed to apply {} in cluster {cluster}: {e}",
                        describe(prepared)
                    );
                    if e.may_succeed_later() {
                        return TaskResult::Retry(message);
                    }
                    return TaskResult::Failed(message);
                }
            }
        }
        if let Err(failed) = read_back(&client, cluster, &task.objects, &written, &mut live).await {
            return failed;
        }
        let observed: Vec<Option<Observed>> = live
            .iter()
            .zip(&from_watch)
            .map(|(read, seen)| seen.clone().or_else(|| read.as_ref().map(Observed::of)))
            .collect();
        // What the drift watch's events are compared with, to wake the application when an
        // object's health changes (what the watch itself said needs no judging).
        for i in watched_objects {
            if from_watch[i].is_none() {
                let healthy = observed[i].as_ref().is_some_and(|o| o.healthy);
                self.ctx.drift.judged(cluster, &objects[i], healthy);
            }
        }
        let status = component_status(rendered, cluster, &task.namespace, &observed);
        let first = live.iter().flatten().next();
        TaskResult::Done(status, first.and_then(|v| serde_json::to_vec(v).ok()))
    }

    fn desired(
        &self,
        cluster: &str,
        prepared: &Value,
        o: &PlannedObject,
        options: &dispatch::ApplyOptions,
        group: u64,
    ) -> Desired {
        Desired {
            object: DesiredObject::of(prepared, cluster),
            kind: o.kind.clone(),
            exempt: options.apply_once_paths.clone(),
            identity: self.identity.clone(),
            app: self.app_ref.clone(),
            report: self.report_drift,
            health: None,
            group,
            verified: None,
        }
    }

    fn forget(&self, cluster: &str, o: &PlannedObject) {
        let id = &o.id;
        self.ctx
            .drift
            .forget(cluster, &id.api_version, &id.kind, &id.namespace, &id.name);
    }

    async fn unreachable(&self, cluster: &str, e: &dispatch::Error) -> TaskResult {
        self.ctx.members.forget(cluster).await;
        TaskResult::Unreachable(
            cluster.to_string(),
            format!("cluster {cluster} is unreachable: {e}"),
        )
    }

    /// Creates the task's target namespaces (the `flotilla.io/create-namespace` opt-in).
    async fn ensure_namespaces(
        &self,
        client: &kube::Client,
        cluster: &str,
        task: &Task,
    ) -> Result<(), TaskResult> {
        let mut namespaces: Vec<&str> = task
            .objects
            .iter()
            .map(|o| o.id.namespace.as_str())
            .filter(|ns| !ns.is_empty())
            .collect();
        namespaces.sort_unstable();
        namespaces.dedup();
        for namespace in namespaces {
            if let Err(e) = dispatch::ensure_namespace(client, namespace).await {
                if e.is_unreachable() {
                    return Err(self.unreachable(cluster, &e).await);
                }
                return Err(TaskResult::Failed(format!(
                    "failed to create namespace {namespace} in cluster {cluster}: {e}"
                )));
            }
        }
        Ok(())
    }
}

/// How a task reads its objects.
#[derive(Clone, Copy)]
struct Reads {
    /// Re-assert: compare every object with its desired state (read each one).
    force: bool,
    /// Take the drift watch's last word on an object it has seen as desired instead of
    /// reading it, and judge a written object by the write's answer (the watch reports
    /// what its cluster does with it).
    trust_watch: bool,
}

/// Why a component is not healthy yet: a workload on `local` never will be (the hub runs no
/// workloads), which the message says at once.
fn unhealthy_message(status: &ApplicationComponentStatus, task: &Task) -> String {
    let workload = task
        .objects
        .iter()
        .find(|o| placement::is_workload_kind(&o.id.kind));
    match workload {
        Some(o) if status.cluster == flotilla_apis::LOCAL_CLUSTER => format!(
            "{} on cluster local will never become healthy: the hub runs no workloads; \
             place the component on a member cluster with a topology policy",
            o.describe()
        ),
        _ => format!(
            "{}/{}/{} is not healthy",
            status.cluster, status.namespace, status.name
        ),
    }
}

/// Whether a written object must be read again for its health: true unless its kind has no
/// status and nothing in a cluster rewrites it (ConfigMap, Secret, Role, RoleBinding,
/// ClusterRoleBinding), so that the server-side apply's answer already is the object as the
/// cluster holds it. A ClusterRole is read again (aggregation fills in its rules).
fn read_back_needed(object: &Value) -> bool {
    let kind = object["kind"].as_str().unwrap_or_default();
    match object["apiVersion"].as_str().unwrap_or_default() {
        "v1" => !matches!(kind, "ConfigMap" | "Secret"),
        "rbac.authorization.k8s.io/v1" => {
            !matches!(kind, "Role" | "RoleBinding" | "ClusterRoleBinding")
        }
        _ => true,
    }
}

/// The wake-up group of a component's objects in a step.
fn wake_group(step: &str, component: &str) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (step, component).hash(&mut hasher);
    hasher.finish()
}

/// Reads `objects[i]` for every `i` in `indices` into `live[i]`.
async fn read_back(
    client: &kube::Client,
    cluster: &str,
    objects: &[PlannedObject],
    indices: &[usize],
    live: &mut [Option<Value>],
) -> Result<(), TaskResult> {
    for &i in indices {
        let o = &objects[i];
        let read = dispatch::get(
            client,
            &o.id.api_version,
            &o.id.kind,
            &o.kind,
            &o.id.namespace,
            &o.id.name,
        )
        .await;
        live[i] = match read {
            Ok(v) => v,
            Err(e) if e.is_unreachable() => {
                return Err(TaskResult::Unreachable(
                    cluster.to_string(),
                    format!("cluster {cluster} is unreachable: {e}"),
                ));
            }
            Err(e) => {
                return Err(TaskResult::Failed(format!(
                    "failed to read {} in cluster {cluster}: {e}",
                    o.describe()
                )));
            }
        };
    }
    Ok(())
}

fn facts<'a>(rendered: &'a RenderedComponent, o: &'a PlannedObject) -> ResourceFacts<'a> {
    ResourceFacts {
        component: &rendered.name,
        component_type: &rendered.component_type,
        trait_type: o.trait_type.as_deref(),
        kind: &o.id.kind,
        name: &o.id.name,
    }
}

fn applied_resource(cluster: &str, component: &str, o: &PlannedObject) -> AppliedResource {
    AppliedResource {
        cluster: cluster.to_string(),
        api_version: o.id.api_version.clone(),
        kind: o.id.kind.clone(),
        namespace: o.id.namespace.clone(),
        name: o.id.name.clone(),
        component: component.to_string(),
        trait_type: o.trait_type.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planned_object_keeps_the_prepared_object_and_what_names_it() {
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "prod", "labels": {"a": "b"}},
            "spec": {"replicas": 2}});
        let o = PlannedObject::new(
            &deployment,
            dispatch::KindInfo::of("apps/v1", "Deployment"),
            None,
        );
        assert_eq!(o.object(), deployment, "decodes to the prepared object");
        assert_eq!(
            (o.id.api_version.as_str(), o.id.kind.as_str()),
            ("apps/v1", "Deployment")
        );
        assert_eq!(
            (o.id.namespace.as_str(), o.id.name.as_str()),
            ("prod", "web")
        );
        assert_eq!(o.describe(), describe(&deployment));
        assert_eq!(o.describe(), "Deployment prod/web");
        let cluster_role = json!({"apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole", "metadata": {"name": "reader"}});
        let o = PlannedObject::new(
            &cluster_role,
            dispatch::KindInfo::of("rbac.authorization.k8s.io/v1", "ClusterRole"),
            None,
        );
        assert_eq!(o.id.namespace, "");
        assert_eq!(o.describe(), describe(&cluster_role));
        assert_eq!(o.describe(), "ClusterRole reader");
    }

    #[test]
    fn only_kinds_a_cluster_acts_on_are_read_back_after_a_write() {
        let object =
            |api_version: &str, kind: &str| json!({"apiVersion": api_version, "kind": kind});
        assert!(!read_back_needed(&object("v1", "ConfigMap")));
        assert!(!read_back_needed(&object("v1", "Secret")));
        assert!(!read_back_needed(&object(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding"
        )));
        for (api_version, kind) in [
            ("apps/v1", "Deployment"),
            ("v1", "Service"),
            ("v1", "PersistentVolumeClaim"),
            ("networking.k8s.io/v1", "Ingress"),
            ("rbac.authorization.k8s.io/v1", "ClusterRole"),
            ("example.com/v1", "ConfigMap"),
        ] {
            assert!(read_back_needed(&object(api_version, kind)), "{kind}");
        }
    }
}
