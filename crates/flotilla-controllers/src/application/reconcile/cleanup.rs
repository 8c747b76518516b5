//! On delete (behind the finalizer): everything tracked is deleted from every cluster
//! (unreachable or detached members never block), then the tracker and the revisions.

use flotilla_apis::{
    Application, ApplicationPhase, ApplicationRevision, AppliedResource, ResourceTracker, labels,
    resource_tracker_name,
};
use futures::StreamExt as _;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::controller::Action;

use super::super::controller::{Context, Error, hub};
use super::super::member_clients::Identity;
use super::super::pending_cleanup;
use super::super::resource_policy::{GcStrategy, ResourcePolicies};
use super::gc::{delete_tracked, strategy};
use super::{status, tracker};

/// Application deleted: delete everything it dispatched, its tracker and its revisions.
pub(crate) async fn reconcile(app: &Application, ctx: &Context) -> Result<Action, Error> {
    let app_name = app.metadata.name.clone().unwrap_or_default();
    let app_namespace = app.metadata.namespace.clone().unwrap_or_default();
    let identity = Identity::of(app.metadata.annotations.as_ref());
    let mut app_status = app.status.clone().unwrap_or_default();
    app_status.status = Some(ApplicationPhase::Deleting.as_str().into());
    let _ = status::write(ctx, app, &app_status).await;
    ctx.drift.forget_app(&app_namespace, &app_name).await;
    let tracked = tracker::read(ctx, &app_name, &app_namespace).await?;
    let policies = ResourcePolicies::from_policies(&app.spec.policies).unwrap_or_default();
    let deletions: Vec<AppliedResource> = tracked
        .spec
        .managed_resources
        .iter()
        .filter(|r| strategy(&policies, r) != GcStrategy::Never)
        .cloned()
        .collect();
    // Unreachable members never block the deletion: what fails becomes a cleanup record.
    let deleted: Vec<bool> =
        futures::stream::iter(0..deletions.len())
            .map(|i| {
                let (identity, deletions) = (&identity, &deletions);
                let (app_name, app_namespace) = (&app_name, &app_namespace);
                async move {
                    delete_tracked(ctx, identity, &deletions[i], app_name, app_namespace).await
                }
            })
            .buffered(8)
            .collect()
            .await;
    let pending: Vec<AppliedResource> = deletions
        .iter()
        .zip(deleted)
        .filter(|(_, deleted)| !deleted)
        .map(|(r, _)| r.clone())
        .collect();
    pending_cleanup::record(ctx, &app_name, &app_namespace, &identity, &pending).await?;
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
