//! The application controller (see README.md in this folder): render → place → override →
//! workflow → dispatch → health → gc, driven by watches on the hub.

pub(crate) mod controller;
mod desired_object;
mod desired_set;
pub mod dispatch;
pub(crate) mod drift;
pub(crate) mod drift_watch;
pub mod health;
pub mod member_clients;
pub mod metrics;
pub(crate) mod notification;
pub(crate) mod r#override;
mod own_writes;
pub(crate) mod pending_cleanup;
pub mod placement;
pub mod preview;
mod reconcile;
pub(crate) mod render;
pub(crate) mod resource_policy;
pub(crate) mod revision;
pub(crate) mod shared_by;
pub(crate) mod step_plan;
pub(crate) mod workflow;
pub(crate) mod workflow_condition;
pub(crate) mod workflow_io;

use crate::error_backoff::ErrorBackoff;
use std::sync::Arc;
use std::time::Duration;

use flotilla_apis::{Application, ManagedCluster, Policy, Workflow};
use futures::{StreamExt as _, TryStreamExt as _};
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};

/// Environment variable: seconds between re-assertions of dispatched state (default 300).
pub(crate) const REASSERT_INTERVAL_ENV: &str = "FLOTILLA_REASSERT_INTERVAL_SECONDS";

fn apps_in(store: &Store<Application>, namespace: Option<&str>) -> Vec<ObjectRef<Application>> {
    store
        .state()
        .iter()
        .filter(|a| namespace.is_none() || a.metadata.namespace.as_deref() == namespace)
        .map(|a| ObjectRef::from(a.as_ref()))
        .collect()
}

/// What the controller's cache keeps of an Application: its metadata and spec. The status
/// (an entry per cluster and component) and the managed fields were most of what the cache
/// held at fleet size, and a pass reads its application afresh (`controller.rs`); the watch
/// events themselves, status included, still decide which are the controller's own writes.
/// Copied without the status rather than cloned whole and trimmed: every status write of
/// every Application comes through here.
fn without_status(app: &Application) -> Application {
    let mut metadata = app.metadata.clone();
    metadata.managed_fields = None;
    Application {
        api_version: app.api_version.clone(),
        kind: app.kind.clone(),
        metadata,
        spec: app.spec.clone(),
        status: None,
    }
}

/// A watch event as the controller's cache records it ([`without_status`]).
fn cached(event: &watcher::Event<Application>) -> watcher::Event<Application> {
    use watcher::Event::{Apply, Delete, Init, InitApply, InitDone};
    match event {
        Apply(app) => Apply(without_status(app)),
        Delete(app) => Delete(without_status(app)),
        InitApply(app) => InitApply(without_status(app)),
        Init => Init,
        InitDone => InitDone,
    }
}

/// Runs the application controller against the hub with the hub's options: how many
/// revisions are kept per application, how many requests go to a member at once and how many
/// applications reconcile at once.
pub(crate) async fn run(
    hub_client: kube::Client,
    options: &crate::hub::HubControllerOptions,
) -> anyhow::Result<()> {
    let reassert = std::env::var(REASSERT_INTERVAL_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(300));
    let mut ctx = controller::Context::new(
        hub_client.clone(),
        reassert,
        options.member_request_concurrency,
    );
    ctx.revision_limit = options.application_revision_limit.max(1);
    ctx.health_recheck = options
        .application_health_recheck
        .max(Duration::from_millis(100));
    ctx.resync_period = options
        .application_resync_period
        .max(Duration::from_secs(1));
    let wakeups = ctx.drift.wakeups();
    let ctx = Arc::new(ctx);
    let retry_cleanups = tokio::spawn(pending_cleanup::run(Arc::clone(&ctx)));
    let config = watcher::Config::default();
    let apps: Api<Application> = Api::all(hub_client.clone());
    // Bounded so that a large fan-out (many applications changed at once, a hub restart, a
    // cluster join re-placing everything) holds only this many passes' rendered objects and
    // member answers at a time; 0 would be unbounded.
    // The controller's own status writes do not trigger another pass (own_writes.rs).
    let (reader, mut writer) = reflector::store();
    let own = Arc::clone(&ctx.own_writes);
    let applications = watcher(apps, config.clone())
        .map_ok(move |event| {
            writer.apply_watcher_event(&cached(&event));
            event
        })
        .applied_objects()
        .try_filter(move |app| futures::future::ready(!own.is_own(app)));
    let app_controller = Controller::for_stream(applications, reader).with_config(
        kube::runtime::controller::Config::default()
            .concurrency(options.application_concurrency.max(1)),
    );
    let backoff = ErrorBackoff::shared();
    let store = app_controller.store();
    let (s1, s2, s3) = (store.clone(), store.clone(), store);
    let app_controller = match wakeups {
        // An object's health changed: its application looks at once (drift_watch.rs).
        Some(wakeups) => app_controller.reconcile_on(wakeups),
        None => app_controller,
    };
    app_controller
        // A Policy or Workflow change re-reconciles the applications of its namespace.
        .watches(
            Api::<Policy>::all(hub_client.clone()),
            config.clone(),
            move |p: Policy| apps_in(&s1, p.metadata.namespace.as_deref()),
        )
        .watches(
            Api::<Workflow>::all(hub_client.clone()),
            config.clone(),
            move |w: Workflow| apps_in(&s2, w.metadata.namespace.as_deref()),
        )
        // Cluster joins and label changes re-place every application.
        .watches(
            Api::<ManagedCluster>::all(hub_client.clone()),
            config,
            move |_: ManagedCluster| apps_in(&s3, None),
        )
        .run(controller::reconcile, backoff.policy("application"), ctx)
        .for_each(|result| {
            backoff.observe(&result);
            async move {
                match result {
                    Ok((object, _)) => tracing::debug!(app = %object, "reconciled"),
                    Err(e) => tracing::debug!(error = %e, "application reconcile"),
                }
            }
        })
        .await;
    retry_cleanups.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_metadata_and_spec_without_status() {
        let mut app = Application::default();
        app.metadata.name = Some("web".into());
        app.metadata.managed_fields = Some(vec![Default::default()]);
        app.spec.components = vec![Default::default()];
        app.status = Some(Default::default());
        let watcher::Event::Apply(kept) = cached(&watcher::Event::Apply(app.clone())) else {
            panic!("an Apply stays an Apply");
        };
        assert_eq!(kept.metadata.name.as_deref(), Some("web"));
        assert_eq!(kept.spec, app.spec);
        assert!(kept.status.is_none() && kept.metadata.managed_fields.is_none());
        assert!(matches!(
            cached(&watcher::Event::InitDone),
            watcher::Event::InitDone
        ));
    }
}
