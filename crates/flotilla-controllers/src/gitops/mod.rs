//! The GitOps controller (see README.md in this folder): Argo CD Applications synced from Git
//! (`controller.rs`), ApplicationSets fanned out over generators (`applicationset.rs`), and
//! the push notifications that make both act at once (`webhook.rs`).

pub(crate) mod applicationset;
pub(crate) mod compare;
pub(crate) mod controller;
pub(crate) mod destination;
pub(crate) mod generators;
pub(crate) mod git;
pub(crate) mod health;
pub(crate) mod manifests;
pub(crate) mod repo_credentials;
pub(crate) mod source;
pub(crate) mod status;
pub(crate) mod sync;
pub(crate) mod webhook;

use crate::error_backoff::ErrorBackoff;
use std::sync::Arc;

use flotilla_apis::{ArgoApplication, REFRESH_ANNOTATION};
use futures::StreamExt as _;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use serde_json::json;

pub use controller::GitOpsOptions;
pub use webhook::PushQueue;

/// Applications whose repoURL is one of `normalized_urls`.
fn apps_of_repos(
    store: &Store<ArgoApplication>,
    normalized_urls: &[String],
) -> Vec<ObjectRef<ArgoApplication>> {
    store
        .state()
        .iter()
        .filter(|a| normalized_urls.contains(&webhook::normalize_repo_url(&a.spec.source.repo_url)))
        .map(|a| ObjectRef::from(a.as_ref()))
        .collect()
}

/// Runs the Application and ApplicationSet controllers against the hub; `pushes` carries the
/// webhook's notifications.
pub(crate) async fn run(
    hub_client: kube::Client,
    options: GitOpsOptions,
    pushes: PushQueue,
) -> anyhow::Result<()> {
    // gix's https:// transport (reqwest with rustls) uses the process-wide crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ctx = Arc::new(controller::Context::new(hub_client.clone(), &options));
    let apps: Api<ArgoApplication> = Api::all(hub_client.clone());
    let app_controller = Controller::new(apps, watcher::Config::default());
    let backoff = ErrorBackoff::shared();
    let store = app_controller.store();
    let applications = app_controller
        .run(
            controller::reconcile,
            backoff.policy("argo-application"),
            ctx.clone(),
        )
        .for_each(|result| {
            backoff.observe(&result);
            async move {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "argo application reconcile");
                }
            }
        });
    let refreshes = refresh_on_push(hub_client.clone(), ctx, store, pushes);
    tokio::join!(applications, refreshes, applicationset::run(hub_client));
    Ok(())
}

/// For each push notification: the repositories are marked for a fetch and their
/// Applications get the `argocd.argoproj.io/refresh` annotation, whose watch event reconciles
/// them at once (the controller removes it when it writes the status).
async fn refresh_on_push(
    hub_client: kube::Client,
    ctx: Arc<controller::Context>,
    store: Store<ArgoApplication>,
    pushes: PushQueue,
) {
    loop {
        let urls = pushes.next().await;
        ctx.sources.force(&urls).await;
        let apps = apps_of_repos(&store, &urls);
        tracing::info!(repos = ?urls, applications = apps.len(), "gitops: push notification");
        for app in apps {
            let Some(namespace) = app.namespace.clone() else {
                continue;
            };
            let api: Api<ArgoApplication> = Api::namespaced(hub_client.clone(), &namespace);
            let patch = json!({"metadata": {"annotations": {REFRESH_ANNOTATION: "normal"}}});
            if let Err(e) = api
                .patch(&app.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::warn!(app = %app.name, error = %e, "gitops: cannot mark for refresh");
            }
        }
    }
}
