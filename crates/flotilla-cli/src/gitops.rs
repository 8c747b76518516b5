//! `flotilla gitops status|sync|diff NAME`: Argo CD Applications, through the hub API only.
//! `sync` sets the Application's `operation` (as `argocd app sync` does) and waits for the
//! controller's result; `diff` asks for a refresh and prints what the controller found.

use std::time::{Duration, Instant};

use flotilla_apis::{ArgoApplication, ArgoApplicationStatus, REFRESH_ANNOTATION};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::args::{AppRef, GitopsCommand, GitopsSyncArgs};
use crate::table;

/// Runs a `gitops` sub-command.
pub(crate) async fn run(hub_client: &kube::Client, command: GitopsCommand) -> anyhow::Result<()> {
    match command {
        GitopsCommand::Status(app) => {
            let (api, name) = api(hub_client, &app);
            print!("{}", render_status(&get(&api, &name).await?));
            Ok(())
        }
        GitopsCommand::Sync(args) => sync(hub_client, &args).await,
        GitopsCommand::Diff(app) => diff(hub_client, &app).await,
    }
}

fn api(hub_client: &kube::Client, app: &AppRef) -> (Api<ArgoApplication>, String) {
    let namespace = app
        .namespace
        .clone()
        .unwrap_or_else(|| hub_client.default_namespace().to_string());
    (
        Api::namespaced(hub_client.clone(), &namespace),
        app.app.clone(),
    )
}

fn api_error(e: kube::Error) -> anyhow::Error {
    match e {
        kube::Error::Api(status) => {
            anyhow::anyhow!("Error from server ({}): {}", status.reason, status.message)
        }
        other => other.into(),
    }
}

async fn get(api: &Api<ArgoApplication>, name: &str) -> anyhow::Result<ArgoApplication> {
    api.get(name).await.map_err(api_error)
}

fn short(revision: &str) -> &str {
    revision.get(..7).unwrap_or(revision)
}

/// The `status` page: summary lines, then one row per resource.
pub(crate) fn render_status(app: &ArgoApplication) -> String {
    let status = app.status.clone().unwrap_or_default();
    let source = &app.spec.source;
    let destination = &app.spec.destination;
    let dest_cluster = if destination.name.is_empty() {
        &destination.server
    } else {
        &destination.name
    };
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<15}{v}\n"));
    line("Name:", app.metadata.name.clone().unwrap_or_default());
    line("Project:", app.spec.project.clone());
    line("Repo:", source.repo_url.clone());
    line(
        "Target:",
        if source.target_revision.is_empty() {
            "HEAD".into()
        } else {
            source.target_revision.clone()
        },
    );
    line("Path:", source.path.clone());
    line(
        "Destination:",
        format!("{dest_cluster}/{}", destination.namespace),
    );
    line(
        "Sync Status:",
        format!(
            "{} ({})",
            or_unknown(&status.sync.status),
            short(&status.sync.revision)
        ),
    );
    line("Health Status:", or_unknown(&status.health.status));
    if let Some(op) = &status.operation_state {
        line("Operation:", format!("Sync {}: {}", op.phase, op.message));
    }
    for c in &status.conditions {
        line("Condition:", format!("{}: {}", c.condition_type, c.message));
    }
    if !status.resources.is_empty() {
        out.push('\n');
        out.push_str(&resource_table(&status));
    }
    out
}

fn or_unknown(s: &str) -> String {
    if s.is_empty() {
        "Unknown".into()
    } else {
        s.to_string()
    }
}

fn resource_table(status: &ArgoApplicationStatus) -> String {
    let headers: Vec<String> = [
        "GROUP",
        "KIND",
        "NAMESPACE",
        "NAME",
        "STATUS",
        "HEALTH",
        "MESSAGE",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let results = status
        .operation_state
        .as_ref()
        .and_then(|o| o.sync_result.as_ref())
        .map(|r| r.resources.clone())
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = status
        .resources
        .iter()
        .map(|r| {
            let message = results
                .iter()
                .find(|x| x.kind == r.kind && x.name == r.name && x.namespace == r.namespace)
                .map(|x| x.message.clone())
                .unwrap_or_default();
            let sync = if r.requires_pruning == Some(true) {
                "OutOfSync (requires pruning)".to_string()
            } else {
                r.status.clone()
            };
            vec![
                r.group.clone(),
                r.kind.clone(),
                r.namespace.clone(),
                r.name.clone(),
                sync,
                r.health
                    .as_ref()
                    .map(|h| h.status.clone())
                    .unwrap_or_default(),
                message,
            ]
        })
        .collect();
    table::render(&headers, &rows)
}

/// Polls the Application until `done` says so, or fails after `timeout`.
async fn wait_for(
    api: &Api<ArgoApplication>,
    name: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&ArgoApplication) -> bool,
) -> anyhow::Result<ArgoApplication> {
    let deadline = Instant::now() + timeout;
    loop {
        let app = get(api, name).await?;
        if done(&app) {
            return Ok(app);
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "timed out after {}s waiting for {what} of application {name}",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn sync(hub_client: &kube::Client, args: &GitopsSyncArgs) -> anyhow::Result<()> {
    let (api, name) = api(hub_client, &args.app);
    let before = get(&api, &name).await?;
    let revision = before.spec.source.target_revision.clone();
    let operation = json!({"operation": {
        "initiatedBy": {"username": "flotilla-cli"},
        "sync": {"revision": revision, "prune": args.prune},
    }});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&operation))
        .await
        .map_err(api_error)?;
    // The controller clears `operation` in the same write that records its result.
    let app = wait_for(&api, &name, args.timeout, "the sync", |a| {
        a.operation.is_none()
    })
    .await?;
    print!("{}", render_status(&app));
    let state = app
        .status
        .and_then(|s| s.operation_state)
        .unwrap_or_default();
    if state.phase != "Succeeded" {
        anyhow::bail!("sync {}: {}", state.phase, state.message);
    }
    Ok(())
}

async fn diff(hub_client: &kube::Client, app_ref: &AppRef) -> anyhow::Result<()> {
    let (api, name) = api(hub_client, app_ref);
    let refresh = json!({"metadata": {"annotations": {REFRESH_ANNOTATION: "normal"}}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&refresh))
        .await
        .map_err(api_error)?;
    let app = wait_for(&api, &name, Duration::from_secs(60), "a refresh", |a| {
        !a.metadata
            .annotations
            .as_ref()
            .is_some_and(|m| m.contains_key(REFRESH_ANNOTATION))
    })
    .await?;
    let status = app.status.unwrap_or_default();
    if let Some(c) = status
        .conditions
        .iter()
        .find(|c| c.condition_type == "ComparisonError")
    {
        anyhow::bail!("{}: {}", c.condition_type, c.message);
    }
    let text = render_diff(&status);
    print!("{text}");
    if !text.is_empty() {
        // `diff` convention: 1 when something differs.
        std::process::exit(1);
    }
    Ok(())
}

/// One block per resource that is out of sync.
pub(crate) fn render_diff(status: &ArgoApplicationStatus) -> String {
    let mut out = String::new();
    for r in status.resources.iter().filter(|r| r.status != "Synced") {
        let group = if r.group.is_empty() {
            String::new()
        } else {
            format!("{}/", r.group)
        };
        out.push_str(&format!(
            "===== {group}{} {}/{} ======\n",
            r.kind, r.namespace, r.name
        ));
        if r.requires_pruning == Some(true) {
            out.push_str("not in Git (requires pruning)\n");
        } else if r.diff.is_empty() {
            out.push_str("missing from the cluster\n");
        }
        for d in &r.diff {
            out.push_str(&format!("{d}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_apis::ResourceStatus;

    #[test]
    fn diff_lists_out_of_sync_resources_only() {
        let status = ArgoApplicationStatus {
            resources: vec![
                ResourceStatus {
                    group: "apps".into(),
                    kind: "Deployment".into(),
                    namespace: "web".into(),
                    name: "w".into(),
                    status: "OutOfSync".into(),
                    diff: vec!["spec.replicas: git 3 != live 2".into()],
                    ..Default::default()
                },
                ResourceStatus {
                    kind: "ConfigMap".into(),
                    name: "c".into(),
                    status: "Synced".into(),
                    ..Default::default()
                },
                ResourceStatus {
                    kind: "Secret".into(),
                    namespace: "web".into(),
                    name: "s".into(),
                    status: "OutOfSync".into(),
                    requires_pruning: Some(true),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            render_diff(&status),
            "===== apps/Deployment web/w ======\nspec.replicas: git 3 != live 2\n===== Secret web/s ======\nnot in Git (requires pruning)\n"
        );
        assert_eq!(render_diff(&ArgoApplicationStatus::default()), "");
    }
}
