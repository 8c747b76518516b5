//! What a new object goes through before it is stored (the kind's strategy: defaults,
//! checks; admission; namespace lifecycle; managedFields), shared by POST, server-side
//! apply and PUT creates and bootstrap objects.

use flotilla_core::status::ApiError;
use flotilla_core::user::UserInfo;
use rand::Rng;
use serde_json::{Value, json};

use super::options::WriteOptions;
use crate::objects::{meta_mut, meta_str, now_rfc3339};
use crate::registry::ResourceInfo;
use crate::state::ApiState;
use crate::{crd, managed, validation};

/// The resource description of the version objects of `info` are stored in.
pub(crate) fn storage_info(
    state: &ApiState,
    info: &std::sync::Arc<ResourceInfo>,
) -> std::sync::Arc<ResourceInfo> {
    if info.version == info.storage_version {
        return info.clone();
    }
    state
        .registry
        .snapshot()
        .lookup(&info.group, &info.storage_version, &info.resource)
        .unwrap_or_else(|| info.clone())
}

/// A random suffix for `generateName`, from the alphabet Kubernetes uses.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Checks the namespace in the body against the request's, filling it in.
pub(crate) fn reconcile_namespace(
    info: &ResourceInfo,
    url_namespace: &str,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let meta = meta_mut(obj);
    if info.namespaced {
        let body_ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
        if !body_ns.is_empty() && !url_namespace.is_empty() && body_ns != url_namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let ns = if url_namespace.is_empty() {
            body_ns.to_string()
        } else {
            url_namespace.to_string()
        };
        if ns.is_empty() {
            return Err(ApiError::bad_request(
                "namespace is required for namespaced resources",
            ));
        }
        meta.insert("namespace".into(), json!(ns));
    } else {
        meta.remove("namespace");
    }
    Ok(())
}

/// Decodes and validates the content of an object against its schema (built-in type or
/// CRD schema), returning the normalized object and warnings.
pub(crate) fn decode_content(
    info: &ResourceInfo,
    obj: &Value,
    opts: &WriteOptions,
) -> Result<(Value, Vec<String>), ApiError> {
    match &info.crd {
        Some(version) => crd::decode_custom(info, version, obj, opts.field_validation),
        None => validation::decode_builtin(info, obj, opts.field_validation),
    }
}

/// Semantic validation (422 with causes on failure): metadata for custom resources, the
/// kind's strategy for built-ins.
pub(crate) fn validate(
    info: &ResourceInfo,
    obj: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let causes = match &info.crd {
        Some(_) => {
            let mut causes = Vec::new();
            validation::validate_metadata(info, obj, &mut causes);
            causes
        }
        None => validation::validate_builtin(info, obj, old),
    };
    if causes.is_empty() {
        Ok(())
    } else {
        Err(validation::invalid_error(
            info,
            meta_str(obj, "name"),
            causes,
        ))
    }
}

/// Everything a new object goes through before it is stored.
pub(crate) async fn prepare_create(
    state: &ApiState,
    info: &ResourceInfo,
    url_namespace: &str,
    mut obj: Value,
    opts: &WriteOptions,
    user: &UserInfo,
) -> Result<(Value, Vec<String>), ApiError> {
    validation::check_type_meta(info, &mut obj)?;
    reconcile_namespace(info, url_namespace, &mut obj)?;
    {
        let meta = meta_mut(&mut obj);
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let generate = meta
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() && !generate.is_empty() {
            meta.insert(
                "name".into(),
                json!(format!("{generate}{}", random_suffix())),
            );
        }
    }
    let (mut obj, warnings) = decode_content(info, &obj, opts)?;
    let strategy = crate::strategy::of(info);
    (strategy.defaults)(&mut obj);
    {
        let tracks = info.tracks_generation || info.crd.is_some();
        let meta = meta_mut(&mut obj);
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(f);
        }
        if !opts.keep_managed_fields {
            meta.remove("managedFields");
        }
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        if tracks {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
    }
    if info.status
        && let Some(map) = obj.as_object_mut()
    {
        map.remove("status");
    }
    (strategy.on_create)(&mut obj, user)?;
    crate::admission::stamp_user(info, &mut obj, None, user);
    validate(info, &obj, None)?;
    if info.namespaced {
        crate::namespace::check_usable(
            state,
            info,
            meta_str(&obj, "namespace"),
            meta_str(&obj, "name"),
        )
        .await?;
    }
    if !opts.keep_managed_fields {
        managed::record_update(info, &mut obj, None, &opts.field_manager, "");
    }
    state.store.admit(info, user, &obj).await?;
    Ok((obj, warnings))
}

/// Creates an object as `user` asked: prepared as [`prepare_create`] does, then stored
/// unless `opts` says dry-run. Returns the object (as stored, or as it would have been) and
/// warnings.
pub(crate) async fn create(
    state: &ApiState,
    info: &ResourceInfo,
    url_namespace: &str,
    obj: Value,
    opts: &WriteOptions,
    user: &UserInfo,
) -> Result<(Value, Vec<String>), ApiError> {
    let (prepared, warnings) = prepare_create(state, info, url_namespace, obj, opts, user).await?;
    if opts.dry_run {
        return Ok((prepared, warnings));
    }
    Ok((state.store.create(info, prepared).await?, warnings))
}

/// Creates a server-owned object unless one of that name exists (bootstrap).
pub(crate) async fn create_if_absent(state: &ApiState, obj: Value) -> Result<(), ApiError> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let (group, version) = flotilla_core::resource::split_api_version(api_version);
    let info = state
        .registry
        .snapshot()
        .by_kind(group, version, kind)
        .ok_or_else(|| ApiError::internal(format!("no served kind {kind} in {api_version}")))?;
    let namespace = meta_str(&obj, "namespace").to_string();
    let name = meta_str(&obj, "name").to_string();
    if state.store.get(&info, &namespace, &name).await?.is_some() {
        return Ok(());
    }
    let opts = WriteOptions::internal("flotilla-bootstrap");
    match create(state, &info, &namespace, obj, &opts, &UserInfo::default()).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "AlreadyExists" => Ok(()),
        Err(e) => Err(e),
    }
}
