//! Sub-reconciler 5, status: phase, conditions, services and applied resources, written
//! through `/status` with a JSON patch guarded by the read `resourceVersion`, so that a
//! concurrent workflow operation is never overwritten.

use std::time::Duration;

use chrono::Utc;
use flotilla_apis::{
    Application, ApplicationComponentStatus, ApplicationPhase, ApplicationRevision,
    ApplicationStatus, Condition, WorkflowStatus,
};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;

use super::super::controller::{Context, Error, hub};
use super::super::workflow;
use super::converge::Converged;
use super::deploy::Pass;
use super::workflow::WorkflowRun;

/// Writes the pass's outcome and says when to look again.
pub(crate) async fn reconcile(
    app: &Application,
    pass: &Pass<'_>,
    run: WorkflowRun,
    converged: &Converged,
    mut status: ApplicationStatus,
) -> Result<Action, Error> {
    if run.finished && !run.was_finished {
        mark_succeeded(pass.ctx, &pass.app_namespace, &pass.revision).await;
    }
    status.services.sort_by_key(service_key);
    status.applied_resources = pass.tracker.lock().await.spec.managed_resources.clone();
    let wf = run.wf;
    let phase = if wf.terminated {
        ApplicationPhase::WorkflowTerminated
    } else if run.finished {
        // Finished with a step failed for good (timeout, condition error).
        if workflow::has_failed(&wf) {
            ApplicationPhase::WorkflowFailed
        } else if converged.failed || status.services.iter().any(|s| !s.healthy) {
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
    let finished = wf.finished;
    let reason = if finished { "Finished" } else { "Running" };
    set_condition(&mut status, "WorkflowFinished", finished, reason, "");
    status.workflow = Some(wf);
    write(pass.ctx, app, &status).await?;
    Ok(Action::requeue(run.requeue))
}

/// A user error (the spec does not render, a reference is missing): shown on the application
/// under `Rendered` and the workflow message; looked at again in 30 s.
pub(crate) async fn spec_error(
    ctx: &Context,
    app: &Application,
    mut status: ApplicationStatus,
    message: String,
) -> Result<Action, Error> {
    status.status = Some(ApplicationPhase::Rendering.as_str().into());
    set_condition(&mut status, "Rendered", false, "RenderFailed", &message);
    // Shown by `flotilla status` under Workflow.
    let workflow = status.workflow.get_or_insert_with(|| WorkflowStatus {
        mode: workflow::MODE.into(),
        ..Default::default()
    });
    workflow.message = message;
    write(ctx, app, &status).await?;
    Ok(Action::requeue(Duration::from_secs(30)))
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

/// Identity of a service entry: component, cluster, namespace.
pub(crate) fn service_key(s: &ApplicationComponentStatus) -> (String, String, String) {
    (s.name.clone(), s.cluster.clone(), s.namespace.clone())
}

/// Replaces or adds entries of `from` in `into`.
pub(crate) fn merge_services(
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

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Sets a condition; its transition time changes only when its status flips.
pub(crate) fn set_condition(
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
pub(crate) async fn write(
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
    // Recorded before the write: its watch event may arrive before the answer does.
    ctx.own_writes.expect(app, status);
    let result = api
        .patch_status(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await;
    match result {
        Ok(written) => {
            ctx.own_writes.written(&written);
            Ok(true)
        }
        Err(e) => {
            ctx.own_writes.failed(app);
            match e {
                // Changed under us (e.g. `workflow resume`): the watch brings the new version.
                kube::Error::Api(s) if s.code == 409 || s.code == 422 => Ok(true),
                e => Err(hub(e)),
            }
        }
    }
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
}
