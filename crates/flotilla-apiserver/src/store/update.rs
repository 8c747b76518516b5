//! The read-modify-write loop shared by every update path (PUT, PATCH, server-side
//! apply, `/status`, `/scale`, the CSR approval, server-owned objects): read, build the
//! desired object, carry server-owned metadata over, run the kind's strategy (defaults,
//! checks, immutable fields), bump `generation`, record managedFields, then
//! compare-and-swap, retrying when another writer got in between.

use flotilla_core::status::ApiError;
use serde_json::{Value, json};

use super::create::{create, decode_content, reconcile_namespace, validate};
use super::options::WriteOptions;
use crate::objects::{self, meta_mut, meta_str};
use crate::registry::ResourceInfo;
use crate::state::ApiState;
use crate::{crd, managed, validation};

/// The outcome of an update.
pub(crate) struct Updated {
    pub object: Value,
    pub warnings: Vec<String>,
    /// The object was created (server-side apply or PUT on a missing CR).
    pub created: bool,
}

/// How many times a write whose base changed underneath is retried.
const MAX_RETRIES: usize = 8;

/// Reads the object, builds the desired one with `mutate` (given the current object, or
/// `None` if absent when `allow_create`), prepares and stores it with optimistic
/// concurrency; retries when another writer got in between, unless the desired object
/// pins a resourceVersion.
pub(crate) async fn update_with<F>(
    state: &ApiState,
    info: &ResourceInfo,
    namespace: &str,
    name: &str,
    opts: &WriteOptions,
    subresource: &str,
    user: &flotilla_core::user::UserInfo,
    allow_create: bool,
    mut mutate: F,
) -> Result<Updated, ApiError>
where
    F: FnMut(Option<&Value>) -> Result<Value, ApiError>,
{
    let served_info = info;
    let sinfo = state
        .registry
        .snapshot()
        .lookup(&info.group, &info.storage_version, &info.resource)
        .unwrap_or_else(|| std::sync::Arc::new(info.clone()));
    let info: &ResourceInfo = &sinfo;
    for _ in 0..MAX_RETRIES {
        let current = state.store.get(info, namespace, name).await?;
        let Some((current, revision)) = current else {
            if !allow_create {
                return Err(ApiError::not_found(&info.group, &info.resource, name));
            }
            let mut desired = mutate(None)?;
            validation::check_type_meta(served_info, &mut desired)?;
            let desired = crate::convert::to_storage(served_info, desired);
            match create(state, info, namespace, desired, opts, user).await {
                Ok((object, warnings)) => {
                    return Ok(Updated {
                        object,
                        warnings,
                        created: true,
                    });
                }
                Err(e) if e.reason == "AlreadyExists" => continue,
                Err(e) => return Err(e),
            }
        };
        let served = crate::convert::to_served(served_info, current.clone());
        let mut desired = mutate(Some(&served))?;
        let pinned = !meta_str(&desired, "resourceVersion").is_empty();
        validation::check_type_meta(served_info, &mut desired)?;
        let desired = crate::convert::to_storage(served_info, desired);
        let (next, warnings, changed) = prepare_update(
            info,
            namespace,
            name,
            &current,
            desired,
            opts,
            subresource,
            user,
        )?;
        if !changed {
            return Ok(Updated {
                object: current,
                warnings,
                created: false,
            });
        }
        state.store.admit(info, user, &next).await?;
        if opts.dry_run {
            return Ok(Updated {
                object: next,
                warnings,
                created: false,
            });
        }
        match state.store.update(info, &next, revision).await {
            Ok(written) => {
                return Ok(Updated {
                    object: written.object(),
                    warnings,
                    created: false,
                });
            }
            Err(e) if e.reason == "Conflict" && !pinned => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(
        &info.group,
        &info.resource,
        name,
        "the object has been modified too many times concurrently; please retry",
    ))
}

/// The object without fields that do not count as a change.
fn comparable(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    o
}

/// The object without its resourceVersion.
fn without_rv(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    o
}

/// Everything but metadata and status: what `generation` tracks.
fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

/// Builds the object to store from the current one and the desired one.
/// Returns `(object, warnings, changed)`.
pub(crate) fn prepare_update(
    info: &ResourceInfo,
    namespace: &str,
    name: &str,
    current: &Value,
    mut desired: Value,
    opts: &WriteOptions,
    subresource: &str,
    user: &flotilla_core::user::UserInfo,
) -> Result<(Value, Vec<String>, bool), ApiError> {
    validation::check_type_meta(info, &mut desired)?;
    {
        let body_name = meta_str(&desired, "name").to_string();
        if body_name.is_empty() {
            meta_mut(&mut desired).insert("name".into(), json!(name));
        } else if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
    }
    reconcile_namespace(info, namespace, &mut desired)?;
    let wanted_rv = meta_str(&desired, "resourceVersion").to_string();
    let current_rv = meta_str(current, "resourceVersion").to_string();
    if !wanted_rv.is_empty() && wanted_rv != current_rv {
        return Err(ApiError::stale(&info.group, &info.resource, name));
    }
    let mut next = with_status(info, current, desired, subresource);
    let (decoded, warnings) = decode_content(info, &next, opts)?;
    next = decoded;
    (crate::strategy::of(info).defaults)(&mut next);
    carry_server_metadata(current, &mut next, opts, subresource);
    check_no_new_finalizers(info, name, current, &next)?;
    if info.is_builtin() && info.group.is_empty() && info.kind == "Namespace" {
        // The namespace lifecycle owns the phase.
        if let Some(phase) = current.pointer("/status/phase") {
            next["status"]["phase"] = phase.clone();
        }
    }
    if crd::is_crd(info)
        && subresource != "status"
        && let Some(s) = current.get("status")
    {
        next["status"] = s.clone();
    }
    if subresource.is_empty() {
        crate::admission::stamp_user(info, &mut next, Some(current), user);
    }
    validate(info, &next, Some(current))?;
    validate_immutable(info, current, &next)?;
    let unchanged = if opts.keep_managed_fields {
        // Server-side apply: the field manager keeps managedFields (and their times) as
        // they were when nothing changed, so compare them too.
        without_rv(&next) == without_rv(current)
    } else {
        comparable(&next) == comparable(current)
    };
    if unchanged {
        return Ok((current.clone(), warnings, false));
    }
    if (info.tracks_generation || info.crd.is_some()) && spec_part(&next) != spec_part(current) {
        objects::bump_generation(current, &mut next);
    }
    if crd::is_crd(info) && subresource != "status" {
        crd::set_initial_status(&mut next);
    }
    if !opts.keep_managed_fields {
        managed::record_update(
            info,
            &mut next,
            Some(current),
            &opts.field_manager,
            subresource,
        );
    }
    Ok((next, warnings, true))
}

/// Copies `field` of `from` into `to` (removing it when `from` has none).
fn copy_field(
    from: &serde_json::Map<String, Value>,
    to: &mut serde_json::Map<String, Value>,
    field: &str,
) {
    match from.get(field) {
        Some(v) => {
            to.insert(field.into(), v.clone());
        }
        None => {
            to.remove(field);
        }
    }
}

/// The desired object with the status it may have: through `/status` only the status
/// changes; otherwise a kind with a status subresource keeps the current status.
fn with_status(info: &ResourceInfo, current: &Value, desired: Value, subresource: &str) -> Value {
    let (mut next, status_from) = if subresource == "status" {
        (current.clone(), desired)
    } else if info.status {
        (desired, current.clone())
    } else {
        return desired;
    };
    if let Some(to) = next.as_object_mut() {
        match status_from.get("status") {
            Some(status) => {
                to.insert("status".into(), status.clone());
            }
            None => {
                to.remove("status");
            }
        }
    }
    next
}

/// Server-owned metadata comes from the current object (and through `/status`, all
/// metadata a client may set).
fn carry_server_metadata(
    current: &Value,
    next: &mut Value,
    opts: &WriteOptions,
    subresource: &str,
) {
    let cur_meta = objects::meta(current).clone();
    let client_managed = objects::meta(next).contains_key("managedFields");
    let meta = meta_mut(next);
    let mut server_owned = vec![
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "resourceVersion",
    ];
    // A body without managedFields keeps the stored ones; one with them goes to the
    // field manager, which decides (as kube-apiserver does).
    if !opts.keep_managed_fields && !client_managed {
        server_owned.push("managedFields");
    }
    if subresource == "status" {
        server_owned.extend(["labels", "annotations", "finalizers", "ownerReferences"]);
    }
    for f in server_owned {
        copy_field(&cur_meta, meta, f);
    }
}

/// Refuses finalizers added to an object being deleted.
fn check_no_new_finalizers(
    info: &ResourceInfo,
    name: &str,
    current: &Value,
    next: &Value,
) -> Result<(), ApiError> {
    if meta_str(current, "deletionTimestamp").is_empty() {
        return Ok(());
    }
    let old: Vec<String> = objects::finalizers(current);
    let added: Vec<String> = objects::finalizers(next)
        .into_iter()
        .filter(|f| !old.contains(f))
        .map(|f| format!("{f:?}"))
        .collect();
    if added.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        &info.group,
        &info.kind,
        name,
        vec![validation::cause(
            "FieldValueForbidden",
            "metadata.finalizers",
            format!(
                "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                added.join(", ")
            ),
        )],
    ))
}

/// Fields Kubernetes refuses to change after creation.
fn validate_immutable(info: &ResourceInfo, current: &Value, next: &Value) -> Result<(), ApiError> {
    let name = meta_str(current, "name");
    let mut causes = Vec::new();
    (crate::strategy::of(info).validate_update)(current, next, &mut causes);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(validation::invalid_error(info, name, causes))
    }
}
