//! Sub-reconciler 2, workflow: moves the run's steps through the state machine
//! (`super::super::workflow`), executing deploy steps as they come up.

use std::time::Duration;

use chrono::{DateTime, Utc};
use flotilla_apis::{ApplicationStatus, WorkflowStatus, WorkflowStep, step_phase};

use super::super::revision;
use super::super::workflow::{self, Outcome, StepPath};
use super::deploy::{DeployResult, Pass};
use super::revision::Revisioned;
use super::status::merge_services;

/// Where the workflow stands after this pass.
pub(crate) struct WorkflowRun {
    /// The workflow status to write.
    pub(crate) wf: WorkflowStatus,
    /// Every step has succeeded (now).
    pub(crate) finished: bool,
    /// Every step had succeeded before this pass.
    pub(crate) was_finished: bool,
    /// When to look again.
    pub(crate) requeue: Duration,
    /// What each deploy step that succeeded in this pass applied, by its place: converge
    /// takes these instead of running the step (and reading every object) a second time.
    pub(crate) deployed: Vec<(StepPath, DeployResult)>,
}

/// The workflow status of this run: the stored one if it belongs to the run, else a new one.
fn current(status: &mut ApplicationStatus, run: &Revisioned, now: DateTime<Utc>) -> WorkflowStatus {
    let key = revision::run_key(&run.revision);
    let mut wf = match status.workflow.take() {
        Some(mut w) if w.app_revision == key => {
            workflow::align(&mut w, &run.steps);
            w
        }
        _ => workflow::start(&key, &run.steps, now),
    };
    // The overall message is the first failing step's (a spec error's message is gone).
    wf.message = wf
        .steps
        .iter()
        .find(|s| s.phase == step_phase::FAILED)
        .map(|s| s.message.clone())
        .unwrap_or_default();
    wf
}

/// Runs steps until the workflow waits, stops or finishes.
pub(crate) async fn reconcile(
    pass: &Pass<'_>,
    run: &Revisioned,
    status: &mut ApplicationStatus,
) -> WorkflowRun {
    let now = Utc::now();
    let mut wf = current(status, run, now);
    let was_finished = wf.finished;
    let steps = &run.steps;
    let mode = mode_of(run);
    wf.mode = mode.text();
    // Not finished: looked at again in 30 s at the latest (earlier when a step waits).
    let mut requeue = Duration::from_secs(30);
    let mut finished = false;
    let mut deployed = Vec::new();
    // Bounded: each round either stops or moves at least one step forward.
    for _ in 0..=steps.len() * 4 + 4 {
        let action = match workflow::next_action_in(&mut wf, steps, mode, now) {
            Ok(a) => a,
            Err(e) => {
                wf.message = e.to_string();
                break;
            }
        };
        match action {
            workflow::Action::Execute(paths) => {
                let outputs = wf.outputs.clone();
                let outputs = &outputs;
                let runs = paths.iter().copied().map(|p| async move {
                    match step_at(steps, p) {
                        Some(step) => super::steps::execute(pass, step, outputs).await,
                        None => super::steps::Executed {
                            result: DeployResult::ended(Outcome::Failed("step not found".into())),
                            outputs: Default::default(),
                        },
                    }
                });
                let results = futures::future::join_all(runs).await;
                let mut all_succeeded = true;
                for (path, executed) in paths.iter().zip(results) {
                    wf.outputs.extend(executed.outputs);
                    let result = executed.result;
                    let outcome = result
                        .outcome
                        .unwrap_or(Outcome::Failed("no outcome".into()));
                    match &outcome {
                        Outcome::Succeeded => {}
                        Outcome::Waiting(_) => {
                            all_succeeded = false;
                            // Woken earlier by the drift watch when an object's health
                            // changes; a step's timeout is checked when it falls due.
                            requeue = requeue.min(pass.ctx.health_recheck);
                            if let Some(left) = timeout_left(steps, &wf, *path, now) {
                                requeue = requeue.min(left);
                            }
                        }
                        Outcome::Failed(_) => {
                            all_succeeded = false;
                            requeue = requeue.min(Duration::from_secs(10));
                        }
                        Outcome::Retrying(_) => {
                            all_succeeded = false;
                            requeue = requeue.min(retry_backoff(&wf, *path, now));
                        }
                    }
                    workflow::record(&mut wf, *path, &outcome, now);
                    if outcome == Outcome::Succeeded && applies_objects_at(steps, *path) {
                        // Unreachable clusters: none, or the step would not have succeeded.
                        let for_converge = DeployResult {
                            outcome: Some(Outcome::Succeeded),
                            services: result.services.clone(),
                            produced: result.produced,
                            unreachable: result.unreachable,
                            output: None,
                        };
                        deployed.push((*path, for_converge));
                    }
                    merge_services(&mut status.services, result.services);
                }
                if !all_succeeded {
                    break;
                }
            }
            workflow::Action::Suspended { recheck } => {
                requeue = recheck
                    .unwrap_or(Duration::from_secs(60))
                    .max(Duration::from_millis(200));
                break;
            }
            workflow::Action::Finished => {
                // Nothing to wait for: woken by the drift watch (an object stops being
                // healthy, is deleted or drifts) and the hub's watches; the resync period is
                // the safety net (a read-only object's health, a hub object `ref-objects`
                // copies).
                requeue = pass.ctx.resync_period;
                finished = true;
                break;
            }
            workflow::Action::Terminated => {
                requeue = Duration::from_secs(300);
                break;
            }
        }
    }
    WorkflowRun {
        wf,
        finished,
        was_finished,
        requeue,
        deployed,
    }
}

/// Whether the step at `path` applies objects (`deploy`, `apply-component`).
fn applies_objects_at(steps: &[WorkflowStep], path: StepPath) -> bool {
    step_at(steps, path).is_some_and(workflow::applies_objects)
}

/// The wait before retrying a step a cluster refused for now: half the time it has been
/// running, between 2 s and 60 s (so the retries space out as the refusal lasts).
/// How long the step at `path` has left before its `timeout` (at least 200 ms), if it has one.
fn timeout_left(
    steps: &[WorkflowStep],
    wf: &WorkflowStatus,
    path: StepPath,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let limit = step_at(steps, path)?
        .timeout
        .as_deref()
        .and_then(workflow::parse_duration)?;
    let started = wf
        .steps
        .get(path.index)?
        .first_execute_time
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?;
    let running = (now - started.with_timezone(&Utc))
        .to_std()
        .unwrap_or_default();
    Some(
        limit
            .saturating_sub(running)
            .max(Duration::from_millis(200)),
    )
}

fn retry_backoff(wf: &WorkflowStatus, path: StepPath, now: DateTime<Utc>) -> Duration {
    let started = wf
        .steps
        .get(path.index)
        .and_then(|s| s.first_execute_time.as_deref())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    let running = started
        .and_then(|t| (now - t.with_timezone(&Utc)).to_std().ok())
        .unwrap_or_default();
    (running / 2).clamp(Duration::from_secs(2), Duration::from_secs(60))
}

/// `workflow.mode` (on the referenced Workflow, else inline): `steps: DAG`,
/// `subSteps: StepByStep`.
fn mode_of(run: &Revisioned) -> workflow::Mode {
    let spec_mode = run
        .snapshot
        .spec
        .workflow
        .as_ref()
        .and_then(|w| w.mode.as_ref());
    let ref_mode = run.snapshot.workflow.as_ref().and_then(|w| w.mode.as_ref());
    let mode = ref_mode.or(spec_mode);
    let is = |m: Option<&String>, name: &str| m.is_some_and(|m| m.eq_ignore_ascii_case(name));
    workflow::Mode {
        dag: is(mode.and_then(|m| m.steps.as_ref()), "DAG"),
        sub_steps_in_order: is(mode.and_then(|m| m.sub_steps.as_ref()), "StepByStep"),
    }
}

/// Steps that apply objects (sub-steps included) and succeeded in this run, with their
/// places: what converge keeps applying (skipped and timed-out steps are not).
pub(crate) fn succeeded_deploy_steps<'a>(
    steps: &'a [WorkflowStep],
    wf: &WorkflowStatus,
) -> Vec<(StepPath, &'a WorkflowStep)> {
    let mut out = Vec::new();
    for (index, (step, status)) in steps.iter().zip(&wf.steps).enumerate() {
        let ok = status.phase == step_phase::SUCCEEDED;
        if workflow::applies_objects(step) && ok {
            out.push((StepPath { index, sub: None }, step));
        }
        let subs = step.sub_steps.iter().zip(&status.sub_steps).enumerate();
        for (sub, (sub_step, sub_status)) in subs {
            if workflow::applies_objects(sub_step) && sub_status.phase == step_phase::SUCCEEDED {
                let path = StepPath {
                    index,
                    sub: Some(sub),
                };
                out.push((path, sub_step));
            }
        }
    }
    out
}

/// The step at `path`.
pub(crate) fn step_at(steps: &[WorkflowStep], path: StepPath) -> Option<&WorkflowStep> {
    let top = steps.get(path.index)?;
    match path.sub {
        Some(sub) => top.sub_steps.get(sub),
        None => Some(top),
    }
}

/// Every step that applies objects (`deploy`, `apply-component`), sub-steps included, in
/// order.
pub(crate) fn deploy_steps(steps: &[WorkflowStep]) -> Vec<&WorkflowStep> {
    let mut out = Vec::new();
    for s in steps {
        if workflow::applies_objects(s) {
            out.push(s);
        }
        out.extend(deploy_steps(&s.sub_steps));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deploy_steps_include_sub_steps_in_order() {
        let steps: Vec<WorkflowStep> = serde_json::from_value(json!([
            {"name": "a", "type": "deploy"},
            {"name": "s", "type": "suspend"},
            {"name": "g", "type": "step-group", "subSteps": [
                {"name": "b", "type": "deploy"}, {"name": "c", "type": "suspend"}]},
        ]))
        .unwrap();
        let names: Vec<&str> = deploy_steps(&steps)
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
        let b = step_at(
            &steps,
            StepPath {
                index: 2,
                sub: Some(0),
            },
        );
        assert_eq!(b.map(|s| s.name.as_str()), Some("b"));
        assert!(
            step_at(
                &steps,
                StepPath {
                    index: 9,
                    sub: None
                }
            )
            .is_none()
        );
    }
}
