//! Sub-reconciler 4, gc: after a clean converge pass, tracked objects the pass no longer
//! produced are deleted from their clusters (the `garbage-collect` policy's rules respected).

use std::collections::BTreeSet;

use flotilla_apis::AppliedResource;

use super::super::controller::{Context, Error};
use super::super::dispatch;
use super::super::member_clients::{self, Identity};
use super::super::pending_cleanup;
use super::super::resource_policy::{GcStrategy, ResourceFacts, ResourcePolicies};
use super::converge::Converged;
use super::deploy::Pass;
use super::tracker::{self, resource_key};

/// Deletes tracked objects that a clean converge pass no longer produced.
pub(crate) async fn reconcile(pass: &Pass<'_>, converged: &Converged) -> Result<(), Error> {
    if !converged.ran || converged.failed || pass.policies.keep_legacy() {
        return Ok(());
    }
    let keep: BTreeSet<_> = converged.produced.iter().map(resource_key).collect();
    let tracked = pass.tracker.lock().await.spec.managed_resources.clone();
    let mut released = Vec::new();
    let mut pending = Vec::new();
    for r in tracked.iter().filter(|r| !keep.contains(&resource_key(r))) {
        // No longer desired: whatever happens to it now is not drift.
        pass.ctx
            .drift
            .forget(&r.cluster, &r.api_version, &r.kind, &r.namespace, &r.name);
        if strategy(&pass.policies, r) != GcStrategy::OnAppUpdate {
            continue;
        }
        let deleted = !converged.unreachable.contains(&r.cluster)
            && delete_tracked(
                pass.ctx,
                &pass.identity,
                r,
                &pass.app_name,
                &pass.app_namespace,
                pass.policies.gc_propagation(&facts(r)),
            )
            .await;
        if !deleted {
            // The cluster is away: a cleanup record finishes it when it returns.
            pending.push(r.clone());
        }
        released.push(resource_key(r));
    }
    pending_cleanup::record(
        pass.ctx,
        &pass.app_name,
        &pass.app_namespace,
        &pass.identity,
        &pending,
    )
    .await?;
    if !released.is_empty() {
        let mut tracker = pass.tracker.lock().await;
        tracker
            .spec
            .managed_resources
            .retain(|r| !released.contains(&resource_key(r)));
        tracker::write(pass.ctx, &mut tracker).await?;
    }
    Ok(())
}

/// What garbage-collect selectors see of one tracked object.
pub(crate) fn facts(r: &AppliedResource) -> ResourceFacts<'_> {
    ResourceFacts {
        component: &r.component,
        component_type: "",
        trait_type: (!r.trait_type.is_empty()).then_some(r.trait_type.as_str()),
        kind: &r.kind,
        name: &r.name,
    }
}

/// The garbage-collect strategy for one tracked object.
pub(crate) fn strategy(policies: &ResourcePolicies, r: &AppliedResource) -> GcStrategy {
    policies.gc_strategy(&facts(r))
}

/// Deletes one tracked object; true when it is gone (or its cluster is no longer registered).
pub(crate) async fn delete_tracked(
    ctx: &Context,
    identity: &Identity,
    r: &AppliedResource,
    app_name: &str,
    app_namespace: &str,
    propagation: dispatch::Propagation,
) -> bool {
    let client = match ctx.members.as_user(&r.cluster, identity).await {
        Ok(c) => c,
        Err(member_clients::Error::Credentials { source, .. })
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
    // Deleting is not drift: the watch lets it go first.
    ctx.drift
        .forget(&r.cluster, &r.api_version, &r.kind, &r.namespace, &r.name);
    let kind = match ctx
        .kinds
        .resolve(&client, &r.cluster, &r.api_version, &r.kind)
        .await
    {
        Ok(kind) => kind,
        // The kind is gone from the cluster, and its objects with it.
        Err(dispatch::Error::NotAcceptedYet(_)) => return true,
        Err(e) => {
            tracing::warn!(cluster = %r.cluster, error = %e, "cannot resolve kind to delete");
            return false;
        }
    };
    let deleted = dispatch::delete(
        &client,
        &r.api_version,
        &r.kind,
        &kind,
        &r.namespace,
        &r.name,
        app_name,
        app_namespace,
        propagation,
    )
    .await;
    match deleted {
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
