//! Writing a ServiceExport's conditions (`Valid`, `Conflict`) through `/status`, only when
//! they change (`lastTransitionTime` kept while the status stays).

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use super::Export;
use super::conflict::ExportCondition;
use super::observe::mcs_resource;
use crate::cluster::managed_cluster::{Condition, now_rfc3339, set_conditions};

/// Sets the export's conditions in its member (failures are logged; the next pass retries).
pub(crate) async fn write(
    member_client: &kube::Client,
    export: &Export,
    wanted: &[ExportCondition],
) {
    let api: Api<DynamicObject> = Api::namespaced_with(
        member_client.clone(),
        &export.namespace,
        &mcs_resource("ServiceExport", "serviceexports"),
    );
    let current = match api.get_opt(&export.name).await {
        Ok(Some(obj)) => obj,
        _ => return,
    };
    let existing: Vec<Value> = current
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let wanted: Vec<Condition> = wanted
        .iter()
        .map(|c| Condition::new(c.type_, c.status, c.reason, c.message.clone()))
        .collect();
    let Some(conditions) = set_conditions(&existing, &wanted, &now_rfc3339()) else {
        return;
    };
    let patch = json!({"status": {"conditions": conditions}});
    if let Err(e) = api
        .patch_status(&export.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(cluster = %export.cluster, export = %export.name, error = %e, "writing ServiceExport status");
    }
}
