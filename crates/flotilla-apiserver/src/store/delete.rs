//! Deleting one object: preconditions, propagation policy (the garbage collector's
//! `foregroundDeletion` and `orphan` finalizers), finalizers holding the object with a
//! `deletionTimestamp`, `generation` bumped where tracked, dry-run; shared by DELETE,
//! deletecollection, the namespace lifecycle and garbage collection.

use flotilla_core::status::ApiError;
use serde_json::{Value, json};

use super::Written;
use crate::objects::{self, meta_mut, meta_str, now_rfc3339};
use crate::registry::ResourceInfo;
use crate::state::ApiState;

/// The finalizer that makes the garbage collector delete dependents first.
pub(crate) const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer that makes the garbage collector orphan dependents first.
pub(crate) const ORPHAN: &str = "orphan";

/// How to delete (Kubernetes' `DeleteOptions`).
#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOptions {
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

/// What a delete did.
pub(crate) enum Deleted {
    /// Gone from storage.
    Gone(Value),
    /// Marked for deletion; finalizers still pending.
    Pending(Value),
}

/// Deletes (or starts deleting) one object; shared by DELETE, deletecollection, the
/// namespace lifecycle and garbage collection.
pub(crate) async fn delete_object(
    state: &ApiState,
    info: &ResourceInfo,
    namespace: &str,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Deleted, ApiError> {
    for _ in 0..8 {
        let (current, revision) = state.store.get_existing(info, namespace, name).await?;
        let uid = meta_str(&current, "uid");
        if let Some(want) = &opts.precondition_uid
            && want != uid
        {
            return Err(ApiError::conflict(
                &info.group,
                &info.resource,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
                ),
            ));
        }
        if let Some(want) = &opts.precondition_rv {
            let have = meta_str(&current, "resourceVersion");
            if want != have {
                return Err(ApiError::conflict(
                    &info.group,
                    &info.resource,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {have}"
                    ),
                ));
            }
        }
        if info.is_builtin() && info.group.is_empty() && info.kind == "Namespace" {
            return crate::namespace::begin_delete(state, info, current, revision, opts.dry_run)
                .await;
        }
        let mut finalizers = objects::finalizers(&current);
        match opts.propagation.as_deref() {
            Some("Foreground") if !finalizers.iter().any(|f| f == FOREGROUND) => {
                finalizers.push(FOREGROUND.into())
            }
            Some("Orphan") if !finalizers.iter().any(|f| f == ORPHAN) => {
                finalizers.push(ORPHAN.into())
            }
            _ => {}
        }
        if crate::crd::is_crd(info) && !opts.dry_run {
            crate::crd::delete_custom_objects(state, &current).await?;
        }
        if finalizers.is_empty() {
            if opts.dry_run {
                return Ok(Deleted::Gone(current));
            }
            match state.store.delete_now(info, &current, revision).await {
                Ok(obj) => return Ok(Deleted::Gone(obj)),
                Err(e) if e.reason == "Conflict" => continue,
                Err(e) => return Err(e),
            }
        }
        let already = !meta_str(&current, "deletionTimestamp").is_empty();
        let mut next = current.clone();
        {
            let meta = meta_mut(&mut next);
            if !already {
                meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
                meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
            meta.insert("finalizers".into(), json!(finalizers));
        }
        if next == current {
            return Ok(Deleted::Pending(current));
        }
        if opts.dry_run {
            return Ok(Deleted::Pending(next));
        }
        if !already && info.generation_tracked_on_delete() {
            objects::bump_generation(&current, &mut next);
        }
        match state.store.update(info, &next, revision).await {
            Ok(Written::Stored(obj)) => return Ok(Deleted::Pending(obj)),
            Ok(Written::Deleted(obj)) => return Ok(Deleted::Gone(obj)),
            Err(e) if e.reason == "Conflict" => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(
        &info.group,
        &info.resource,
        name,
        "the object is being modified concurrently; please retry",
    ))
}

impl ResourceInfo {
    /// kube-apiserver bumps `generation` when a deletion starts on objects that track it.
    pub fn generation_tracked_on_delete(&self) -> bool {
        self.tracks_generation || self.crd.is_some()
    }
}
