//! The status an Application shows: conditions, the operation state, history, and the write
//! (a JSON patch of `/status`, also clearing a handled `operation` and the refresh annotation).

use chrono::Utc;
use flotilla_apis::{
    ApplicationCondition, ApplicationSource, ArgoApplication, ArgoApplicationStatus,
    OperationState, REFRESH_ANNOTATION, ResourceResult, RevisionHistory, SyncOperationResult,
};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

/// Condition: the source could not be read or compared.
pub(crate) const COMPARISON_ERROR: &str = "ComparisonError";
/// Condition: the last sync failed.
pub(crate) const SYNC_ERROR: &str = "SyncError";
/// Condition: the spec cannot be acted on (unknown destination).
pub(crate) const INVALID_SPEC_ERROR: &str = "InvalidSpecError";
/// How many history entries are kept.
pub(crate) const HISTORY_LIMIT: usize = 10;

/// Now, RFC 3339 with seconds.
pub(crate) fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Sets condition `kind` to `message` (keeping its transition time if unchanged).
pub(crate) fn set_condition(status: &mut ArgoApplicationStatus, kind: &str, message: &str) {
    if let Some(c) = status
        .conditions
        .iter_mut()
        .find(|c| c.condition_type == kind)
    {
        if c.message != message {
            c.message = message.to_string();
            c.last_transition_time = Some(now());
        }
        return;
    }
    status.conditions.push(ApplicationCondition {
        condition_type: kind.to_string(),
        message: message.to_string(),
        last_transition_time: Some(now()),
    });
}

/// Removes condition `kind`.
pub(crate) fn clear_condition(status: &mut ArgoApplicationStatus, kind: &str) {
    status.conditions.retain(|c| c.condition_type != kind);
}

/// The operation that ran: the requested one, or an automated sync of `revision`.
pub(crate) fn operation_of(requested: Option<&Value>, revision: &str) -> Value {
    match requested {
        Some(op) => op.clone(),
        None => json!({"sync": {"revision": revision}, "initiatedBy": {"automated": true}}),
    }
}

/// The operation state of a finished sync.
pub(crate) fn finished(
    operation: Value,
    started_at: String,
    revision: &str,
    results: Vec<ResourceResult>,
) -> OperationState {
    let failed: Vec<&ResourceResult> = results
        .iter()
        .filter(|r| r.status == "SyncFailed")
        .collect();
    let (phase, message) = if failed.is_empty() {
        (
            "Succeeded",
            "successfully synced (all tasks run)".to_string(),
        )
    } else {
        (
            "Failed",
            format!(
                "one or more objects failed to apply: {}",
                failed
                    .iter()
                    .map(|r| format!("{} {}: {}", r.kind, r.name, r.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )
    };
    OperationState {
        operation,
        phase: phase.into(),
        message,
        sync_result: Some(SyncOperationResult {
            revision: revision.to_string(),
            resources: results,
        }),
        started_at,
        finished_at: Some(now()),
    }
}

/// The operation state of a requested sync that could not start.
pub(crate) fn errored(operation: Value, message: &str) -> OperationState {
    let at = now();
    OperationState {
        operation,
        phase: "Error".into(),
        message: message.to_string(),
        sync_result: None,
        started_at: at.clone(),
        finished_at: Some(at),
    }
}

/// Records a successful sync of `revision` in the history (10 kept).
pub(crate) fn push_history(
    status: &mut ArgoApplicationStatus,
    revision: &str,
    source: &ApplicationSource,
) {
    let id = status.history.last().map(|h| h.id + 1).unwrap_or(0);
    status.history.push(RevisionHistory {
        id,
        revision: revision.to_string(),
        deployed_at: now(),
        source: source.clone(),
    });
    let extra = status.history.len().saturating_sub(HISTORY_LIMIT);
    status.history.drain(..extra);
}

/// Writes `status` when it differs from the stored one (or an operation/refresh is handled).
pub(crate) async fn write(
    hub_client: &kube::Client,
    app: &ArgoApplication,
    mut status: ArgoApplicationStatus,
    handled_operation: bool,
) -> Result<(), kube::Error> {
    let previous = app.status.clone().unwrap_or_default();
    status.reconciled_at = previous.reconciled_at.clone();
    let refresh = app
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(REFRESH_ANNOTATION));
    let clear_operation = handled_operation && app.operation.is_some();
    if status == previous && !refresh && !clear_operation {
        return Ok(());
    }
    status.reconciled_at = Some(now());
    let mut ops = vec![
        json!({"op": "test", "path": "/metadata/resourceVersion",
            "value": app.metadata.resource_version.clone().unwrap_or_default()}),
        json!({"op": "add", "path": "/status", "value": status}),
    ];
    if clear_operation {
        ops.push(json!({"op": "remove", "path": "/operation"}));
    }
    if refresh {
        ops.push(json!({"op": "remove",
            "path": format!("/metadata/annotations/{}", REFRESH_ANNOTATION.replace('/', "~1"))}));
    }
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(ops)).expect("a valid JSON patch");
    let api: Api<ArgoApplication> = Api::namespaced(
        hub_client.clone(),
        app.metadata.namespace.as_deref().unwrap_or("default"),
    );
    api.patch(
        app.metadata.name.as_deref().unwrap_or_default(),
        &PatchParams::default(),
        &Patch::Json::<()>(patch),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_replace_by_type_and_history_keeps_ten() {
        let mut status = ArgoApplicationStatus::default();
        set_condition(&mut status, COMPARISON_ERROR, "a");
        set_condition(&mut status, COMPARISON_ERROR, "b");
        assert_eq!(status.conditions.len(), 1);
        assert_eq!(status.conditions[0].message, "b");
        clear_condition(&mut status, COMPARISON_ERROR);
        assert!(status.conditions.is_empty());
        for i in 0..12 {
            push_history(&mut status, &format!("r{i}"), &ApplicationSource::default());
        }
        assert_eq!(status.history.len(), HISTORY_LIMIT);
        assert_eq!(status.history[0].id, 2);
        assert_eq!(status.history[9].revision, "r11");
    }

    #[test]
    fn a_failed_object_fails_the_operation() {
        let ok = ResourceResult {
            kind: "ConfigMap".into(),
            name: "a".into(),
            status: "Synced".into(),
            ..Default::default()
        };
        let bad = ResourceResult {
            kind: "Deployment".into(),
            name: "b".into(),
            status: "SyncFailed".into(),
            message: "forbidden".into(),
            ..Default::default()
        };
        let state = finished(json!({}), now(), "abc", vec![ok.clone()]);
        assert_eq!(state.phase, "Succeeded");
        let state = finished(json!({}), now(), "abc", vec![ok, bad]);
        assert_eq!(state.phase, "Failed");
        assert!(
            state.message.contains("Deployment b: forbidden"),
            "{}",
            state.message
        );
    }
}
