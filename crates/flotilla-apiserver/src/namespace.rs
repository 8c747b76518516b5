//! Namespace lifecycle: objects may only be created in namespaces that exist and are not
//! terminating; deleting a namespace marks it Terminating, deletes everything in it, then
//! removes it.

use std::sync::Arc;
use std::time::Duration;

use flotilla_core::status::ApiError;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::objects::{self, meta_mut, meta_str, now_rfc3339};
use crate::registry::ResourceInfo;
use crate::state::ApiState;
use crate::store::delete::{DeleteOptions, Deleted, delete_object};

/// The finalizer the namespace lifecycle owns (in `spec.finalizers`).
pub(crate) const KUBERNETES_FINALIZER: &str = "kubernetes";

/// The namespace a storage change shows terminating (made through any hub sharing the
/// store), for the lifecycle task.
pub(crate) fn terminating_in(change: &flotilla_storage::Event) -> Option<String> {
    let flotilla_storage::Event::Put { kv, .. } = change else {
        return None;
    };
    let name = crate::store::keys::cluster_scoped_name(&crate::store::keys::NAMESPACES, &kv.key)?;
    if !kv
        .value
        .windows(b"Terminating".len())
        .any(|w| w == b"Terminating")
    {
        return None;
    }
    let ns = objects::decode(kv).ok()?;
    (ns.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating"))
        .then(|| name.to_string())
}

fn namespaces_info(state: &ApiState) -> Arc<ResourceInfo> {
    state
        .registry
        .snapshot()
        .lookup("", "v1", "namespaces")
        .expect("namespaces are always served")
}

/// Fails unless `namespace` exists and is not terminating.
pub(crate) async fn check_usable(
    state: &ApiState,
    info: &ResourceInfo,
    namespace: &str,
    name: &str,
) -> Result<(), ApiError> {
    use crate::namespace_cache::Phase;
    match state.namespaces.phase(namespace).await? {
        None => Err(ApiError::not_found("", "namespaces", namespace)),
        Some(Phase::Terminating) => {
            let mut e = ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                info.qualified()
            ));
            e.name = Some(name.to_string());
            e.group = Some(info.group.clone()).filter(|g| !g.is_empty());
            e.kind = Some(info.resource.clone());
            e.causes = vec![flotilla_core::status::StatusCause {
                reason: "NamespaceTerminating".into(),
                message: format!("namespace {namespace} is being terminated"),
                field: "metadata.namespace".into(),
            }];
            Err(e)
        }
        Some(Phase::Active) => Ok(()),
    }
}

/// DELETE of a namespace: mark it Terminating; the lifecycle task empties and removes it.
pub(crate) async fn begin_delete(
    state: &ApiState,
    info: &ResourceInfo,
    current: Value,
    revision: flotilla_storage::Revision,
    dry_run: bool,
) -> Result<Deleted, ApiError> {
    if current.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating") {
        return Ok(Deleted::Pending(current));
    }
    let mut next = current.clone();
    meta_mut(&mut next).insert("deletionTimestamp".into(), json!(now_rfc3339()));
    meta_mut(&mut next).insert("deletionGracePeriodSeconds".into(), json!(0));
    next["status"]["phase"] = json!("Terminating");
    if dry_run {
        return Ok(Deleted::Pending(next));
    }
    match state.store.update(info, &next, revision).await? {
        crate::store::Written::Stored(obj) => Ok(Deleted::Pending(obj)),
        crate::store::Written::Deleted(obj) => Ok(Deleted::Gone(obj)),
    }
}

/// Deletes everything in a terminating namespace; true when it is empty.
async fn empty_namespace(state: &ApiState, namespace: &str) -> Result<bool, ApiError> {
    let mut empty = true;
    for info in state.registry.snapshot().stored_resources() {
        if !info.namespaced {
            continue;
        }
        let objects = state.store.list(&info, namespace).await?;
        for (obj, _) in objects {
            empty = false;
            if !meta_str(&obj, "deletionTimestamp").is_empty() {
                continue;
            }
            let opts = DeleteOptions {
                propagation: Some("Background".into()),
                ..Default::default()
            };
            match delete_object(state, &info, namespace, meta_str(&obj, "name"), &opts).await {
                Ok(_) => {}
                Err(e) if e.reason == "NotFound" || e.reason == "Conflict" => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(empty)
}

/// Finishes a terminating namespace if it is empty; true when it is gone.
async fn finish(state: &ApiState, name: &str) -> Result<bool, ApiError> {
    let info = namespaces_info(state);
    let Some((ns, _)) = state.store.get(&info, "", name).await? else {
        return Ok(true);
    };
    if ns.pointer("/status/phase").and_then(Value::as_str) != Some("Terminating") {
        return Ok(true);
    }
    if !empty_namespace(state, name).await? {
        return Ok(false);
    }
    // Re-read (deleting the contents does not touch the namespace).
    let Some((mut ns, rev)) = state.store.get(&info, "", name).await? else {
        return Ok(true);
    };
    if let Some(f) = ns
        .pointer_mut("/spec/finalizers")
        .and_then(Value::as_array_mut)
    {
        f.retain(|v| v != KUBERNETES_FINALIZER);
    }
    if objects::finalizers(&ns).is_empty() {
        state.store.delete_now(&info, &ns, rev).await?;
        Ok(true)
    } else {
        state.store.update(&info, &ns, rev).await?;
        Ok(false)
    }
}

/// Runs the namespace lifecycle on the names `rx` brings (see [`terminating_in`]) until
/// dropped.
pub(crate) async fn run(state: Arc<ApiState>, mut rx: mpsc::UnboundedReceiver<String>) {
    {
        let mut pending: Vec<String> = Vec::new();
        // Namespaces left terminating by an earlier run.
        let info = namespaces_info(&state);
        if let Ok(all) = state.store.list(&info, "").await {
            for (ns, _) in all {
                if ns.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating") {
                    pending.push(meta_str(&ns, "name").to_string());
                }
            }
        }
        loop {
            let mut still = Vec::new();
            for name in std::mem::take(&mut pending) {
                match finish(&state, &name).await {
                    Ok(true) => {}
                    Ok(false) => still.push(name),
                    Err(e) => {
                        tracing::warn!(namespace = %name, error = %e.message, "namespace cleanup failed; retrying");
                        still.push(name);
                    }
                }
            }
            pending = still;
            let wait = if pending.is_empty() {
                Duration::from_secs(3600)
            } else {
                Duration::from_millis(500)
            };
            tokio::select! {
                got = rx.recv() => match got {
                    Some(name) => {
                        if !pending.contains(&name) {
                            pending.push(name);
                        }
                        while let Ok(more) = rx.try_recv() {
                            if !pending.contains(&more) {
                                pending.push(more);
                            }
                        }
                    }
                    None => return,
                },
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
