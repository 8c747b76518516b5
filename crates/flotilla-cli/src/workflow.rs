//! `flotilla workflow resume|suspend|terminate|restart|rollback APP`: changes to the
//! Application made through the hub API (the patches come from `flotilla_apis::operation`).
//! A rollback also writes back the standalone Policies and Workflow the target revision
//! recorded, just before the spec patch, so the rolled-back application runs with the copies
//! it used then and not with their current versions.

use flotilla_apis::{Application, ApplicationRevision, Policy, Workflow, operation};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

use crate::args::{AppRef, WorkflowCommand};

/// The field manager workflow operations write with.
pub(crate) const FIELD_MANAGER: &str = "flotilla-workflow";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Resume,
    Suspend,
    Terminate,
    Restart,
    Rollback,
}

impl Operation {
    fn verb(self) -> &'static str {
        match self {
            Operation::Resume => "resume",
            Operation::Suspend => "suspend",
            Operation::Terminate => "terminate",
            Operation::Restart => "restart",
            Operation::Rollback => "rollback",
        }
    }
}

/// Runs a `workflow` sub-command.
pub(crate) async fn run(hub_client: &kube::Client, command: WorkflowCommand) -> anyhow::Result<()> {
    let (op, app_ref) = match command {
        WorkflowCommand::Resume(a) => (Operation::Resume, a),
        WorkflowCommand::Suspend(a) => (Operation::Suspend, a),
        WorkflowCommand::Terminate(a) => (Operation::Terminate, a),
        WorkflowCommand::Restart(a) => (Operation::Restart, a),
        WorkflowCommand::Rollback(a) => (Operation::Rollback, a),
    };
    operate(hub_client, op, &app_ref).await?;
    println!("Successfully {} workflow: {}", op.verb(), app_ref.app);
    Ok(())
}

fn api_error(e: kube::Error) -> anyhow::Error {
    match e {
        kube::Error::Api(status) => {
            anyhow::anyhow!("Error from server ({}): {}", status.reason, status.message)
        }
        other => other.into(),
    }
}

async fn operate(hub_client: &kube::Client, op: Operation, app_ref: &AppRef) -> anyhow::Result<()> {
    let namespace = app_ref
        .namespace
        .clone()
        .unwrap_or_else(|| hub_client.default_namespace().to_string());
    let apps: Api<Application> = Api::namespaced(hub_client.clone(), &namespace);
    // Each patch carries the resourceVersion it was computed from: retry on a conflict with
    // the controller. A rollback checks and restores the recorded Policies and Workflow once;
    // a retry only recomputes its spec patch.
    let mut rolling_back: Option<ApplicationRevision> = None;
    for _attempt in 0..10 {
        let app = apps.get(&app_ref.app).await.map_err(api_error)?;
        let (patch, on_status) = match op {
            Operation::Resume => (operation::resume(&app)?, true),
            Operation::Suspend => (operation::suspend(&app)?, true),
            Operation::Terminate => (operation::terminate(&app)?, true),
            Operation::Restart => (operation::restart(&app)?, true),
            Operation::Rollback => match &rolling_back {
                Some(target) => (operation::rollback_to(&app, target), false),
                None => {
                    let target = start_rollback(hub_client, &namespace, &app).await?;
                    let patch = operation::rollback_to(&app, &target);
                    rolling_back = Some(target);
                    (patch, false)
                }
            },
        };
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        let sent = if on_status {
            apps.patch_status(&app_ref.app, &params, &Patch::Merge(&patch))
                .await
        } else {
            apps.patch(&app_ref.app, &params, &Patch::Merge(&patch))
                .await
        };
        match sent {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(e) => return Err(api_error(e)),
        }
    }
    anyhow::bail!(
        "can not {} workflow {}: the application keeps changing, try again",
        op.verb(),
        app_ref.app
    )
}

/// Checks a rollback of `app` (not running, an earlier successful revision exists), writes
/// back the target revision's recorded Policies and Workflow first (so that, with a
/// publishVersion, the new run starts from them) and returns the target.
async fn start_rollback(
    hub_client: &kube::Client,
    namespace: &str,
    app: &Application,
) -> anyhow::Result<ApplicationRevision> {
    let name = app.metadata.name.clone().unwrap_or_default();
    let all = revisions_of(hub_client, namespace, &name).await?;
    operation::rollback(app, &all)?;
    let target = operation::rollback_target(app, &all)?.clone();
    restore_recorded(hub_client, namespace, &target).await?;
    Ok(target)
}

/// The revisions `<app>-v<N>` of one application.
async fn revisions_of(
    hub_client: &kube::Client,
    namespace: &str,
    app: &str,
) -> anyhow::Result<Vec<ApplicationRevision>> {
    let revisions: Api<ApplicationRevision> = Api::namespaced(hub_client.clone(), namespace);
    let prefix = format!("{app}-v");
    Ok(revisions
        .list(&ListParams::default())
        .await
        .map_err(api_error)?
        .items
        .into_iter()
        .filter(|r| {
            r.metadata.name.as_deref().is_some_and(|n| {
                n.strip_prefix(&prefix)
                    .is_some_and(|v| !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()))
            })
        })
        .collect())
}

/// Writes the standalone Policies and Workflow recorded in `target` back to the hub.
async fn restore_recorded(
    hub_client: &kube::Client,
    namespace: &str,
    target: &ApplicationRevision,
) -> anyhow::Result<()> {
    let policies: Api<Policy> = Api::namespaced(hub_client.clone(), namespace);
    for recorded in &target.spec.policies {
        let mut policy = Policy {
            api_version: Policy::API_VERSION.into(),
            kind: Policy::KIND.into(),
            policy_type: recorded.policy_type.clone(),
            properties: recorded.properties.clone(),
            ..Default::default()
        };
        policy.metadata.name = Some(recorded.name.clone());
        put(&policies, policy, |live: &mut Policy, p: &Policy| {
            live.policy_type = p.policy_type.clone();
            live.properties = p.properties.clone();
        })
        .await?;
    }
    let reference = target
        .spec
        .application
        .workflow
        .as_ref()
        .and_then(|w| w.reference.clone());
    if let (Some(name), Some(recorded)) = (reference, &target.spec.workflow) {
        let workflows: Api<Workflow> = Api::namespaced(hub_client.clone(), namespace);
        let mut workflow = Workflow {
            api_version: Workflow::API_VERSION.into(),
            kind: Workflow::KIND.into(),
            mode: recorded.mode.clone(),
            steps: recorded.steps.clone(),
            ..Default::default()
        };
        workflow.metadata.name = Some(name);
        put(&workflows, workflow, |live: &mut Workflow, w: &Workflow| {
            live.mode = w.mode.clone();
            live.steps = w.steps.clone();
        })
        .await?;
    }
    Ok(())
}

/// Creates `object`, or copies its content (`copy`) onto the live one and replaces it
/// (retrying on a conflict).
async fn put<K>(api: &Api<K>, object: K, copy: impl Fn(&mut K, &K)) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    };
    for _attempt in 0..10 {
        let written = match api.get_opt(&name).await.map_err(api_error)? {
            Some(mut live) => {
                copy(&mut live, &object);
                api.replace(&name, &params, &live).await
            }
            None => api.create(&params, &object).await,
        };
        match written {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(e) => return Err(api_error(e)),
        }
    }
    anyhow::bail!("can not restore {name}: it keeps changing, try again")
}
