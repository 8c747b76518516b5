//! The reconcile loop of one application. This file only wires: behind the finalizer it calls
//! the sub-reconcilers of `reconcile/` in order (revision → workflow → converge → gc →
//! status), or cleanup when the application is being deleted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla_apis::{Application, labels};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use tokio::sync::Mutex;

use super::dispatch;
use super::member_clients::{Identity, MemberClients};
use super::reconcile::{cleanup, converge, deploy, gc, revision, status, tracker, workflow};

/// The finalizer that makes deleting an application delete what it dispatched.
pub(crate) const FINALIZER: &str = "app.oam.dev/resource-tracker-finalizer";
/// How many revisions are kept per application unless the hub says otherwise
/// (`flotilla hub --application-revision-limit`).
pub(crate) const DEFAULT_REVISION_LIMIT: usize = 10;

/// How soon an application waiting for health looks again unless woken earlier
/// (`flotilla hub --application-health-recheck`).
pub(crate) const DEFAULT_HEALTH_RECHECK: Duration = Duration::from_secs(10);

/// How soon an application whose workflow has finished looks again by itself unless woken
/// earlier (`flotilla hub --application-resync-period`; KubeVela's `--application-re-sync-period`
/// is 5 minutes too).
pub(crate) const DEFAULT_RESYNC_PERIOD: Duration = Duration::from_secs(300);

/// Errors that make a reconcile retry with backoff.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The hub API failed.
    #[error("hub API: {0}")]
    Hub(#[source] Box<kube::Error>),
    /// The finalizer helper failed.
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

pub(crate) fn hub(e: kube::Error) -> Error {
    Error::Hub(Box::new(e))
}

/// Shared state of the controller.
pub(crate) struct Context {
    /// The controller's own hub client.
    pub hub_client: kube::Client,
    /// Member clients.
    pub members: MemberClients,
    /// How often dispatched state is re-asserted while an application runs.
    pub reassert_interval: Duration,
    /// How soon an application waiting for its objects' health looks again by itself; the
    /// drift watch wakes it earlier when an object's health changes.
    pub health_recheck: Duration,
    /// How soon an application whose workflow has finished looks again by itself: the drift
    /// watch wakes it when an object stops being healthy or is deleted (and corrects drift
    /// itself), the hub's watches when the application, its Policies or Workflow, or a
    /// ManagedCluster change.
    pub resync_period: Duration,
    /// Plural and scope of custom kinds, per cluster.
    pub kinds: dispatch::KindCache,
    /// How many revisions are kept per application.
    pub revision_limit: usize,
    pub(crate) last_reassert: Mutex<HashMap<String, Instant>>,
    /// The drift watch over every dispatched object.
    pub drift: Arc<super::drift_watch::DriftWatch>,
    /// Status writes of this controller, whose events trigger no pass.
    pub(crate) own_writes: Arc<super::own_writes::OwnWrites>,
}

impl Context {
    /// A context with the given re-assert interval, sending at most `requests_per_member`
    /// requests (watches aside) to each member at once.
    pub(crate) fn new(
        hub_client: kube::Client,
        reassert_interval: Duration,
        requests_per_member: usize,
    ) -> Self {
        let members =
            MemberClients::with_requests_per_member(hub_client.clone(), requests_per_member);
        Context {
            drift: super::drift_watch::DriftWatch::new(hub_client.clone(), members.clone()),
            members,
            hub_client,
            reassert_interval,
            health_recheck: DEFAULT_HEALTH_RECHECK,
            resync_period: DEFAULT_RESYNC_PERIOD,
            kinds: dispatch::KindCache::default(),
            revision_limit: DEFAULT_REVISION_LIMIT,
            last_reassert: Mutex::new(HashMap::new()),
            own_writes: Arc::default(),
        }
    }
}

/// Reconciles one application.
pub(crate) async fn reconcile(app: Arc<Application>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(app, ctx).await;
    super::metrics::observe_reconcile(started.elapsed(), result.is_ok());
    result
}

async fn reconcile_inner(cached: Arc<Application>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = cached.metadata.namespace.clone().unwrap_or_default();
    let name = cached.metadata.name.clone().unwrap_or_default();
    let api: Api<Application> = Api::namespaced(ctx.hub_client.clone(), &namespace);
    // The controller's cache keeps Applications without their status (mod.rs): each pass
    // starts from the application as the hub has it now, status included.
    let Some(app) = api.get_opt(&name).await.map_err(hub)? else {
        return Ok(Action::await_change());
    };
    let app = Arc::new(app);
    if cleanup::release_orphan(&app, &ctx).await? {
        return Ok(Action::await_change());
    }
    finalizer(&api, FINALIZER, app, |event| async {
        match event {
            FinalizerEvent::Apply(app) => apply(&app, &ctx).await,
            FinalizerEvent::Cleanup(app) => cleanup::reconcile(&app, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// The sub-reconcilers, in order.
async fn apply(app: &Application, ctx: &Context) -> Result<Action, Error> {
    let mut app_status = app.status.clone().unwrap_or_default();
    app_status.observed_generation = app.metadata.generation;
    let run = match revision::reconcile(app, ctx, &mut app_status).await? {
        Ok(run) => run,
        Err(message) => return status::spec_error(ctx, app, app_status, message).await,
    };
    status::set_condition(&mut app_status, "Rendered", true, "Rendered", "");
    let pass = pass(app, ctx, &run).await?;
    let mut wf = workflow::reconcile(&pass, &run, &mut app_status).await;
    let converged = converge::reconcile(&pass, &run, &mut wf, &mut app_status).await;
    gc::reconcile(&pass, &converged).await?;
    status::reconcile(app, &pass, wf, &converged, app_status).await
}

/// What every deploy step of this pass shares.
async fn pass<'a>(
    app: &Application,
    ctx: &'a Context,
    run: &'a revision::Revisioned,
) -> Result<deploy::Pass<'a>, Error> {
    let app_name = app.metadata.name.clone().unwrap_or_default();
    let app_namespace = app.metadata.namespace.clone().unwrap_or_default();
    let tracker = tracker::read(ctx, &app_name, &app_namespace).await?;
    let annotations = app.metadata.annotations.as_ref();
    let (clusters, available) = deploy::list_clusters(ctx).await?;
    Ok(deploy::Pass {
        app_ref: Arc::new(ObjectReference {
            api_version: Some(Application::API_VERSION.into()),
            kind: Some(Application::KIND.into()),
            name: Some(app_name.clone()),
            namespace: Some(app_namespace.clone()),
            uid: app.metadata.uid.clone(),
            ..Default::default()
        }),
        report_drift: annotations
            .and_then(|a| a.get(labels::DRIFT))
            .is_some_and(|v| v == "report"),
        ctx,
        app_name,
        app_namespace,
        identity: Arc::new(Identity::of(app.metadata.annotations.as_ref())),
        snapshot: &run.snapshot,
        revision: run.revision.name.clone(),
        clusters,
        available,
        policies: run.policies.clone(),
        tracker: Mutex::new(tracker),
        create_namespace: app
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(labels::CREATE_NAMESPACE))
            .is_some_and(|v| v == "true"),
    })
}
