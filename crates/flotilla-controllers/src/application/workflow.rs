//! The workflow: which steps run, and the step state machine. Pure, no I/O.
//!
//! Steps run in order. Entering a step: a `deploy` with `auto: false` or a `suspend` step
//! suspends (`suspending`, `status.workflow.suspend = true`); anything else starts `running`.
//! A resumed step (put back to `running` by `workflow resume`) goes on: a `suspend` step
//! succeeds, a deploy step deploys. A failed step is retried on every pass until it succeeds,
//! the revision changes or the workflow is terminated. Sub-steps of a `step-group` run together.
//! A step past its `timeout` fails for good; a step's `if` (see `workflow_condition.rs`) is
//! evaluated when it is entered (without one it is skipped after a failure for good); in `DAG`
//! mode every step whose `dependsOn` steps are done runs at once.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use flotilla_apis::{
    AppPolicy, ApplicationSpec, StepStatus, WorkflowStatus, WorkflowStep, step_phase,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::workflow_condition::{self, TIMEOUT_REASON};

/// Why the workflow could not be worked out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Error {
    /// `workflow.ref` and `workflow.steps` are both set.
    #[error("workflow.ref and workflow.steps cannot be set together")]
    RefAndSteps,
    /// The referenced Workflow does not exist.
    #[error("workflow {0} not found")]
    WorkflowNotFound(String),
    /// A step type Flotilla does not know.
    #[error("step {step}: unknown step type {step_type:?}")]
    UnknownStepType {
        /// Step name.
        step: String,
        /// The type asked for.
        step_type: String,
    },
    /// Step properties with the wrong shape.
    #[error("step {step}: {message}")]
    InvalidProperties {
        /// Step name.
        step: String,
        /// What is wrong.
        message: String,
    },
}

/// `Result` of workflow planning.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// The workflow mode Flotilla runs: steps in order, sub-steps together.
pub(crate) const MODE: &str = "StepByStep-DAG";

/// `properties` of a `deploy` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeployProperties {
    /// Topology and override policy names, in order.
    #[serde(default)]
    pub policies: Vec<String>,
    /// `false`: wait for `workflow resume` before deploying.
    #[serde(default = "yes")]
    pub auto: bool,
    /// How many component × cluster dispatches run at once.
    #[serde(default = "five")]
    pub parallelism: usize,
}

fn yes() -> bool {
    true
}
fn five() -> usize {
    5
}

impl Default for DeployProperties {
    fn default() -> Self {
        DeployProperties {
            policies: Vec::new(),
            auto: true,
            parallelism: 5,
        }
    }
}

/// Parses a deploy step's properties.
pub(crate) fn deploy_properties(step: &WorkflowStep) -> Result<DeployProperties> {
    match &step.properties {
        None | Some(Value::Null) => Ok(DeployProperties::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| Error::InvalidProperties {
            step: step.name.clone(),
            message: e.to_string(),
        }),
    }
}

/// `properties` of an `apply-component` step.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ApplyComponentProperties {
    /// The component to apply.
    pub component: String,
    /// The cluster to apply it to (empty: `local`, the hub).
    #[serde(default)]
    pub cluster: String,
    /// The namespace to apply it in (empty: the rendered one).
    #[serde(default)]
    pub namespace: String,
}

/// Parses an apply-component step's properties.
pub(crate) fn apply_component_properties(step: &WorkflowStep) -> Result<ApplyComponentProperties> {
    let invalid = |message: String| Error::InvalidProperties {
        step: step.name.clone(),
        message,
    };
    let props: ApplyComponentProperties =
        serde_json::from_value(step.properties.clone().unwrap_or(Value::Null))
            .map_err(|e| invalid(e.to_string()))?;
    if props.component.is_empty() {
        return Err(invalid("component is required".into()));
    }
    Ok(props)
}

/// Whether a step type writes objects to clusters (`deploy`, `apply-component`): converge keeps
/// applying what such a step applied once it succeeded.
pub(crate) fn applies_objects(step: &WorkflowStep) -> bool {
    matches!(step.step_type.as_str(), "deploy" | "apply-component")
}

/// The steps the application runs: inline steps, the referenced Workflow's, or the default.
/// `referenced` is the Workflow named by `workflow.ref` (`None` if it does not exist).
/// `policies` are the inline and standalone policies (for the default workflow).
pub(crate) fn effective_steps(
    spec: &ApplicationSpec,
    referenced: Option<&[WorkflowStep]>,
    policies: &[AppPolicy],
) -> Result<Vec<WorkflowStep>> {
    let steps = match &spec.workflow {
        Some(w) if w.reference.is_some() && !w.steps.is_empty() => return Err(Error::RefAndSteps),
        Some(w) if w.reference.is_some() => referenced
            .ok_or_else(|| Error::WorkflowNotFound(w.reference.clone().unwrap_or_default()))?
            .to_vec(),
        Some(w) if !w.steps.is_empty() => w.steps.clone(),
        _ => default_steps(policies),
    };
    for step in &steps {
        check_step(step)?;
    }
    Ok(steps)
}

fn check_step(step: &WorkflowStep) -> Result<()> {
    if let Some(t) = &step.timeout
        && parse_duration(t).is_none()
    {
        return Err(Error::InvalidProperties {
            step: step.name.clone(),
            message: format!("invalid timeout {t:?}"),
        });
    }
    match step.step_type.as_str() {
        "deploy" => deploy_properties(step).map(|_| ()),
        "suspend" => suspend_duration(step).map(|_| ()),
        "apply-component" => apply_component_properties(step).map(|_| ()),
        // Inputs may fill in what is missing: checked when the step runs.
        "notification" if !step.inputs.is_empty() => Ok(()),
        "notification" => super::notification::parse(step)
            .map(|_| ())
            .map_err(|message| Error::InvalidProperties {
                step: step.name.clone(),
                message,
            }),
        "step-group" => step.sub_steps.iter().try_for_each(check_step),
        other => Err(Error::UnknownStepType {
            step: step.name.clone(),
            step_type: other.to_string(),
        }),
    }
}

/// No workflow given: one `deploy-<policy>` step per topology policy carrying every override
/// policy; no topology: one `deploy` step to the hub itself.
pub(crate) fn default_steps(policies: &[AppPolicy]) -> Vec<WorkflowStep> {
    let overrides: Vec<&str> = policies
        .iter()
        .filter(|p| p.policy_type == "override")
        .map(|p| p.name.as_str())
        .collect();
    let topologies: Vec<&AppPolicy> = policies
        .iter()
        .filter(|p| p.policy_type == "topology")
        .collect();
    if topologies.is_empty() {
        return vec![WorkflowStep {
            name: "deploy".into(),
            step_type: "deploy".into(),
            properties: Some(json!({"policies": overrides})),
            ..Default::default()
        }];
    }
    topologies
        .iter()
        .map(|t| {
            let mut names = vec![t.name.as_str()];
            names.extend(overrides.iter().copied());
            WorkflowStep {
                name: format!("deploy-{}", t.name),
                step_type: "deploy".into(),
                properties: Some(json!({"policies": names})),
                ..Default::default()
            }
        })
        .collect()
}

/// Parses a Go-style duration (`30s`, `1m30s`, `2h`, `500ms`).
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ms" => number / 1000.0,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::from_secs_f64(seconds);
    }
    Some(total)
}

fn suspend_duration(step: &WorkflowStep) -> Result<Option<Duration>> {
    match step.properties.as_ref().and_then(|p| p.get("duration")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            parse_duration(s)
                .map(Some)
                .ok_or_else(|| Error::InvalidProperties {
                    step: step.name.clone(),
                    message: format!("invalid duration {s:?}"),
                })
        }
        Some(other) => Err(Error::InvalidProperties {
            step: step.name.clone(),
            message: format!("invalid duration {other}"),
        }),
    }
}

/// A stable step id: derived from the run and the step name.
fn step_id(run: &str, name: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("{run}/{name}").as_bytes());
    digest.iter().take(5).map(|b| format!("{b:02x}")).collect()
}

fn fresh_status(run: &str, step: &WorkflowStep) -> StepStatus {
    StepStatus {
        id: step_id(run, &step.name),
        name: step.name.clone(),
        step_type: step.step_type.clone(),
        phase: step_phase::PENDING.into(),
        sub_steps: step
            .sub_steps
            .iter()
            .map(|s| fresh_status(run, s))
            .collect(),
        ..Default::default()
    }
}

/// A new workflow status for run `run` (the revision, plus the publish version if any).
pub(crate) fn start(run: &str, steps: &[WorkflowStep], now: DateTime<Utc>) -> WorkflowStatus {
    WorkflowStatus {
        app_revision: run.to_string(),
        mode: MODE.into(),
        steps: steps.iter().map(|s| fresh_status(run, s)).collect(),
        start_time: Some(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        ..Default::default()
    }
}

/// Makes the status list the spec's steps (a step added to a referenced Workflow while the
/// run is going), keeping the status of steps that still exist.
pub(crate) fn align(status: &mut WorkflowStatus, steps: &[WorkflowStep]) {
    let run = status.app_revision.clone();
    let old = std::mem::take(&mut status.steps);
    status.steps = steps
        .iter()
        .map(|s| {
            old.iter()
                .find(|o| o.name == s.name && o.step_type == s.step_type)
                .cloned()
                .unwrap_or_else(|| fresh_status(&run, s))
        })
        .collect();
}

/// Where a step sits: top-level index and, for sub-steps, their index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepPath {
    /// Index of the top-level step.
    pub index: usize,
    /// Index of the sub-step inside a step-group.
    pub sub: Option<usize>,
}

/// What the controller should do next.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Run these deploy steps (one, or the deploy sub-steps of a group) and
    /// [`record`] their outcomes.
    Execute(Vec<StepPath>),
    /// Waiting for resume; re-check after `recheck` when a suspend has a duration.
    Suspended {
        /// When a timed suspend step ends.
        recheck: Option<Duration>,
    },
    /// Every step succeeded.
    Finished,
    /// The workflow was terminated.
    Terminated,
}

/// The result of executing a step.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// Done and healthy.
    Succeeded,
    /// Dispatched; waiting for health (the message says what is not healthy yet).
    Waiting(String),
    /// Failed (retried later).
    Failed(String),
    /// Refused by a cluster that may accept it later (an invalid object, a kind not served
    /// yet): the step keeps running and is retried with backoff.
    Retrying(String),
}

fn now_text(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn elapsed_since(text: Option<&str>, now: DateTime<Utc>) -> Duration {
    text.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| (now - t.with_timezone(&Utc)).to_std().ok())
        .unwrap_or(Duration::ZERO)
}

enum Entered {
    Run,
    Suspend(Option<Duration>),
    Done,
}

/// Moves one step (not a group) forward without I/O.
fn advance(status: &mut StepStatus, step: &WorkflowStep, now: DateTime<Utc>) -> Result<Entered> {
    if status.phase == step_phase::SUCCEEDED || status.phase == step_phase::SKIPPED {
        return Ok(Entered::Done);
    }
    if status.phase == step_phase::PENDING || status.phase.is_empty() {
        status.first_execute_time = Some(now_text(now));
        status.last_execute_time = Some(now_text(now));
        let suspends = match step.step_type.as_str() {
            "suspend" => true,
            "deploy" => !deploy_properties(step)?.auto,
            _ => false,
        };
        if suspends {
            status.phase = step_phase::SUSPENDING.into();
            if step.step_type == "deploy" {
                status.message = format!("Waiting approval to the deploy step \"{}\"", step.name);
            }
        } else {
            status.phase = step_phase::RUNNING.into();
        }
    }
    if step.step_type == "suspend" {
        if status.phase == step_phase::RUNNING {
            // resumed
            status.phase = step_phase::SUCCEEDED.into();
            status.message.clear();
            return Ok(Entered::Done);
        }
        if let Some(duration) = suspend_duration(step)? {
            let elapsed = elapsed_since(status.first_execute_time.as_deref(), now);
            if elapsed >= duration {
                status.phase = step_phase::SUCCEEDED.into();
                return Ok(Entered::Done);
            }
            return Ok(Entered::Suspend(Some(duration - elapsed)));
        }
        return Ok(Entered::Suspend(None));
    }
    if status.phase == step_phase::SUSPENDING {
        return Ok(Entered::Suspend(None));
    }
    Ok(Entered::Run)
}

/// A step that will not run again: succeeded, skipped, or failed for good (timeout, condition).
pub(crate) fn is_done(s: &StepStatus) -> bool {
    s.phase == step_phase::SUCCEEDED || s.phase == step_phase::SKIPPED || is_final_failure(s)
}

fn is_final_failure(s: &StepStatus) -> bool {
    s.phase == step_phase::FAILED && (s.reason == TIMEOUT_REASON || s.reason == CONDITION_REASON)
}

/// The reason of a running step whose dispatch a cluster refused for now (retried with backoff).
pub(crate) const RETRY_REASON: &str = "Retry";

/// The reason of a step whose `if` could not be evaluated (it fails for good).
pub(crate) const CONDITION_REASON: &str = "Condition";

fn finish(s: &mut StepStatus, phase: &str, reason: &str, message: String, now: DateTime<Utc>) {
    s.phase = phase.into();
    s.reason = reason.into();
    s.message = message;
    s.last_execute_time = Some(now_text(now));
}

/// What entering or continuing one top-level step asks for.
enum Next {
    Done,
    Run(Vec<StepPath>),
    Suspend(Option<Duration>),
}

/// Applies the step's `if` (default: no earlier failure) and `timeout`; true when the step is
/// now done (skipped, or failed for good).
fn gate(
    status: &mut WorkflowStatus,
    index: usize,
    step: &WorkflowStep,
    failed_before: bool,
    now: DateTime<Utc>,
) -> bool {
    let pending = {
        let s = &status.steps[index];
        s.phase == step_phase::PENDING || s.phase.is_empty()
    };
    if pending {
        let verdict = match step.condition.as_deref().map(str::trim) {
            None | Some("") => Ok(!failed_before),
            Some(c) => workflow_condition::evaluate(c, &status.steps, &step_inputs(status, step)),
        };
        let s = &mut status.steps[index];
        match verdict {
            Ok(true) => {}
            Ok(false) => {
                let why = format!(
                    "skipped: if {:?} is false",
                    step.condition.as_deref().unwrap_or("no earlier failure")
                );
                finish(s, step_phase::SKIPPED, "Skip", why, now);
                return true;
            }
            Err(e) => {
                finish(s, step_phase::FAILED, CONDITION_REASON, e.to_string(), now);
                return true;
            }
        }
    }
    let s = &mut status.steps[index];
    if let Some(limit) = step.timeout.as_deref().and_then(parse_duration)
        && s.first_execute_time.is_some()
        && elapsed_since(s.first_execute_time.as_deref(), now) >= limit
    {
        let message = format!(
            "step {} timed out after {}",
            step.name,
            step.timeout.as_deref().unwrap_or("")
        );
        finish(s, step_phase::FAILED, TIMEOUT_REASON, message, now);
        return true;
    }
    false
}

/// The step's inputs that have a value so far, by their `from` name, for its `if`.
fn step_inputs(status: &WorkflowStatus, step: &WorkflowStep) -> BTreeMap<String, Value> {
    step.inputs
        .iter()
        .filter_map(|i| Some((i.from.clone(), status.outputs.get(&i.from)?.clone())))
        .collect()
}

/// How the steps and a step-group's sub-steps run (`workflow.mode.steps` / `subSteps`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Mode {
    /// `steps: DAG`: every step whose `dependsOn` steps are done runs at once.
    pub dag: bool,
    /// `subSteps: StepByStep`: a group's sub-steps one after the other (default: together).
    pub sub_steps_in_order: bool,
}

impl Mode {
    /// As `status.workflow.mode` shows it: `<steps>-<subSteps>`.
    pub(crate) fn text(self) -> String {
        let name = |dag: bool| if dag { "DAG" } else { "StepByStep" };
        format!("{}-{}", name(self.dag), name(!self.sub_steps_in_order))
    }
}

/// Moves a step-group: its sub-steps run together, or in order with `in_order`.
fn advance_group(
    status: &mut StepStatus,
    step: &WorkflowStep,
    index: usize,
    in_order: bool,
    now: DateTime<Utc>,
) -> Result<Next> {
    if status.phase == step_phase::SUCCEEDED {
        return Ok(Next::Done);
    }
    if status.first_execute_time.is_none() {
        status.first_execute_time = Some(now_text(now));
    }
    status.phase = step_phase::RUNNING.into();
    let mut run = Vec::new();
    let mut suspended: Option<Option<Duration>> = None;
    for (sub, sub_step) in step.sub_steps.iter().enumerate() {
        match advance(&mut status.sub_steps[sub], sub_step, now)? {
            Entered::Done => {}
            Entered::Run => run.push(StepPath {
                index,
                sub: Some(sub),
            }),
            Entered::Suspend(recheck) => {
                suspended = Some(min_recheck(suspended, recheck));
            }
        }
        if in_order && (!run.is_empty() || suspended.is_some()) {
            break;
        }
    }
    if !run.is_empty() {
        return Ok(Next::Run(run));
    }
    if let Some(recheck) = suspended {
        return Ok(Next::Suspend(recheck));
    }
    status.phase = step_phase::SUCCEEDED.into();
    Ok(Next::Done)
}

fn min_recheck(a: Option<Option<Duration>>, b: Option<Duration>) -> Option<Duration> {
    match (a.flatten(), b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Works out the next action, entering steps as it goes (suspending those that wait for
/// approval, skipping those whose `if` is false, failing those past their `timeout`). Call
/// again after [`record`] to move on. `StepByStep`: one step at a time, in order; `DAG`
/// (`mode.dag`): every step whose `dependsOn` steps are done runs at once.
pub(crate) fn next_action_in(
    status: &mut WorkflowStatus,
    steps: &[WorkflowStep],
    mode: Mode,
    now: DateTime<Utc>,
) -> Result<Action> {
    let dag = mode.dag;
    if status.terminated {
        return Ok(Action::Terminated);
    }
    if status.suspend {
        return Ok(Action::Suspended { recheck: None });
    }
    let mut run = Vec::new();
    let mut suspended: Option<Option<Duration>> = None;
    let mut failed_before = false;
    for (index, step) in steps.iter().enumerate() {
        if is_done(&status.steps[index]) {
            failed_before |= !dag && is_final_failure(&status.steps[index]);
            continue;
        }
        let deps: Vec<&StepStatus> = step
            .depends_on
            .iter()
            .filter_map(|d| status.steps.iter().find(|s| &s.name == d))
            .collect();
        if !deps.iter().all(|d| is_done(d)) {
            if dag {
                continue;
            }
            break;
        }
        let failed = failed_before || deps.iter().any(|d| is_final_failure(d));
        if gate(status, index, step, failed, now) {
            failed_before |= !dag && is_final_failure(&status.steps[index]);
            continue;
        }
        let next = if step.step_type == "step-group" {
            advance_group(
                &mut status.steps[index],
                step,
                index,
                mode.sub_steps_in_order,
                now,
            )?
        } else {
            match advance(&mut status.steps[index], step, now)? {
                Entered::Done => Next::Done,
                Entered::Run => Next::Run(vec![StepPath { index, sub: None }]),
                Entered::Suspend(recheck) => Next::Suspend(recheck),
            }
        };
        match next {
            Next::Done => continue,
            Next::Run(paths) => run.extend(paths),
            Next::Suspend(recheck) => suspended = Some(min_recheck(suspended, recheck)),
        }
        if !dag {
            break;
        }
    }
    if !run.is_empty() {
        return Ok(Action::Execute(run));
    }
    if let Some(recheck) = suspended {
        if recheck.is_none() {
            status.suspend = true;
        }
        return Ok(Action::Suspended { recheck });
    }
    if !status.steps.iter().all(is_done) {
        return Err(Error::InvalidProperties {
            step: steps
                .iter()
                .zip(&status.steps)
                .find(|(_, s)| !is_done(s))
                .map(|(s, _)| s.name.clone())
                .unwrap_or_default(),
            message: "dependsOn can never be met (an unknown or later step, or a cycle)".into(),
        });
    }
    if !status.finished {
        status.finished = true;
        status.end_time = Some(now_text(now));
    }
    Ok(Action::Finished)
}

/// Records the outcome of an executed step.
pub(crate) fn record(
    status: &mut WorkflowStatus,
    path: StepPath,
    outcome: &Outcome,
    now: DateTime<Utc>,
) {
    let Some(top) = status.steps.get_mut(path.index) else {
        return;
    };
    let target = match path.sub {
        Some(sub) => match top.sub_steps.get_mut(sub) {
            Some(s) => s,
            None => return,
        },
        None => top,
    };
    let before = (target.phase.clone(), target.message.clone());
    match outcome {
        Outcome::Succeeded => {
            target.phase = step_phase::SUCCEEDED.into();
            target.message.clear();
            target.reason.clear();
        }
        Outcome::Waiting(message) => {
            target.phase = step_phase::RUNNING.into();
            target.message = message.clone();
            target.reason = "Wait".into();
        }
        Outcome::Failed(message) => {
            target.phase = step_phase::FAILED.into();
            target.message = message.clone();
            target.reason = "Execute".into();
        }
        Outcome::Retrying(message) => {
            target.phase = step_phase::RUNNING.into();
            target.message = format!("{message} (retrying with backoff)");
            target.reason = RETRY_REASON.into();
        }
    }
    // Only a change is a new execution time: an unchanged status is not rewritten.
    if before != (target.phase.clone(), target.message.clone()) {
        target.last_execute_time = Some(now_text(now));
    }
    if path.sub.is_some() {
        let top = &mut status.steps[path.index];
        if let Some(failed) = top.sub_steps.iter().find(|s| s.phase == step_phase::FAILED) {
            top.phase = step_phase::FAILED.into();
            top.message = format!("sub-step {} failed: {}", failed.name, failed.message);
        } else {
            top.phase = step_phase::RUNNING.into();
            top.message.clear();
        }
    }
    status.message = status
        .steps
        .iter()
        .find(|s| s.phase == step_phase::FAILED)
        .map(|s| s.message.clone())
        .unwrap_or_default();
}

/// Whether any step (or sub-step) failed.
pub(crate) fn has_failed(status: &WorkflowStatus) -> bool {
    status.steps.iter().any(|s| {
        s.phase == step_phase::FAILED || s.sub_steps.iter().any(|x| x.phase == step_phase::FAILED)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_apis::ApplicationWorkflow;

    const DAG: Mode = Mode {
        dag: true,
        sub_steps_in_order: false,
    };

    /// The next action in `StepByStep` mode.
    fn next_action(
        status: &mut WorkflowStatus,
        steps: &[WorkflowStep],
        now: DateTime<Utc>,
    ) -> Result<Action> {
        next_action_in(status, steps, Mode::default(), now)
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn steps(v: Value) -> Vec<WorkflowStep> {
        serde_json::from_value(v).unwrap()
    }

    fn policies(v: Value) -> Vec<AppPolicy> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn default_workflow_is_one_deploy_per_topology_with_all_overrides() {
        let got = default_steps(&policies(json!([
            {"name": "beijing-clusters", "type": "topology"},
            {"name": "topology-aws", "type": "topology"},
            {"name": "ha", "type": "override"},
        ])));
        let names: Vec<&str> = got.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["deploy-beijing-clusters", "deploy-topology-aws"]);
        assert_eq!(
            got[1].properties,
            Some(json!({"policies": ["topology-aws", "ha"]}))
        );
        let local = default_steps(&[]);
        assert_eq!(local.len(), 1);
        assert_eq!(local[0].name, "deploy");
    }

    #[test]
    fn ref_and_steps_together_is_an_error_and_missing_ref_is_reported() {
        let mut spec = ApplicationSpec {
            workflow: Some(ApplicationWorkflow {
                reference: Some("w".into()),
                steps: steps(json!([{"name": "a", "type": "deploy"}])),
                mode: None,
            }),
            ..Default::default()
        };
        assert_eq!(effective_steps(&spec, None, &[]), Err(Error::RefAndSteps));
        spec.workflow.as_mut().unwrap().steps.clear();
        assert_eq!(
            effective_steps(&spec, None, &[]).unwrap_err().to_string(),
            "workflow w not found"
        );
        let referenced = steps(json!([{"name": "x", "type": "deploy"}]));
        assert_eq!(
            effective_steps(&spec, Some(&referenced), &[]).unwrap(),
            referenced
        );
        spec.workflow = Some(ApplicationWorkflow {
            steps: steps(json!([{"name": "a", "type": "wat"}])),
            ..Default::default()
        });
        assert!(matches!(
            effective_steps(&spec, None, &[]),
            Err(Error::UnknownStepType { .. })
        ));
    }

    /// The canary walk-through: deploy-test runs, deploy-prod waits for approval, resume deploys.
    #[test]
    fn approval_gate_then_resume() {
        let spec = steps(json!([
            {"name": "deploy-test", "type": "deploy", "properties": {"policies": ["cluster-test"]}},
            {"name": "deploy-prod", "type": "deploy",
             "properties": {"auto": false, "policies": ["cluster-prod"]}},
        ]));
        let mut status = start("demo-v1", &spec, t0());
        assert_eq!(status.mode, "StepByStep-DAG");
        assert_eq!(
            next_action(&mut status, &spec, t0()).unwrap(),
            Action::Execute(vec![StepPath {
                index: 0,
                sub: None
            }])
        );
        let first = StepPath {
            index: 0,
            sub: None,
        };
        record(
            &mut status,
            first,
            &Outcome::Waiting("test/demo/demo is not healthy".into()),
            t0(),
        );
        assert_eq!(status.steps[0].phase, "running");
        assert_eq!(
            next_action(&mut status, &spec, t0()).unwrap(),
            Action::Execute(vec![first])
        );
        record(&mut status, first, &Outcome::Succeeded, t0());
        assert_eq!(
            next_action(&mut status, &spec, t0()).unwrap(),
            Action::Suspended { recheck: None }
        );
        assert!(status.suspend);
        assert_eq!(status.steps[1].phase, "suspending");
        assert_eq!(
            status.steps[1].message,
            "Waiting approval to the deploy step \"deploy-prod\""
        );
        // still suspended on the next pass
        assert_eq!(
            next_action(&mut status, &spec, t0()).unwrap(),
            Action::Suspended { recheck: None }
        );
        // `workflow resume` (flotilla_apis::operation::resume) sets these:
        status.suspend = false;
        status.steps[1].phase = "running".into();
        let second = StepPath {
            index: 1,
            sub: None,
        };
        assert_eq!(
            next_action(&mut status, &spec, t0()).unwrap(),
            Action::Execute(vec![second])
        );
        record(&mut status, second, &Outcome::Succeeded, t0());
        assert_eq!(
            next_action(&mut status, &spec, t0()).unwrap(),
            Action::Finished
        );
        assert!(status.finished);
    }

    #[test]
    fn failed_steps_are_retried_and_block_later_steps() {
        let spec = steps(json!([
            {"name": "a", "type": "deploy"}, {"name": "b", "type": "deploy"},
        ]));
        let mut status = start("r", &spec, t0());
        let a = StepPath {
            index: 0,
            sub: None,
        };
        next_action(&mut status, &spec, t0()).unwrap();
        record(&mut status, a, &Outcome::Failed("boom".into()), t0());
        assert!(has_failed(&status));
        assert_eq!(status.message, "boom");
        assert_eq!(status.steps[1].phase, "pending");
        assert_eq!(
            next_action(&mut status, &spec, t0()).unwrap(),
            Action::Execute(vec![a])
        );
        record(&mut status, a, &Outcome::Succeeded, t0());
        assert!(!has_failed(&status));
        assert_eq!(
            next_action(&mut status, &spec, t0()).unwrap(),
            Action::Execute(vec![StepPath {
                index: 1,
                sub: None
            }])
        );
    }

    #[test]
    fn suspend_with_duration_ends_by_itself_and_without_waits_for_resume() {
        let spec = steps(json!([
            {"name": "pause", "type": "suspend", "properties": {"duration": "30s"}},
            {"name": "hold", "type": "suspend"},
        ]));
        let mut status = start("r", &spec, t0());
        assert_eq!(
            next_action(&mut status, &spec, t0()).unwrap(),
            Action::Suspended {
                recheck: Some(Duration::from_secs(30))
            }
        );
        assert!(!status.suspend, "a timed suspend needs no resume");
        let later = t0() + chrono::Duration::seconds(31);
        assert_eq!(
            next_action(&mut status, &spec, later).unwrap(),
            Action::Suspended { recheck: None }
        );
        assert_eq!(status.steps[0].phase, "succeeded");
        assert_eq!(status.steps[1].phase, "suspending");
        assert!(status.suspend);
        status.suspend = false;
        status.steps[1].phase = "running".into();
        assert_eq!(
            next_action(&mut status, &spec, later).unwrap(),
            Action::Finished
        );
    }

    #[test]
    fn step_group_runs_sub_steps_together() {
        let spec = steps(json!([
            {"name": "g", "type": "step-group", "subSteps": [
                {"name": "x", "type": "deploy"}, {"name": "y", "type": "deploy"}]},
        ]));
        let mut status = start("r", &spec, t0());
        let x = StepPath {
            index: 0,
            sub: Some(0),
        };
        let y = StepPath {
            index: 0,
            sub: Some(1),
        };
        assert_eq!(
            next_action(&mut status, &spec, t0()).unwrap(),
            Action::Execute(vec![x, y])
        );
        record(&mut status, x, &Outcome::Succeeded, t0());
        record(&mut status, y, &Outcome::Waiting("w".into()), t0());
        assert_eq!(
            next_action(&mut status, &spec, t0()).unwrap(),
            Action::Execute(vec![y])
        );
        record(&mut status, y, &Outcome::Succeeded, t0());
        assert_eq!(
            next_action(&mut status, &spec, t0()).unwrap(),
            Action::Finished
        );
        assert_eq!(status.steps[0].phase, "succeeded");

        // subSteps: StepByStep runs them one after the other.
        let in_order = Mode {
            dag: false,
            sub_steps_in_order: true,
        };
        assert_eq!(in_order.text(), "StepByStep-StepByStep");
        let mut status = start("r", &spec, t0());
        let next = |status: &mut WorkflowStatus| next_action_in(status, &spec, in_order, t0());
        assert_eq!(next(&mut status).unwrap(), Action::Execute(vec![x]));
        record(&mut status, x, &Outcome::Waiting("w".into()), t0());
        assert_eq!(next(&mut status).unwrap(), Action::Execute(vec![x]));
        record(&mut status, x, &Outcome::Succeeded, t0());
        assert_eq!(next(&mut status).unwrap(), Action::Execute(vec![y]));
        record(&mut status, y, &Outcome::Succeeded, t0());
        assert_eq!(next(&mut status).unwrap(), Action::Finished);
    }

    #[test]
    fn terminated_and_user_suspended_workflows_do_nothing() {
        let spec = steps(json!([{"name": "a", "type": "deploy"}]));
        let mut status = start("r", &spec, t0());
        status.terminated = true;
        assert_eq!(
            next_action(&mut status, &spec, t0()).unwrap(),
            Action::Terminated
        );
        let mut status = start("r", &spec, t0());
        status.suspend = true;
        assert_eq!(
            next_action(&mut status, &spec, t0()).unwrap(),
            Action::Suspended { recheck: None }
        );
    }

    #[test]
    fn repeating_the_same_outcome_changes_nothing() {
        let spec = steps(json!([{"name": "a", "type": "deploy"}]));
        let mut status = start("r", &spec, t0());
        let a = StepPath {
            index: 0,
            sub: None,
        };
        next_action(&mut status, &spec, t0()).unwrap();
        record(&mut status, a, &Outcome::Waiting("w".into()), t0());
        let before = status.clone();
        let later = t0() + chrono::Duration::seconds(5);
        next_action(&mut status, &spec, later).unwrap();
        record(&mut status, a, &Outcome::Waiting("w".into()), later);
        assert_eq!(status, before);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn align_keeps_existing_step_status() {
        let spec = steps(json!([{"name": "a", "type": "deploy"}]));
        let mut status = start("r", &spec, t0());
        status.steps[0].phase = "succeeded".into();
        let more = steps(json!([{"name": "a", "type": "deploy"}, {"name": "b", "type": "deploy"}]));
        align(&mut status, &more);
        assert_eq!(status.steps[0].phase, "succeeded");
        assert_eq!(status.steps[1].phase, "pending");
    }

    fn phases(status: &WorkflowStatus) -> Vec<(&str, &str)> {
        status
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.phase.as_str()))
            .collect()
    }

    #[test]
    fn timeout_fails_for_good_and_if_picks_what_runs_next() {
        let spec = steps(json!([
            {"name": "apply", "type": "deploy", "timeout": "30s"},
            {"name": "next", "type": "deploy"},
            {"name": "on-timeout", "type": "deploy", "if": "status.apply.timeout"},
            {"name": "cleanup", "type": "deploy", "if": "always"},
        ]));
        let mut status = start("r", &spec, t0());
        let run = |p: usize| {
            Action::Execute(vec![StepPath {
                index: p,
                sub: None,
            }])
        };
        assert_eq!(next_action(&mut status, &spec, t0()).unwrap(), run(0));
        record(
            &mut status,
            StepPath {
                index: 0,
                sub: None,
            },
            &Outcome::Waiting("not healthy".into()),
            t0(),
        );
        let later = t0() + chrono::Duration::seconds(31);
        // Past its timeout the step fails for good; the next step (no `if`) is skipped.
        assert_eq!(next_action(&mut status, &spec, later).unwrap(), run(2));
        assert_eq!(status.steps[0].reason, TIMEOUT_REASON);
        assert_eq!(status.steps[0].message, "step apply timed out after 30s");
        assert_eq!(status.steps[1].phase, step_phase::SKIPPED);
        record(
            &mut status,
            StepPath {
                index: 2,
                sub: None,
            },
            &Outcome::Succeeded,
            later,
        );
        assert_eq!(next_action(&mut status, &spec, later).unwrap(), run(3));
        record(
            &mut status,
            StepPath {
                index: 3,
                sub: None,
            },
            &Outcome::Succeeded,
            later,
        );
        assert_eq!(
            next_action(&mut status, &spec, later).unwrap(),
            Action::Finished
        );
        assert!(has_failed(&status));
        assert_eq!(
            phases(&status),
            [
                ("apply", "failed"),
                ("next", "skipped"),
                ("on-timeout", "succeeded"),
                ("cleanup", "succeeded")
            ]
        );
        assert!(
            check_step(&steps(json!([{"name": "x", "type": "deploy", "timeout": "soon"}]))[0])
                .is_err()
        );
    }

    #[test]
    fn dag_runs_independent_steps_together_and_waits_for_depends_on() {
        let spec = steps(json!([
            {"name": "a", "type": "deploy"},
            {"name": "b", "type": "deploy"},
            {"name": "c", "type": "deploy", "dependsOn": ["a", "b"]},
        ]));
        let mut status = start("r", &spec, t0());
        let path = |p: usize| StepPath {
            index: p,
            sub: None,
        };
        assert_eq!(
            next_action_in(&mut status, &spec, DAG, t0()).unwrap(),
            Action::Execute(vec![path(0), path(1)])
        );
        record(&mut status, path(0), &Outcome::Succeeded, t0());
        record(&mut status, path(1), &Outcome::Waiting("x".into()), t0());
        assert_eq!(
            next_action_in(&mut status, &spec, DAG, t0()).unwrap(),
            Action::Execute(vec![path(1)])
        );
        record(&mut status, path(1), &Outcome::Succeeded, t0());
        assert_eq!(
            next_action_in(&mut status, &spec, DAG, t0()).unwrap(),
            Action::Execute(vec![path(2)])
        );
        // A dependency that can never be met is an error, not a silent wait.
        let cycle = steps(json!([{"name": "a", "type": "deploy", "dependsOn": ["a"]}]));
        let mut status = start("r", &cycle, t0());
        assert!(next_action_in(&mut status, &cycle, DAG, t0()).is_err());
    }
}
