//! Objects as JSON values: their stored encoding and the `resourceVersion` contract (filled
//! from the modification revision on every read, never stored), and metadata accessors.
//! Reading and writing them is the [`crate::store`]'s.

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use flotilla_core::status::ApiError;
use flotilla_storage::{KeyValue, Revision};
use serde_json::{Map, Value, json};

/// The current time as Kubernetes writes timestamps (`2026-11-26T12:00:00Z`).
pub(crate) fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Decodes a stored value into the object as served (with `resourceVersion`).
pub(crate) fn decode(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("decoding {}: {e}", kv.key)))?;
    set_resource_version(&mut obj, kv.mod_revision);
    Ok(obj)
}

/// Sets `metadata.resourceVersion`.
pub(crate) fn set_resource_version(obj: &mut Value, rev: Revision) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(rev.to_string()));
    }
}

/// Encodes an object for storage (without `resourceVersion`).
///
/// `apiVersion`, `kind` and `metadata` are written first, so [`splice_resource_version`]
/// can serve the stored bytes without decoding them.
pub(crate) fn encode(obj: &Value) -> Bytes {
    let mut bytes = match obj.as_object() {
        Some(map) => serde_json::to_vec(&StoredOrder(map)),
        None => serde_json::to_vec(obj),
    }
    .unwrap_or_default();
    // The store keeps these bytes (index and watch history) for as long as the object
    // lives: without the room the encoder grew into (up to as much again).
    bytes.shrink_to_fit();
    Bytes::from(bytes)
}

/// The top-level fields `apiVersion`, `kind`, `metadata` first (in that order), then the
/// others; serialized from the object by reference (no copy of it is made).
const LEADING_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// An object serialized in stored order, `metadata.resourceVersion` left out.
struct StoredOrder<'a>(&'a Map<String, Value>);

/// A `metadata` object serialized without `resourceVersion`.
struct WithoutResourceVersion<'a>(&'a Map<String, Value>);

impl serde::Serialize for StoredOrder<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut out = serializer.serialize_map(None)?;
        for key in LEADING_FIELDS {
            match self.0.get(key) {
                Some(Value::Object(meta)) if key == "metadata" => {
                    out.serialize_entry(key, &WithoutResourceVersion(meta))?
                }
                Some(v) => out.serialize_entry(key, v)?,
                None => {}
            }
        }
        for (k, v) in self.0 {
            if !LEADING_FIELDS.contains(&k.as_str()) {
                out.serialize_entry(k, v)?;
            }
        }
        out.end()
    }
}

impl serde::Serialize for WithoutResourceVersion<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut out = serializer.serialize_map(None)?;
        for (k, v) in self.0 {
            if k != "resourceVersion" {
                out.serialize_entry(k, v)?;
            }
        }
        out.end()
    }
}

/// Where `metadata.resourceVersion` goes in stored bytes that start
/// `{"apiVersion":"…","kind":"…","metadata":{` (as [`encode`] writes them): just inside
/// `metadata`'s brace. Found without decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VersionSlot {
    /// Byte offset just after `"metadata":{`.
    at: usize,
    /// Whether `metadata` has other fields (a comma follows the inserted one).
    comma: bool,
}

impl VersionSlot {
    /// The slot of `stored`; `None` when the bytes are not laid out as [`encode`] writes
    /// them (the caller decodes instead).
    pub(crate) fn of(stored: &[u8]) -> Option<VersionSlot> {
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
        Some(VersionSlot {
            at: pos,
            comma: stored.get(pos) != Some(&b'}'),
        })
    }

    /// Appends `stored` (the bytes this slot was found in) to `out` with
    /// `"resourceVersion":"<rev>"` in the slot.
    pub(crate) fn write(&self, stored: &[u8], rev: Revision, out: &mut Vec<u8>) {
        use std::io::Write as _;
        out.extend_from_slice(&stored[..self.at]);
        // Writing into a Vec cannot fail.
        let _ = write!(out, "\"resourceVersion\":\"{rev}\"");
        if self.comma {
            out.push(b',');
        }
        out.extend_from_slice(&stored[self.at..]);
    }
}

/// Room for `"resourceVersion":"<rev>",` beyond the stored bytes.
pub(crate) const VERSION_ROOM: usize = 40;

/// The stored bytes with `metadata.resourceVersion` set, without decoding, when they are
/// laid out as [`encode`] writes them ([`VersionSlot`]); `None` otherwise (the caller
/// decodes instead).
pub(crate) fn splice_resource_version(stored: &[u8], rev: Revision) -> Option<Vec<u8>> {
    let slot = VersionSlot::of(stored)?;
    let mut out = Vec::with_capacity(stored.len() + VERSION_ROOM);
    slot.write(stored, rev, &mut out);
    Some(out)
}

/// `metadata` of an object (empty map if absent or not an object).
pub(crate) fn meta(obj: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    obj.get("metadata")
        .and_then(Value::as_object)
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// `metadata` of an object, created if missing.
pub(crate) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// A string field of `metadata`.
pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    meta(obj).get(field).and_then(Value::as_str).unwrap_or("")
}

/// `metadata.resourceVersion` as a storage revision (0 when absent or not a number).
pub(crate) fn resource_version(obj: &Value) -> Revision {
    meta_str(obj, "resourceVersion").parse().unwrap_or(0)
}

/// Sets `next`'s `metadata.generation` to one more than `current`'s.
pub(crate) fn bump_generation(current: &Value, next: &mut Value) {
    let generation = current
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        + 1;
    meta_mut(next).insert("generation".into(), json!(generation));
}

/// `metadata.finalizers`.
pub(crate) fn finalizers(obj: &Value) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_bytes_lead_with_type_and_metadata_and_drop_the_resource_version() {
        let obj = json!({"data": {"a": "b"}, "kind": "ConfigMap", "metadata": {"name": "x", "resourceVersion": "9", "uid": "u"}, "apiVersion": "v1"});
        assert_eq!(
            &encode(&obj)[..],
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","uid":"u"},"data":{"a":"b"}}"#
        );
        assert_eq!(&encode(&json!([1]))[..], b"[1]");
    }

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
