//! The reconcile loop of one Argo CD Application: destination → source → compare → sync (when
//! requested or automated) → health → status. Bad input stops before anything is applied and
//! leaves the last synced state in the cluster.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flotilla_apis::{
    ArgoApplication, ArgoApplicationStatus, HealthStatus, REFRESH_ANNOTATION, RESOURCES_FINALIZER,
};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::destination::{self, Target};
use super::health;
use super::source::{Source, Sources};
use super::status::{self, COMPARISON_ERROR, INVALID_SPEC_ERROR, SYNC_ERROR};
use super::sync::{self, Planned};
use crate::application::dispatch::KindCache;
use crate::application::member_clients::{Identity, MemberClients};

/// Errors that make a reconcile retry with backoff.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The hub API failed.
    #[error("hub API: {0}")]
    Hub(#[source] Box<kube::Error>),
}

fn hub(e: kube::Error) -> Error {
    Error::Hub(Box::new(e))
}

/// Options of the GitOps controller.
#[derive(Debug, Clone)]
pub struct GitOpsOptions {
    /// Where fetched repositories are kept.
    pub cache_dir: PathBuf,
    /// How often each repository is fetched (without a push notification).
    pub poll_interval: Duration,
    /// How often live state is compared with Git (drift detection, self-heal).
    pub resync_interval: Duration,
}

/// Shared state of the controller.
pub(crate) struct Context {
    /// The controller's own hub client.
    pub hub_client: kube::Client,
    /// Clients for joined clusters.
    pub members: MemberClients,
    /// Plural and scope of kinds, per destination.
    pub kinds: KindCache,
    /// Fetched repositories.
    pub sources: Sources,
    /// How often live state is compared.
    pub resync_interval: Duration,
}

impl Context {
    /// A context for `hub_client`.
    pub(crate) fn new(hub_client: kube::Client, options: &GitOpsOptions) -> Self {
        Context {
            members: MemberClients::new(hub_client.clone()),
            hub_client,
            kinds: KindCache::default(),
            sources: Sources::new(options.cache_dir.clone(), options.poll_interval),
            resync_interval: options.resync_interval,
        }
    }
}

/// What a sync should do.
struct SyncRequest {
    prune: bool,
    create_namespace: bool,
}

fn wants_create_namespace(app: &ArgoApplication) -> bool {
    app.spec
        .sync_policy
        .as_ref()
        .is_some_and(|p| p.sync_options.iter().any(|o| o == "CreateNamespace=true"))
}

/// Whether to sync now: a requested operation always; automated sync when out of sync on a
/// new revision, or on the same one with self-heal.
fn decide(app: &ArgoApplication, planned: &[Planned], source: &Source) -> Option<SyncRequest> {
    let automated = app
        .spec
        .sync_policy
        .as_ref()
        .and_then(|p| p.automated.clone());
    let auto_prune = automated.as_ref().is_some_and(|a| a.prune);
    let create_namespace = wants_create_namespace(app);
    if let Some(op) = app.operation.as_ref().and_then(|o| o.get("sync")) {
        let prune = op
            .get("prune")
            .and_then(Value::as_bool)
            .unwrap_or(auto_prune);
        return Some(SyncRequest {
            prune,
            create_namespace,
        });
    }
    let automated = automated?;
    let out_of_sync = planned.iter().any(|p| {
        if p.orphan {
            automated.prune
        } else {
            !p.in_sync()
        }
    });
    if !out_of_sync {
        return None;
    }
    let last = app
        .status
        .as_ref()
        .and_then(|s| s.operation_state.as_ref())
        .and_then(|o| o.sync_result.as_ref())
        .map(|r| r.revision.as_str());
    (last != Some(source.revision.as_str()) || automated.self_heal).then_some(SyncRequest {
        prune: automated.prune,
        create_namespace,
    })
}

fn app_key(app: &ArgoApplication) -> (String, String) {
    (
        app.metadata.namespace.clone().unwrap_or_default(),
        app.metadata.name.clone().unwrap_or_default(),
    )
}

/// Records a failure before anything was applied: condition `kind`, sync status `Unknown`, a
/// requested operation marked `Error`. Resources, health and history stay as they were.
async fn fail(
    ctx: &Context,
    app: &ArgoApplication,
    kind: &str,
    message: &str,
) -> Result<Action, Error> {
    let mut status = app.status.clone().unwrap_or_default();
    status::set_condition(&mut status, kind, message);
    status.sync.status = "Unknown".into();
    if let Some(op) = &app.operation {
        status.operation_state = Some(status::errored(op.clone(), message));
    }
    status::write(&ctx.hub_client, app, status, true)
        .await
        .map_err(hub)?;
    Ok(Action::requeue(ctx.resync_interval))
}

/// The health and sync verdicts of what was observed.
fn summarize(status: &mut ArgoApplicationStatus, planned: &[Planned], revision: &str) {
    let mut verdicts = Vec::new();
    status.resources = planned
        .iter()
        .map(|p| {
            let mut r = p.resource_status();
            if !p.orphan {
                let h = health::of(p.live.as_ref());
                r.health = Some(HealthStatus {
                    status: h.status.into(),
                    message: h.message.clone(),
                });
                verdicts.push(h);
            }
            r
        })
        .collect();
    let worst = health::worst(&verdicts);
    status.health = HealthStatus {
        status: worst.status.into(),
        message: worst.message,
    };
    let synced = planned.iter().all(Planned::in_sync);
    status.sync.status = if synced { "Synced" } else { "OutOfSync" }.into();
    status.sync.revision = revision.to_string();
}

/// Reconciles one Argo CD Application.
pub(crate) async fn reconcile(
    app: Arc<ArgoApplication>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let (namespace, name) = app_key(&app);
    if app.metadata.deletion_timestamp.is_some() {
        return finalize(&app, &ctx).await;
    }
    if app.spec.project != "default" {
        let message = format!(
            "application references project {:?} which does not exist",
            app.spec.project
        );
        return fail(&ctx, &app, INVALID_SPEC_ERROR, &message).await;
    }
    let identity = Identity::of(app.metadata.annotations.as_ref());
    let target = match destination::connect(
        &ctx.hub_client,
        &ctx.members,
        &app.spec.destination,
        &identity,
    )
    .await
    {
        Ok(t) => t,
        Err(message) => return fail(&ctx, &app, INVALID_SPEC_ERROR, &message).await,
    };
    let refresh = app
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(REFRESH_ANNOTATION));
    let force = refresh || app.operation.is_some();
    let source = match ctx
        .sources
        .load(&ctx.hub_client, &namespace, &app.spec.source, force)
        .await
    {
        Ok(s) => s,
        Err(message) => return fail(&ctx, &app, COMPARISON_ERROR, &message).await,
    };
    let previous = app.status.clone().unwrap_or_default();
    let app_id = sync::app_id(&namespace, &name);
    let mut planned = match sync::observe(
        &target,
        &ctx.kinds,
        &source.manifests,
        &previous.resources,
        &app_id,
    )
    .await
    {
        Ok(p) => p,
        Err(message) => return fail(&ctx, &app, COMPARISON_ERROR, &message).await,
    };
    let mut status = previous.clone();
    status::clear_condition(&mut status, COMPARISON_ERROR);
    status::clear_condition(&mut status, INVALID_SPEC_ERROR);
    if let Some(request) = decide(&app, &planned, &source) {
        planned = sync_now(&ctx, &app, &target, &source, planned, &request, &mut status).await?;
    }
    summarize(&mut status, &planned, &source.revision);
    status::write(&ctx.hub_client, &app, status, true)
        .await
        .map_err(hub)?;
    Ok(Action::requeue(ctx.resync_interval))
}

/// Runs one sync and observes the result again.
async fn sync_now(
    ctx: &Context,
    app: &ArgoApplication,
    target: &Target,
    source: &Source,
    planned: Vec<Planned>,
    request: &SyncRequest,
    status: &mut ArgoApplicationStatus,
) -> Result<Vec<Planned>, Error> {
    let (namespace, name) = app_key(app);
    let started_at = status::now();
    let operation = status::operation_of(app.operation.as_ref(), &source.revision);
    let results = if request.create_namespace {
        match sync::create_namespace(target).await {
            Ok(()) => sync::run(target, &planned, request.prune).await,
            Err(message) => {
                status::set_condition(status, SYNC_ERROR, &message);
                status.operation_state = Some(status::errored(operation, &message));
                return Ok(planned);
            }
        }
    } else {
        sync::run(target, &planned, request.prune).await
    };
    let state = status::finished(operation, started_at, &source.revision, results);
    if state.phase == "Succeeded" {
        status::clear_condition(status, SYNC_ERROR);
        status::push_history(status, &source.revision, &app.spec.source);
    } else {
        status::set_condition(status, SYNC_ERROR, &state.message);
    }
    tracing::info!(app = %format!("{namespace}/{name}"), revision = %source.revision,
        phase = %state.phase, "gitops sync");
    status.operation_state = Some(state);
    // Pruned objects leave the tracked set; the rest is read back.
    let previous: Vec<_> = status
        .resources
        .iter()
        .filter(|r| r.requires_pruning != Some(true) || !request.prune)
        .cloned()
        .collect();
    let app_id = sync::app_id(&namespace, &name);
    Ok(
        sync::observe(target, &ctx.kinds, &source.manifests, &previous, &app_id)
            .await
            .unwrap_or(planned),
    )
}

/// Deletion: with the resources finalizer, delete what was synced, then let the object go.
async fn finalize(app: &ArgoApplication, ctx: &Context) -> Result<Action, Error> {
    let finalizers = app.metadata.finalizers.clone().unwrap_or_default();
    if !finalizers.iter().any(|f| f == RESOURCES_FINALIZER) {
        return Ok(Action::await_change());
    }
    let (namespace, name) = app_key(app);
    let identity = Identity::of(app.metadata.annotations.as_ref());
    let previous = app.status.clone().unwrap_or_default().resources;
    let target = destination::connect(
        &ctx.hub_client,
        &ctx.members,
        &app.spec.destination,
        &identity,
    )
    .await;
    if let Ok(target) = target {
        let app_id = sync::app_id(&namespace, &name);
        match sync::observe(&target, &ctx.kinds, &[], &previous, &app_id).await {
            Ok(planned) => {
                let results = sync::delete_all(&target, &planned).await;
                if results.iter().any(|r| r.status == "SyncFailed") {
                    tracing::warn!(app = %name, "gitops: some objects could not be deleted; retrying");
                    return Ok(Action::requeue(ctx.resync_interval));
                }
            }
            Err(message) => {
                tracing::warn!(app = %name, %message, "gitops: destination unreachable; retrying deletion");
                return Ok(Action::requeue(ctx.resync_interval));
            }
        }
    }
    // An unknown destination has nothing left to delete.
    let remaining: Vec<String> = finalizers
        .into_iter()
        .filter(|f| f != RESOURCES_FINALIZER)
        .collect();
    let patch = json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": app.metadata.resource_version},
        {"op": "replace", "path": "/metadata/finalizers", "value": remaining},
    ]);
    let patch: json_patch::Patch = serde_json::from_value(patch).expect("a valid JSON patch");
    Api::<ArgoApplication>::namespaced(ctx.hub_client.clone(), &namespace)
        .patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .map_err(hub)?;
    Ok(Action::await_change())
}
