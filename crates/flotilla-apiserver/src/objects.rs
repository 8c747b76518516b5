//! Reading and writing objects in storage: the key layout, the `resourceVersion` contract
//! (filled from the modification revision on every read, never stored), and the single
//! place where an object is really removed (which feeds garbage collection).

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use flotilla_core::status::ApiError;
use flotilla_storage::{KeyValue, Precondition, Revision};
use serde_json::{Map, Value, json};

use crate::error::storage_error;
use crate::registry::ResourceInfo;
use crate::state::ApiState;

/// The current time as Kubernetes writes timestamps (`2026-11-26T12:00:00Z`).
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Decodes a stored value into the object as served (with `resourceVersion`).
pub fn decode(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("decoding {}: {e}", kv.key)))?;
    set_resource_version(&mut obj, kv.mod_revision);
    Ok(obj)
}

/// Sets `metadata.resourceVersion`.
pub fn set_resource_version(obj: &mut Value, rev: Revision) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(rev.to_string()));
    }
}

/// Encodes an object for storage (without `resourceVersion`).
///
/// `apiVersion`, `kind` and `metadata` are written first, so [`splice_resource_version`]
/// can serve the stored bytes without decoding them.
pub fn encode(obj: &Value) -> Bytes {
    let Some(map) = obj.as_object() else {
        return Bytes::from(serde_json::to_vec(obj).unwrap_or_default());
    };
    let mut ordered = Map::new();
    for key in ["apiVersion", "kind", "metadata"] {
        if let Some(v) = map.get(key) {
            ordered.insert(key.to_string(), v.clone());
        }
    }
    for (k, v) in map {
        if !ordered.contains_key(k) {
            ordered.insert(k.clone(), v.clone());
        }
    }
    if let Some(meta) = ordered.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    Bytes::from(serde_json::to_vec(&Value::Object(ordered)).unwrap_or_default())
}

/// The stored bytes with `metadata.resourceVersion` set, without decoding, when they start
/// `{"apiVersion":"…","kind":"…","metadata":{` (as [`encode`] writes them); `None`
/// otherwise (the caller decodes instead).
pub fn splice_resource_version(stored: &[u8], rev: Revision) -> Option<Vec<u8>> {
    fn string_end(b: &[u8], from: usize) -> Option<usize> {
        let rest = b.get(from..)?;
        let end = rest.iter().position(|c| *c == b'"' || *c == b'\\')?;
        (rest[end] == b'"').then_some(from + end)
    }
    let mut pos = 0;
    for (prefix, is_string) in [
        (&b"{\"apiVersion\":\""[..], true),
        (&b",\"kind\":\""[..], true),
        (&b",\"metadata\":{"[..], false),
    ] {
        if !stored.get(pos..)?.starts_with(prefix) {
            return None;
        }
        pos += prefix.len();
        if is_string {
            pos = string_end(stored, pos)? + 1;
        }
    }
    let rv = format!("\"resourceVersion\":\"{rev}\"");
    let mut out = Vec::with_capacity(stored.len() + rv.len() + 1);
    out.extend_from_slice(&stored[..pos]);
    out.extend_from_slice(rv.as_bytes());
    if stored.get(pos) != Some(&b'}') {
        out.push(b',');
    }
    out.extend_from_slice(&stored[pos..]);
    Some(out)
}

/// `metadata` of an object (empty map if absent or not an object).
pub fn meta(obj: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    obj.get("metadata")
        .and_then(Value::as_object)
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// `metadata` of an object, created if missing.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    meta(obj).get(field).and_then(Value::as_str).unwrap_or("")
}

/// `metadata.finalizers`.
pub fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .get("finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads one object.
pub async fn get(
    state: &ApiState,
    info: &ResourceInfo,
    namespace: &str,
    name: &str,
) -> Result<Option<(Value, Revision)>, ApiError> {
    let key = info.key(namespace, name);
    match state.store.get(&key).await.map_err(storage_error)? {
        Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
        None => Ok(None),
    }
}

/// Reads one object or fails with NotFound.
pub async fn get_existing(
    state: &ApiState,
    info: &ResourceInfo,
    namespace: &str,
    name: &str,
) -> Result<(Value, Revision), ApiError> {
    get(state, info, namespace, name)
        .await?
        .ok_or_else(|| ApiError::not_found(&info.group, &info.resource, name))
}

/// Stores a new object; AlreadyExists if the key is taken.
pub async fn create(state: &ApiState, info: &ResourceInfo, obj: &Value) -> Result<Value, ApiError> {
    let name = meta_str(obj, "name");
    let key = info.key(meta_str(obj, "namespace"), name);
    match state
        .store
        .put(&key, encode(obj), Precondition::Absent)
        .await
    {
        Ok(kv) => {
            let mut out = obj.clone();
            set_resource_version(&mut out, kv.mod_revision);
            Ok(out)
        }
        Err(flotilla_storage::Error::AlreadyExists(_)) => {
            Err(ApiError::already_exists(&info.group, &info.resource, name))
        }
        Err(e) => Err(storage_error(e)),
    }
}

/// What an update did.
pub enum Written {
    /// The object was stored (at the object's new resourceVersion).
    Stored(Value),
    /// The object was being deleted and lost its last finalizer: it is gone now.
    Deleted(Value),
}

impl Written {
    pub fn object(self) -> Value {
        match self {
            Written::Stored(v) | Written::Deleted(v) => v,
        }
    }
}

/// Replaces an object if its modification revision is still `expected`; Conflict otherwise.
/// An object with a `deletionTimestamp` and no finalizers left is deleted instead.
pub async fn update(
    state: &ApiState,
    info: &ResourceInfo,
    obj: &Value,
    expected: Revision,
) -> Result<Written, ApiError> {
    let name = meta_str(obj, "name");
    let key = info.key(meta_str(obj, "namespace"), name);
    if !meta_str(obj, "deletionTimestamp").is_empty()
        && finalizers(obj).is_empty()
        && !has_spec_finalizers(info, obj)
    {
        let (_, revision) = delete_now_at(state, info, obj, expected).await?;
        let mut gone = obj.clone();
        set_resource_version(&mut gone, revision);
        return Ok(Written::Deleted(gone));
    }
    match state
        .store
        .put(&key, encode(obj), Precondition::ModRevision(expected))
        .await
    {
        Ok(kv) => {
            let mut out = obj.clone();
            set_resource_version(&mut out, kv.mod_revision);
            Ok(Written::Stored(out))
        }
        Err(flotilla_storage::Error::RevisionMismatch { .. }) => {
            Err(ApiError::stale(&info.group, &info.resource, name))
        }
        Err(flotilla_storage::Error::NotFound(_)) => {
            Err(ApiError::not_found(&info.group, &info.resource, name))
        }
        Err(e) => Err(storage_error(e)),
    }
}

/// Namespaces also wait for `spec.finalizers` (the namespace lifecycle's).
fn has_spec_finalizers(info: &ResourceInfo, obj: &Value) -> bool {
    info.is_builtin()
        && info.group.is_empty()
        && info.kind == "Namespace"
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
}

/// Removes an object for good (the only place that does), then tells garbage collection
/// about it. Returns the removed object.
pub async fn delete_now(
    state: &ApiState,
    info: &ResourceInfo,
    obj: &Value,
    expected: Revision,
) -> Result<Value, ApiError> {
    delete_now_at(state, info, obj, expected)
        .await
        .map(|(v, _)| v)
}

/// [`delete_now`], also returning the revision of the delete.
pub async fn delete_now_at(
    state: &ApiState,
    info: &ResourceInfo,
    obj: &Value,
    expected: Revision,
) -> Result<(Value, Revision), ApiError> {
    let name = meta_str(obj, "name");
    let key = info.key(meta_str(obj, "namespace"), name);
    match state
        .store
        .delete(&key, Precondition::ModRevision(expected))
        .await
    {
        Ok((kv, rev)) => {
            let removed = decode(&kv)?;
            if info.group == "apiextensions.k8s.io" && info.resource == "customresourcedefinitions"
            {
                crate::crd::crd_deleted(state, &removed);
            }
            Ok((removed, rev))
        }
        Err(flotilla_storage::Error::RevisionMismatch { .. }) => {
            Err(ApiError::stale(&info.group, &info.resource, name))
        }
        Err(flotilla_storage::Error::NotFound(_)) => {
            Err(ApiError::not_found(&info.group, &info.resource, name))
        }
        Err(e) => Err(storage_error(e)),
    }
}

/// Lists the objects under a key prefix, one storage page at a time.
pub async fn list_all(state: &ApiState, prefix: &str) -> Result<Vec<(Value, Revision)>, ApiError> {
    let mut out = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let page = state
            .store
            .range(prefix, start.as_deref(), 500)
            .await
            .map_err(storage_error)?;
        for kv in &page.kvs {
            out.push((decode(kv)?, kv.mod_revision));
        }
        if !page.more || page.kvs.is_empty() {
            break;
        }
        start = page.kvs.last().map(|kv| kv.key.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spliced_bytes_equal_decoded_objects() {
        for obj in [
            json!({"kind": "ConfigMap", "data": {"a": "b"}, "metadata": {"name": "x", "resourceVersion": "9"}, "apiVersion": "v1"}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {}}),
            json!({"apiVersion": "x/v1", "kind": "W", "spec": {"template": {"metadata": {"name": "inner"}}}, "metadata": {"name": "outer"}}),
        ] {
            let stored = encode(&obj);
            let spliced = splice_resource_version(&stored, 42).expect("fast path applies");
            let spliced: Value = serde_json::from_slice(&spliced).unwrap();
            let mut expected: Value = serde_json::from_slice(&stored).unwrap();
            set_resource_version(&mut expected, 42);
            assert_eq!(spliced, expected);
        }
        assert!(
            splice_resource_version(br#"{"kind":"X","apiVersion":"v1","metadata":{}}"#, 1)
                .is_none()
        );
        assert!(
            splice_resource_version(br#"{"apiVersion":"v\"1","kind":"X","metadata":{}}"#, 1)
                .is_none()
        );
        assert!(splice_resource_version(b"{", 1).is_none());
    }
}
