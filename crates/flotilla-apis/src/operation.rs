//! Workflow operations as changes to an Application, made through the hub API.
//!
//! Each function checks that the operation makes sense for the application as it is now and
//! returns a JSON merge patch (`application/merge-patch+json`). The status operations
//! ([`suspend`], [`resume`], [`terminate`], [`restart`]) are sent to the `status` subresource;
//! [`rollback`] is sent to the Application itself. Every patch carries the
//! `metadata.resourceVersion` it was computed from, so a concurrent change by the controller
//! makes the request fail with 409 Conflict instead of being lost: re-read and retry.
//!
//! The controller reads the same fields:
//! - `status.workflow.suspend == true` with a step in phase `suspending`: waiting for resume;
//! - a step put back to `running` by [`resume`]: approved, the controller carries on with it;
//! - `status.workflow.terminated == true`: nothing runs until the next revision or a restart;
//! - `status.workflow` removed by [`restart`]: the workflow runs again from the first step.

use serde_json::{Map, Value, json};

use crate::application::{
    Application, ApplicationPhase, ApplicationRevision, StepStatus, WorkflowStatus, step_phase,
};

/// Why an operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperationError {
    /// The application has no workflow status yet.
    #[error("the workflow of application {0} has not started yet")]
    NotStarted(String),
    /// Resume or suspend of a terminated workflow.
    #[error("can not {operation} workflow {app}: the workflow is terminated")]
    Terminated {
        /// The operation asked for.
        operation: &'static str,
        /// The application name.
        app: String,
    },
    /// Resume of a workflow that is not suspended.
    #[error("workflow {0} is not suspended")]
    NotSuspended(String),
    /// Suspend or terminate of a workflow that has finished.
    #[error("can not {operation} workflow {app}: the workflow has finished")]
    Finished {
        /// The operation asked for.
        operation: &'static str,
        /// The application name.
        app: String,
    },
    /// Rollback while the workflow runs.
    #[error("can not rollback application {0} while its workflow is running")]
    Running(String),
    /// No earlier revision succeeded.
    #[error("application {0} has no earlier revision whose workflow succeeded")]
    NoSuccessfulRevision(String),
}

/// `Result` of an operation.
pub type Result<T, E = OperationError> = std::result::Result<T, E>;

fn app_name(app: &Application) -> String {
    app.metadata.name.clone().unwrap_or_default()
}

fn workflow_of(app: &Application) -> Result<&WorkflowStatus> {
    app.status
        .as_ref()
        .and_then(|s| s.workflow.as_ref())
        .ok_or_else(|| OperationError::NotStarted(app_name(app)))
}

/// Applies `f` to every step and sub-step.
fn for_each_step(steps: &mut [StepStatus], f: &mut impl FnMut(&mut StepStatus)) {
    for step in steps {
        f(step);
        for_each_step(&mut step.sub_steps, f);
    }
}

fn status_patch(app: &Application, workflow: &WorkflowStatus, phase: Option<&str>) -> Value {
    let mut status = Map::new();
    status.insert(
        "workflow".into(),
        serde_json::to_value(workflow).unwrap_or(Value::Null),
    );
    if let Some(phase) = phase {
        status.insert("status".into(), json!(phase));
    }
    json!({
        "metadata": {"resourceVersion": app.metadata.resource_version},
        "status": status,
    })
}

/// Suspends a running workflow: running steps become `suspending` and `suspend` is set.
pub fn suspend(app: &Application) -> Result<Value> {
    let mut workflow = workflow_of(app)?.clone();
    if workflow.terminated {
        return Err(OperationError::Terminated {
            operation: "suspend",
            app: app_name(app),
        });
    }
    if workflow.finished {
        return Err(OperationError::Finished {
            operation: "suspend",
            app: app_name(app),
        });
    }
    workflow.suspend = true;
    for_each_step(&mut workflow.steps, &mut |s| {
        if s.phase == step_phase::RUNNING {
            s.phase = step_phase::SUSPENDING.into();
        }
    });
    Ok(status_patch(
        app,
        &workflow,
        Some(ApplicationPhase::WorkflowSuspending.as_str()),
    ))
}

/// Resumes a suspended workflow: `suspending` steps go back to `running` (which approves a
/// deploy step with `auto: false` and ends a `suspend` step) and `suspend` is cleared.
pub fn resume(app: &Application) -> Result<Value> {
    let mut workflow = workflow_of(app)?.clone();
    if workflow.terminated {
        return Err(OperationError::Terminated {
            operation: "resume",
            app: app_name(app),
        });
    }
    let mut suspending = false;
    for_each_step(&mut workflow.steps, &mut |s| {
        if s.phase == step_phase::SUSPENDING {
            suspending = true;
        }
    });
    if !workflow.suspend && !suspending {
        return Err(OperationError::NotSuspended(app_name(app)));
    }
    workflow.suspend = false;
    for_each_step(&mut workflow.steps, &mut |s| {
        if s.phase == step_phase::SUSPENDING {
            s.phase = step_phase::RUNNING.into();
            s.message.clear();
            s.reason.clear();
        }
    });
    Ok(status_patch(
        app,
        &workflow,
        Some(ApplicationPhase::RunningWorkflow.as_str()),
    ))
}

/// Terminates a workflow: running, suspending and pending steps fail with reason `Terminate`.
pub fn terminate(app: &Application) -> Result<Value> {
    let mut workflow = workflow_of(app)?.clone();
    if workflow.finished && !workflow.terminated {
        return Err(OperationError::Finished {
            operation: "terminate",
            app: app_name(app),
        });
    }
    workflow.terminated = true;
    workflow.suspend = false;
    for_each_step(&mut workflow.steps, &mut |s| {
        if [
            step_phase::RUNNING,
            step_phase::SUSPENDING,
            step_phase::PENDING,
        ]
        .contains(&s.phase.as_str())
        {
            s.phase = step_phase::FAILED.into();
            s.reason = "Terminate".into();
        }
    });
    Ok(status_patch(
        app,
        &workflow,
        Some(ApplicationPhase::WorkflowTerminated.as_str()),
    ))
}

/// Restarts a workflow from the first step: the workflow status is cleared.
pub fn restart(app: &Application) -> Result<Value> {
    workflow_of(app)?;
    Ok(json!({
        "metadata": {"resourceVersion": app.metadata.resource_version},
        "status": {
            "workflow": null,
            "status": ApplicationPhase::RunningWorkflow.as_str(),
        },
    }))
}

/// Rolls the application back to the newest revision, other than the current one, whose
/// workflow succeeded. Returns a merge patch for the Application itself (not its status) that
/// turns its spec (and `app.oam.dev/publishVersion`, when the revision recorded one) into the
/// revision's. Refused while the workflow is running.
pub fn rollback(app: &Application, revisions: &[ApplicationRevision]) -> Result<Value> {
    let phase = app.status.as_ref().and_then(|s| s.status.as_deref());
    if phase == Some(ApplicationPhase::RunningWorkflow.as_str()) {
        return Err(OperationError::Running(app_name(app)));
    }
    Ok(rollback_to(app, rollback_target(app, revisions)?))
}

/// The merge patch of [`rollback`] to a given revision, without its checks (a retry after a
/// conflict, once the rollback has started).
pub fn rollback_to(app: &Application, target: &ApplicationRevision) -> Value {
    let current_spec = serde_json::to_value(&app.spec).unwrap_or(Value::Null);
    let target_spec = serde_json::to_value(&target.spec.application).unwrap_or(Value::Null);
    let mut patch = json!({
        "metadata": {"resourceVersion": app.metadata.resource_version},
        "spec": merge_diff(&current_spec, &target_spec),
    });
    if let Some(version) = target
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::labels::PUBLISH_VERSION))
    {
        patch["metadata"]["annotations"] = json!({crate::labels::PUBLISH_VERSION: version});
    }
    patch
}

/// The revision [`rollback`] goes back to: the newest one, other than the current one, whose
/// workflow succeeded. Its recorded standalone Policies and Workflow are what the application
/// used then (the CLI writes them back before the spec patch).
pub fn rollback_target<'a>(
    app: &Application,
    revisions: &'a [ApplicationRevision],
) -> Result<&'a ApplicationRevision> {
    let current = app
        .status
        .as_ref()
        .and_then(|s| s.latest_revision.as_ref())
        .map(|r| r.name.clone());
    revisions
        .iter()
        .filter(|r| r.status.as_ref().is_some_and(|s| s.succeeded))
        .filter(|r| r.metadata.name != current)
        .max_by_key(|r| revision_number(r.metadata.name.as_deref().unwrap_or_default()))
        .ok_or_else(|| OperationError::NoSuccessfulRevision(app_name(app)))
}

/// `N` of a revision named `<app>-v<N>` (0 when it does not parse).
pub fn revision_number(name: &str) -> i64 {
    name.rsplit_once("-v")
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0)
}

/// The merge patch that turns `from` into `to`.
fn merge_diff(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(from), Value::Object(to)) => {
            let mut patch = Map::new();
            for key in from.keys() {
                if !to.contains_key(key) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            for (key, value) in to {
                match from.get(key) {
                    Some(old) if old == value => {}
                    Some(old @ Value::Object(_)) if value.is_object() => {
                        patch.insert(key.clone(), merge_diff(old, value));
                    }
                    _ => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            Value::Object(patch)
        }
        _ => to.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::application::{ApplicationRevisionStatus, ApplicationStatus, Revision};

    fn step(name: &str, phase: &str) -> StepStatus {
        StepStatus {
            id: format!("id-{name}"),
            name: name.into(),
            step_type: "deploy".into(),
            phase: phase.into(),
            ..Default::default()
        }
    }

    fn app_with(workflow: WorkflowStatus, phase: &str) -> Application {
        let mut app = Application::default();
        app.metadata.name = Some("demo".into());
        app.metadata.resource_version = Some("42".into());
        app.status = Some(ApplicationStatus {
            status: Some(phase.into()),
            workflow: Some(workflow),
            ..Default::default()
        });
        app
    }

    fn suspended() -> Application {
        app_with(
            WorkflowStatus {
                suspend: true,
                steps: vec![
                    step("deploy-test", step_phase::SUCCEEDED),
                    step("deploy-prod", step_phase::SUSPENDING),
                ],
                ..Default::default()
            },
            "workflowSuspending",
        )
    }

    #[test]
    fn resume_puts_suspending_steps_back_to_running() {
        let patch = resume(&suspended()).unwrap();
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        assert_eq!(patch["status"]["workflow"]["suspend"], false);
        assert_eq!(
            patch["status"]["workflow"]["steps"][0]["phase"],
            "succeeded"
        );
        assert_eq!(patch["status"]["workflow"]["steps"][1]["phase"], "running");
        assert_eq!(patch["status"]["status"], "runningWorkflow");
    }

    #[test]
    fn resume_refuses_a_workflow_that_is_not_suspended_or_is_terminated() {
        let running = app_with(
            WorkflowStatus {
                steps: vec![step("a", step_phase::RUNNING)],
                ..Default::default()
            },
            "runningWorkflow",
        );
        assert_eq!(
            resume(&running).unwrap_err().to_string(),
            "workflow demo is not suspended"
        );
        let mut terminated = suspended();
        terminated
            .status
            .as_mut()
            .unwrap()
            .workflow
            .as_mut()
            .unwrap()
            .terminated = true;
        assert!(matches!(
            resume(&terminated),
            Err(OperationError::Terminated { .. })
        ));
        assert!(matches!(
            resume(&Application::default()),
            Err(OperationError::NotStarted(_))
        ));
    }

    #[test]
    fn suspend_marks_running_steps_suspending() {
        let running = app_with(
            WorkflowStatus {
                steps: vec![
                    step("a", step_phase::SUCCEEDED),
                    step("b", step_phase::RUNNING),
                ],
                ..Default::default()
            },
            "runningWorkflow",
        );
        let patch = suspend(&running).unwrap();
        assert_eq!(patch["status"]["workflow"]["suspend"], true);
        assert_eq!(
            patch["status"]["workflow"]["steps"][1]["phase"],
            "suspending"
        );
        assert_eq!(patch["status"]["status"], "workflowSuspending");
    }

    #[test]
    fn terminate_fails_unfinished_steps_with_reason_terminate() {
        let patch = terminate(&suspended()).unwrap();
        let steps = &patch["status"]["workflow"]["steps"];
        assert_eq!(steps[0]["phase"], "succeeded");
        assert_eq!(steps[1]["phase"], "failed");
        assert_eq!(steps[1]["reason"], "Terminate");
        assert_eq!(patch["status"]["workflow"]["terminated"], true);
        assert_eq!(patch["status"]["workflow"]["suspend"], false);
    }

    #[test]
    fn restart_clears_the_workflow_status() {
        let patch = restart(&suspended()).unwrap();
        assert_eq!(patch["status"]["workflow"], Value::Null);
        assert!(
            patch["status"]
                .as_object()
                .unwrap()
                .contains_key("workflow")
        );
    }

    fn revision(name: &str, succeeded: bool, replicas: i64) -> ApplicationRevision {
        let mut rev = ApplicationRevision::default();
        rev.metadata.name = Some(name.into());
        rev.spec.application = serde_json::from_value(json!({
            "components": [{"name": "c", "type": "webservice",
                "properties": {"image": "x"},
                "traits": [{"type": "scaler", "properties": {"replicas": replicas}}]}],
        }))
        .unwrap();
        rev.status = Some(ApplicationRevisionStatus { succeeded });
        rev
    }

    #[test]
    fn rollback_targets_the_newest_other_successful_revision() {
        let mut app = app_with(WorkflowStatus::default(), "workflowFailed");
        app.spec = serde_json::from_value(json!({
            "components": [{"name": "c", "type": "webservice", "properties": {"image": "y"}}],
            "workflow": {"ref": "w"},
        }))
        .unwrap();
        app.status.as_mut().unwrap().latest_revision = Some(Revision {
            name: "demo-v4".into(),
            revision: 4,
            ..Default::default()
        });
        let revisions = [
            revision("demo-v1", true, 1),
            revision("demo-v2", true, 2),
            revision("demo-v3", false, 3),
            revision("demo-v4", true, 4),
        ];
        let patch = rollback(&app, &revisions).unwrap();
        assert_eq!(
            patch["spec"]["components"][0]["traits"][0]["properties"]["replicas"],
            2
        );
        assert_eq!(patch["spec"]["workflow"], Value::Null);
        let running = app_with(WorkflowStatus::default(), "runningWorkflow");
        assert!(matches!(
            rollback(&running, &revisions),
            Err(OperationError::Running(_))
        ));
        assert!(matches!(
            rollback(&app, &[revision("demo-v4", true, 4)]),
            Err(OperationError::NoSuccessfulRevision(_))
        ));
    }

    #[test]
    fn revision_numbers_parse() {
        assert_eq!(revision_number("demo-v12"), 12);
        assert_eq!(revision_number("my-v-app-v3"), 3);
        assert_eq!(revision_number("nope"), 0);
    }
}
