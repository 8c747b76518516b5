//! Garbage collection by `ownerReferences`, in a background task fed by storage changes
//! (on the elected hub only, see `leader_tasks`):
//! when an owner is gone, dependents whose owners are all gone are deleted (dangling
//! references to the gone owner are dropped from dependents that still have a live owner);
//! the `foregroundDeletion` and `orphan` finalizers are carried out before the owner goes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use flotilla_core::status::ApiError;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::objects::{self, meta_mut, meta_str};
use crate::registry::ResourceInfo;
use crate::state::ApiState;
use crate::store::delete::{DeleteOptions, FOREGROUND, ORPHAN, delete_object};

/// Work for the collector.
#[derive(Debug, Clone)]
pub(crate) enum GcEvent {
    /// An object is gone for good.
    OwnerGone { uid: String, namespace: String },
    /// An object is being deleted with a GC finalizer.
    Finalize {
        group: String,
        resource: String,
        namespace: String,
        name: String,
    },
}

impl GcEvent {
    /// The collector's work implied by one storage change, made through any hub sharing
    /// the store: a removed object may leave dependents behind; an object that got a
    /// `deletionTimestamp` with a GC finalizer needs its dependents handled first.
    pub(crate) fn from_change(change: &flotilla_storage::Event) -> Option<GcEvent> {
        match change {
            flotilla_storage::Event::Delete { prev, .. } => {
                let removed = objects::decode(prev).ok()?;
                let uid = meta_str(&removed, "uid");
                (!uid.is_empty()).then(|| GcEvent::OwnerGone {
                    uid: uid.to_string(),
                    namespace: meta_str(&removed, "namespace").to_string(),
                })
            }
            flotilla_storage::Event::Put { kv, .. } => {
                // Most writes carry neither; skip decoding them.
                if !contains(&kv.value, b"deletionTimestamp")
                    || !(contains(&kv.value, FOREGROUND.as_bytes())
                        || contains(&kv.value, ORPHAN.as_bytes()))
                {
                    return None;
                }
                let obj = objects::decode(kv).ok()?;
                obj.pointer("/metadata/deletionTimestamp")?;
                let f = objects::finalizers(&obj);
                if !f.iter().any(|f| f == FOREGROUND || f == ORPHAN) {
                    return None;
                }
                let (group, resource) = crate::store::keys::group_resource(&kv.key)?;
                Some(GcEvent::Finalize {
                    group,
                    resource,
                    namespace: meta_str(&obj, "namespace").to_string(),
                    name: meta_str(&obj, "name").to_string(),
                })
            }
        }
    }
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Every object that names one of `uids` as an owner: (resource, object, revision).
/// Stored bytes are searched before anything is decoded, so a scan of objects without
/// owner references is cheap.
async fn dependents(
    state: &ApiState,
    uids: &HashSet<String>,
    namespace: &str,
) -> Result<Vec<(Arc<ResourceInfo>, Value, i64)>, ApiError> {
    let mut out = Vec::new();
    for info in state.registry.snapshot().stored_resources() {
        let mut start: Option<String> = None;
        loop {
            let page = state
                .store
                .range(&info, namespace, start.as_deref(), 1000)
                .await?;
            for kv in &page.kvs {
                if !contains(&kv.value, b"ownerReferences") {
                    continue;
                }
                let obj = objects::decode(kv)?;
                if owner_uids(&obj).iter().any(|u| uids.contains(u)) {
                    out.push((info.clone(), obj, kv.mod_revision));
                }
            }
            if !page.more || page.kvs.is_empty() {
                break;
            }
            start = page.kvs.last().map(|kv| kv.key.clone());
        }
    }
    Ok(out)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether the owner a reference points to still exists (same uid).
async fn owner_alive(state: &ApiState, reference: &Value, namespace: &str) -> bool {
    let api_version = reference
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = reference.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = reference.get("name").and_then(Value::as_str).unwrap_or("");
    let uid = reference.get("uid").and_then(Value::as_str).unwrap_or("");
    let (group, version) = flotilla_core::resource::split_api_version(api_version);
    let Some(info) = state.registry.snapshot().by_kind(group, version, kind) else {
        // An owner of a kind we do not serve cannot be checked; keep the dependent.
        return true;
    };
    let ns = if info.namespaced { namespace } else { "" };
    match state.store.get(&info, ns, name).await {
        Ok(Some((o, _))) => meta_str(&o, "uid") == uid,
        Ok(None) => false,
        Err(_) => true,
    }
}

/// Deletes (or detaches) the dependents of owners that are gone.
async fn on_owners_gone(
    state: &ApiState,
    gone: &HashSet<String>,
    namespace: &str,
) -> Result<(), ApiError> {
    for (info, obj, rev) in dependents(state, gone, namespace).await? {
        let ns = meta_str(&obj, "namespace").to_string();
        let refs: Vec<Value> = obj
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut live = Vec::new();
        for r in &refs {
            if r.get("uid")
                .and_then(Value::as_str)
                .is_some_and(|u| gone.contains(u))
            {
                continue;
            }
            if owner_alive(state, r, &ns).await {
                live.push(r.clone());
            }
        }
        if live.is_empty() {
            let opts = DeleteOptions {
                propagation: Some("Background".into()),
                ..Default::default()
            };
            match delete_object(state, &info, &ns, meta_str(&obj, "name"), &opts).await {
                Ok(_) => {}
                Err(e) if e.reason == "NotFound" || e.reason == "Conflict" => {}
                Err(e) => return Err(e),
            }
        } else {
            let mut next = obj.clone();
            let kept: Vec<Value> = refs
                .into_iter()
                .filter(|r| {
                    !r.get("uid")
                        .and_then(Value::as_str)
                        .is_some_and(|u| gone.contains(u))
                })
                .collect();
            meta_mut(&mut next).insert("ownerReferences".into(), json!(kept));
            let _ = state.store.update(&info, &next, rev).await;
        }
    }
    Ok(())
}

/// Carries out `orphan` / `foregroundDeletion`; true when done.
async fn on_finalize(
    state: &ApiState,
    group: &str,
    resource: &str,
    namespace: &str,
    name: &str,
) -> Result<bool, ApiError> {
    let snapshot = state.registry.snapshot();
    let Some(info) = snapshot
        .stored_resources()
        .into_iter()
        .find(|r| r.group == group && r.resource == resource)
    else {
        return Ok(true);
    };
    let Some((obj, _)) = state.store.get(&info, namespace, name).await? else {
        return Ok(true);
    };
    let uid = meta_str(&obj, "uid").to_string();
    let finalizers = objects::finalizers(&obj);
    let ns_scope = if info.namespaced { namespace } else { "" };
    if finalizers.iter().any(|f| f == ORPHAN) {
        for (dinfo, dep, rev) in dependents(state, &HashSet::from([uid.clone()]), ns_scope).await? {
            let mut next = dep.clone();
            let kept: Vec<Value> = dep
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.get("uid").and_then(Value::as_str) != Some(uid.as_str()))
                .collect();
            if kept.is_empty() {
                meta_mut(&mut next).remove("ownerReferences");
            } else {
                meta_mut(&mut next).insert("ownerReferences".into(), json!(kept));
            }
            state.store.update(&dinfo, &next, rev).await?;
        }
        remove_finalizer(state, &info, namespace, name, ORPHAN).await?;
        return Ok(true);
    }
    if finalizers.iter().any(|f| f == FOREGROUND) {
        let deps = dependents(state, &HashSet::from([uid.clone()]), ns_scope).await?;
        if deps.is_empty() {
            remove_finalizer(state, &info, namespace, name, FOREGROUND).await?;
            return Ok(true);
        }
        for (dinfo, dep, _) in deps {
            if meta_str(&dep, "deletionTimestamp").is_empty() {
                let opts = DeleteOptions {
                    propagation: Some("Foreground".into()),
                    ..Default::default()
                };
                match delete_object(
                    state,
                    &dinfo,
                    meta_str(&dep, "namespace"),
                    meta_str(&dep, "name"),
                    &opts,
                )
                .await
                {
                    Ok(_) => {}
                    Err(e) if e.reason == "NotFound" || e.reason == "Conflict" => {}
                    Err(e) => return Err(e),
                }
            }
        }
        return Ok(false);
    }
    Ok(true)
}

async fn remove_finalizer(
    state: &ApiState,
    info: &ResourceInfo,
    namespace: &str,
    name: &str,
    finalizer: &str,
) -> Result<(), ApiError> {
    for _ in 0..8 {
        let Some((mut obj, rev)) = state.store.get(info, namespace, name).await? else {
            return Ok(());
        };
        let kept: Vec<String> = objects::finalizers(&obj)
            .into_iter()
            .filter(|f| f != finalizer)
            .collect();
        meta_mut(&mut obj).insert("finalizers".into(), json!(kept));
        if kept.is_empty() {
            meta_mut(&mut obj).remove("finalizers");
        }
        match state.store.update(info, &obj, rev).await {
            Ok(_) => return Ok(()),
            Err(e) if e.reason == "Conflict" => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Owner uids (by namespace) that dependents reference but that no longer exist.
async fn sweep(state: &ApiState) -> Result<HashMap<String, HashSet<String>>, ApiError> {
    let mut gone: HashMap<String, HashSet<String>> = HashMap::new();
    let mut checked: HashMap<String, bool> = HashMap::new();
    for info in state.registry.snapshot().stored_resources() {
        let mut start: Option<String> = None;
        loop {
            let page = state.store.range(&info, "", start.as_deref(), 1000).await?;
            for kv in &page.kvs {
                if !contains(&kv.value, b"ownerReferences") {
                    continue;
                }
                let obj = objects::decode(kv)?;
                let ns = meta_str(&obj, "namespace").to_string();
                for r in obj
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                {
                    let Some(uid) = r.get("uid").and_then(Value::as_str).map(str::to_string) else {
                        continue;
                    };
                    let alive = match checked.get(&uid) {
                        Some(a) => *a,
                        None => {
                            let a = owner_alive(state, &r, &ns).await;
                            checked.insert(uid.clone(), a);
                            a
                        }
                    };
                    if !alive {
                        gone.entry(ns.clone()).or_default().insert(uid);
                    }
                }
            }
            if !page.more || page.kvs.is_empty() {
                break;
            }
            start = page.kvs.last().map(|kv| kv.key.clone());
        }
    }
    Ok(gone)
}

/// Runs the collector on the work `rx` brings (see [`GcEvent::from_change`]) until dropped.
pub(crate) async fn run(state: Arc<ApiState>, mut rx: mpsc::UnboundedReceiver<GcEvent>) {
    {
        let mut retry: Vec<GcEvent> = Vec::new();
        // Owners that went while the server was down (a crash between a delete and its
        // collection) are found by one sweep at start.
        match sweep(&state).await {
            Ok(gone) => {
                for (namespace, uids) in gone {
                    retry.extend(uids.into_iter().map(|uid| GcEvent::OwnerGone {
                        uid,
                        namespace: namespace.clone(),
                    }));
                }
            }
            Err(e) => tracing::warn!(error = %e.message, "garbage collection sweep failed"),
        }
        loop {
            let wait = if retry.is_empty() {
                Duration::from_secs(3600)
            } else {
                Duration::from_millis(300)
            };
            let mut batch: Vec<GcEvent> = Vec::new();
            tokio::select! {
                got = rx.recv() => match got {
                    Some(ev) => batch.push(ev),
                    None => return,
                },
                _ = tokio::time::sleep(wait) => {}
            }
            while let Ok(ev) = rx.try_recv() {
                batch.push(ev);
            }
            batch.append(&mut retry);
            // Owners gone in this batch are handled with one scan per namespace.
            let mut gone: HashMap<String, HashSet<String>> = HashMap::new();
            let mut rest = Vec::new();
            for ev in batch {
                match ev {
                    GcEvent::OwnerGone { uid, namespace } => {
                        gone.entry(namespace).or_default().insert(uid);
                    }
                    other => rest.push(other),
                }
            }
            for (namespace, uids) in gone {
                if let Err(e) = on_owners_gone(&state, &uids, &namespace).await {
                    tracing::warn!(error = %e.message, "garbage collection failed; retrying");
                    retry.extend(uids.into_iter().map(|uid| GcEvent::OwnerGone {
                        uid,
                        namespace: namespace.clone(),
                    }));
                }
            }
            for ev in rest {
                let result = match &ev {
                    GcEvent::OwnerGone { .. } => Ok(true),
                    GcEvent::Finalize {
                        group,
                        resource,
                        namespace,
                        name,
                    } => on_finalize(&state, group, resource, namespace, name).await,
                };
                match result {
                    Ok(true) => {}
                    Ok(false) => retry.push(ev),
                    Err(e) => {
                        tracing::warn!(error = %e.message, "garbage collection failed; retrying");
                        retry.push(ev);
                    }
                }
            }
        }
    }
}
