//! Sub-reconciler 3, converge: once the workflow has finished, every pass re-runs the deploy
//! steps (unchanged objects are skipped by hash; every re-assert interval, and on the first
//! pass after a start, they are compared with the desired state and applied again where a
//! field drifted), re-evaluates health and follows cluster label changes. In the pass in which
//! the workflow finishes, a step the workflow ran in that same pass is not run again: its
//! results (objects produced, health, unreachable clusters) are used as they are, so gc still
//! sees every object the workflow's steps produced.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use flotilla_apis::{ApplicationStatus, AppliedResource};

use super::super::workflow::{Outcome, StepPath};
use super::deploy::{DeployResult, Pass};
use super::revision::Revisioned;
use super::status::{merge_services, service_key};
use super::workflow::{WorkflowRun, succeeded_deploy_steps};

/// What the converge pass saw.
#[derive(Default)]
pub(crate) struct Converged {
    /// The pass ran (the workflow has finished).
    pub(crate) ran: bool,
    /// A deploy step failed.
    pub(crate) failed: bool,
    /// Every object the pass produced.
    pub(crate) produced: Vec<AppliedResource>,
    /// Clusters that could not be reached.
    pub(crate) unreachable: BTreeSet<String>,
}

/// Whether this pass re-applies unchanged objects (the re-assert interval has passed).
async fn reassert_due(pass: &Pass<'_>) -> bool {
    let key = format!("{}/{}", pass.app_namespace, pass.app_name);
    let mut last = pass.ctx.last_reassert.lock().await;
    let due = last
        .get(&key)
        .is_none_or(|t| t.elapsed() >= pass.ctx.reassert_interval);
    if due {
        last.insert(key, Instant::now());
    }
    due
}

/// The result of the step at `path` if the workflow ran it in this pass.
fn take_deployed(
    deployed: &mut Vec<(StepPath, DeployResult)>,
    path: StepPath,
) -> Option<DeployResult> {
    let at = deployed.iter().position(|(p, _)| *p == path)?;
    Some(deployed.swap_remove(at).1)
}

/// Re-runs every deploy step of a finished workflow, except those the workflow has just run
/// in this pass: their results are taken as they are (the objects were just applied and read).
pub(crate) async fn reconcile(
    pass: &Pass<'_>,
    run: &Revisioned,
    wf: &mut WorkflowRun,
    status: &mut ApplicationStatus,
) -> Converged {
    if !wf.finished {
        return Converged::default();
    }
    // Reporting drift: re-asserting would correct it.
    let force = reassert_due(pass).await && wf.was_finished && !pass.report_drift;
    let mut converged = Converged {
        ran: true,
        ..Default::default()
    };
    let mut services = Vec::new();
    let mut deployed = std::mem::take(&mut wf.deployed);
    // Once an earlier step is applied again, later ones are too, even if the workflow just
    // ran them: an object two steps write ends as the later step says.
    let mut reapplied = false;
    for (path, step) in succeeded_deploy_steps(&run.steps, &wf.wf) {
        let taken = if reapplied {
            None
        } else {
            take_deployed(&mut deployed, path)
        };
        let result = match taken {
            // Just applied by the workflow in this pass (never forced: not finished before).
            Some(result) => result,
            None => {
                reapplied = true;
                let step = super::steps::with_recorded_inputs(step, &wf.wf.outputs);
                pass.deploy(&step, force).await
            }
        };
        if let Some(Outcome::Failed(message) | Outcome::Retrying(message)) = &result.outcome {
            converged.failed = true;
            wf.wf.message = message.clone();
        }
        converged.produced.extend(result.produced);
        merge_services(&mut services, result.services);
        converged.unreachable.extend(result.unreachable);
    }
    if !converged.failed {
        wf.wf.message.clear();
    }
    // An unreachable cluster keeps its entries, marked as not known to be healthy.
    for old in status
        .services
        .iter()
        .filter(|s| converged.unreachable.contains(&s.cluster))
    {
        if !services.iter().any(|s| service_key(s) == service_key(old)) {
            let mut entry = old.clone();
            entry.healthy = false;
            entry.message = format!("cluster {} is unreachable", old.cluster);
            services.push(entry);
        }
    }
    status.services = services;
    if converged.failed {
        // Retried as an unfinished step would be.
        wf.requeue = wf.requeue.min(Duration::from_secs(30));
    }
    if status.services.iter().any(|s| !s.healthy) {
        // The drift watch wakes the application when an object's health changes.
        wf.requeue = wf.requeue.min(pass.ctx.health_recheck);
    }
    converged
}
