//! `flotilla workflow resume|suspend|terminate|restart|rollback APP`: changes to the
//! Application made through the hub API (the patches come from `flotilla_apis::operation`).

use flotilla_apis::{Application, ApplicationRevision, operation};
use kube::api::{Api, ListParams, Patch, PatchParams};

use crate::args::{AppRef, WorkflowCommand};

/// The field manager workflow operations write with.
pub const FIELD_MANAGER: &str = "flotilla-workflow";

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
pub async fn run(hub_client: &kube::Client, command: WorkflowCommand) -> anyhow::Result<()> {
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
    // the controller.
    for _attempt in 0..10 {
        let app = apps.get(&app_ref.app).await.map_err(api_error)?;
        let result = match op {
            Operation::Resume => operation::resume(&app).map(|p| (p, true)),
            Operation::Suspend => operation::suspend(&app).map(|p| (p, true)),
            Operation::Terminate => operation::terminate(&app).map(|p| (p, true)),
            Operation::Restart => operation::restart(&app).map(|p| (p, true)),
            Operation::Rollback => {
                let revisions: Api<ApplicationRevision> =
                    Api::namespaced(hub_client.clone(), &namespace);
                let prefix = format!("{}-v", app_ref.app);
                let all: Vec<ApplicationRevision> = revisions
                    .list(&ListParams::default())
                    .await
                    .map_err(api_error)?
                    .items
                    .into_iter()
                    .filter(|r| {
                        r.metadata.name.as_deref().is_some_and(|n| {
                            n.strip_prefix(&prefix).is_some_and(|v| {
                                !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit())
                            })
                        })
                    })
                    .collect();
                operation::rollback(&app, &all).map(|p| (p, false))
            }
        };
        let (patch, on_status) = result?;
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
