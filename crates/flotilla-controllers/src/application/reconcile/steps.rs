//! Executes one workflow step the state machine asks for, by type (`deploy` and
//! `apply-component` through the deploy sub-step, `notification`), with its `inputs` set into
//! its properties first and its `outputs` recorded after it succeeded (`workflow_io.rs`).

use std::collections::BTreeMap;

use flotilla_apis::WorkflowStep;
use serde_json::Value;

use super::super::workflow::Outcome;
use super::super::workflow_io;
use super::deploy::{DeployResult, Pass};
use super::notification;

/// What one step did, and the outputs it gives.
pub(crate) struct Executed {
    pub(crate) result: DeployResult,
    pub(crate) outputs: BTreeMap<String, Value>,
}

/// Runs `step` with the run's `outputs` so far.
pub(crate) async fn execute(
    pass: &Pass<'_>,
    step: &WorkflowStep,
    outputs: &BTreeMap<String, Value>,
) -> Executed {
    let failed = |message: String| Executed {
        result: DeployResult::ended(Outcome::Failed(message)),
        outputs: BTreeMap::new(),
    };
    let step = match workflow_io::with_inputs(step, outputs) {
        Ok(s) => s,
        Err(e) => return failed(format!("step {}: {e}", step.name)),
    };
    let mut result = match step.step_type.as_str() {
        "notification" => DeployResult::ended(notification::send(pass, &step).await),
        _ => pass.deploy(&step, false).await,
    };
    let mut given = BTreeMap::new();
    if result.outcome == Some(Outcome::Succeeded)
        && let Err(e) = workflow_io::record_outputs(&step, result.output.as_ref(), &mut given)
    {
        result.outcome = Some(Outcome::Failed(format!("step {}: {e}", step.name)));
    }
    Executed {
        result,
        outputs: given,
    }
}

/// The step as converge re-applies it: with the inputs the run recorded (unchanged when they
/// can no longer be resolved, the workflow having reported that).
pub(crate) fn with_recorded_inputs(
    step: &WorkflowStep,
    outputs: &BTreeMap<String, Value>,
) -> WorkflowStep {
    workflow_io::with_inputs(step, outputs).unwrap_or_else(|_| step.clone())
}
