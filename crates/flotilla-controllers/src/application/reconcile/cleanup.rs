//! On delete (behind the finalizer): everything tracked is deleted from every cluster
//! (unreachable or detached members never block), then the tracker and the revisions.

use flotilla_apis::{
    Application, ApplicationPhase, ApplicationRevision, AppliedResource, ResourceTracker, labels,
    resource_tracker_name,
};
use futures::StreamExt as _;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;

use super::super::controller::{Context, Error, FINALIZER, hub};
use super::super::member_clients::Identity;
use super::super::pending_cleanup;
use super::super::resource_policy::{GcStrategy, ResourcePolicies};
use super::gc::{delete_tracked, facts, strategy};
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
    // `app.oam.dev/orphan-resource` (`vela delete --orphan`): the objects stay.
    let orphan = app
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == labels::ORPHAN_FINALIZER);
    let deletions: Vec<AppliedResource> = tracked
        .spec
        .managed_resources
        .iter()
        .filter(|r| !orphan && strategy(&policies, r) != GcStrategy::Never)
        .cloned()
        .collect();
    // Unreachable members never block the deletion: what fails becomes a cleanup record.
    let deleted: Vec<bool> = futures::stream::iter(0..deletions.len())
        .map(|i| {
            let (identity, deletions) = (&identity, &deletions);
            let (app_name, app_namespace) = (&app_name, &app_namespace);
            let propagation = policies.gc_propagation(&facts(&deletions[i]));
            async move {
                let r = &deletions[i];
                delete_tracked(ctx, identity, r, app_name, app_namespace, propagation).await
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

/// Once the resource-tracker finalizer is gone from a deleted application, the
/// `app.oam.dev/orphan-resource` finalizer goes too (cleanup left the objects in place), so the
/// deletion finishes instead of hanging. True when this pass had that to do.
pub(crate) async fn release_orphan(app: &Application, ctx: &Context) -> Result<bool, Error> {
    let finalizers = app.metadata.finalizers.clone().unwrap_or_default();
    let Some(index) = finalizers
        .iter()
        .position(|f| f == labels::ORPHAN_FINALIZER)
    else {
        return Ok(false);
    };
    if app.metadata.deletion_timestamp.is_none() || finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(false);
    }
    let api: Api<Application> = Api::namespaced(
        ctx.hub_client.clone(),
        app.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let path = format!("/metadata/finalizers/{index}");
    let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
        {"op": "test", "path": path, "value": labels::ORPHAN_FINALIZER},
        {"op": "remove", "path": path},
    ]))
    .expect("a valid JSON patch");
    let name = app.metadata.name.as_deref().unwrap_or_default();
    match api
        .patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(true),
        Err(e) => Err(hub(e)),
    }
}
