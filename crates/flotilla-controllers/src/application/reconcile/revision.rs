//! Sub-reconciler 1, revision: gather the snapshot, decide whether it starts a new run
//! (a new `ApplicationRevision`) and work out the run's steps and resource policies.

use std::collections::BTreeMap;

use flotilla_apis::{
    Application, ApplicationRevision, ApplicationStatus, Revision, WorkflowStep, labels,
};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};

use super::super::controller::{Context, Error, hub};
use super::super::dispatch;
use super::super::member_clients::{Identity, impersonating};
use super::super::resource_policy::ResourcePolicies;
use super::super::revision::{self, Decision, Snapshot};
use super::super::workflow;
use super::gather::{GatherError, gather};

/// The run this pass works on.
pub(crate) struct Revisioned {
    /// What the run renders from.
    pub(crate) snapshot: Snapshot,
    /// The revision the run belongs to.
    pub(crate) revision: Revision,
    /// The run's steps.
    pub(crate) steps: Vec<WorkflowStep>,
    /// The run's resource policies.
    pub(crate) policies: ResourcePolicies,
}

/// Works out the run; `Ok(Err(message))` is a user error to show on the application.
pub(crate) async fn reconcile(
    app: &Application,
    ctx: &Context,
    status: &mut ApplicationStatus,
) -> Result<Result<Revisioned, String>, Error> {
    let app_namespace = app.metadata.namespace.clone().unwrap_or_default();
    let identity = Identity::of(app.metadata.annotations.as_ref());
    let hub_as_user = impersonating(ctx.hub_client.clone(), &identity);
    let publish = app
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(labels::PUBLISH_VERSION))
        .cloned();
    let current = status.latest_revision.clone();
    // With an unchanged publishVersion the run keeps its stored snapshot, whatever the spec now
    // says (even when the new spec would not render).
    let pinned = publish.is_some()
        && current.as_ref().and_then(|c| c.publish_version.as_deref()) == publish.as_deref();
    let fresh = match gather(app, &ctx.hub_client, &hub_as_user).await {
        Ok(s) => Some(s),
        Err(GatherError::Spec(_)) if pinned => None,
        Err(GatherError::Spec(message)) => return Ok(Err(message)),
        Err(GatherError::Hub(e)) => return Err(e),
    };
    let (snapshot, revision) = match (fresh, current) {
        (None, Some(cur)) => match load_revision(ctx, &app_namespace, &cur.name).await? {
            Some(stored) => (stored, cur),
            None => return Ok(Err(format!("application revision {} not found", cur.name))),
        },
        (None, None) => return Ok(Err("nothing to run".into())),
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
        Err(e) => return Ok(Err(e.to_string())),
    };
    status.latest_revision = Some(revision.clone());
    let steps = match workflow::effective_steps(
        &snapshot.spec,
        snapshot.workflow.as_ref().map(|w| w.steps.as_slice()),
        &snapshot.spec.policies,
    ) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e.to_string())),
    };
    Ok(Ok(Revisioned {
        snapshot,
        revision,
        steps,
        policies,
    }))
}

fn number_of(r: &ApplicationRevision) -> i64 {
    flotilla_apis::operation::revision_number(r.metadata.name.as_deref().unwrap_or(""))
}

/// Creates revision `<app>-v<N+1>` (or finds the one already written for this content) and
/// prunes old ones.
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
    let hash = snapshot.hash();
    let newest = existing.iter().map(number_of).max().unwrap_or(0);
    // A revision already written for this content (a status write lost to a conflict).
    if let Some(same) = existing.iter().find(|r| {
        r.spec.revision_hash == hash
            && r.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(labels::PUBLISH_VERSION))
                .map(String::as_str)
                == publish
    }) && number_of(same) == newest
    {
        return Ok(Revision {
            name: same.metadata.name.clone().unwrap_or_default(),
            revision: newest,
            revision_hash: hash,
            publish_version: publish.map(str::to_string),
        });
    }
    let number = newest.max(
        app.status
            .as_ref()
            .and_then(|s| s.latest_revision.as_ref())
            .map(|r| r.revision)
            .unwrap_or(0),
    ) + 1;
    let revision = Revision {
        name: format!("{name}-v{number}"),
        revision: number,
        revision_hash: hash,
        publish_version: publish.map(str::to_string),
    };
    let object = revision_object(app, snapshot, &revision, publish);
    api.patch(
        &revision.name,
        &PatchParams::apply(dispatch::FIELD_MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await
    .map_err(hub)?;
    prune(&api, existing, ctx.revision_limit).await;
    Ok(revision)
}

fn revision_object(
    app: &Application,
    snapshot: &Snapshot,
    revision: &Revision,
    publish: Option<&str>,
) -> ApplicationRevision {
    let name = app.metadata.name.clone().unwrap_or_default();
    let mut object = ApplicationRevision {
        api_version: ApplicationRevision::API_VERSION.into(),
        kind: ApplicationRevision::KIND.into(),
        spec: snapshot.to_revision_spec(),
        ..Default::default()
    };
    object.metadata.name = Some(revision.name.clone());
    object.metadata.namespace = app.metadata.namespace.clone();
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
                name,
                uid: uid.clone(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
        ]);
    }
    object
}

/// Keeps the newest `limit` revisions (counting the one just written), never the last
/// succeeded one.
async fn prune(api: &Api<ApplicationRevision>, existing: Vec<ApplicationRevision>, limit: usize) {
    let mut old = existing;
    old.sort_by_key(number_of);
    let last_succeeded = old
        .iter()
        .rev()
        .find(|r| r.status.as_ref().is_some_and(|s| s.succeeded))
        .and_then(|r| r.metadata.name.clone());
    let excess = (old.len() + 1).saturating_sub(limit);
    for r in old.iter().take(excess) {
        if r.metadata.name != last_succeeded
            && let Some(n) = &r.metadata.name
            && let Err(e) = api.delete(n, &DeleteParams::default()).await
        {
            tracing::warn!(revision = %n, error = %e, "cannot prune application revision");
        }
    }
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
