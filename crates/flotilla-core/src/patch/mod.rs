//! The PATCH engines of the API server, on `serde_json::Value`, with no I/O.
//!
//! | Content-Type | function |
//! |---|---|
//! | `application/merge-patch+json` | [`merge_patch`] (RFC 7386) |
//! | `application/json-patch+json` | [`json_patch()`] (RFC 6902, Go's `test`-null rule) |
//! | `application/strategic-merge-patch+json` | [`strategic_merge`] with [`builtin_merge_keys`] |
//! | `application/apply-patch+yaml` | [`server_side_apply`] (field ownership in `managedFields`) |
//!
//! Every other write records its field manager with [`update_managed_fields`].
//!
//! [`PatchType::from_content_type`] maps a request's Content-Type to the engine.

pub mod apply;
pub mod json;
pub mod merge;
#[cfg(test)]
mod robustness;
pub mod strategic;

pub use apply::{
    ANCIENT_CHANGES, ApplyError, BEFORE_FIRST_APPLY, Conflict, FieldManager, MAX_UPDATE_MANAGERS,
    default_field_manager, server_side_apply, server_side_apply_with, update_managed_fields,
    update_managed_fields_with,
};
pub use json::{JsonPatchError, json_patch};
pub use merge::{MergePatchError, merge_patch};
pub use strategic::{
    ListStrategy, MergeKeyTable, MergeKeys, NoMergeKeys, StrategicMergeError, builtin_merge_keys,
    strategic_merge, supports_strategic_merge,
};

/// Drops the `metadata` fields that Kubernetes never stores empty (`labels`, `annotations`,
/// `finalizers`, `ownerReferences`, `managedFields`: `omitempty` in Go), as a patch can leave
/// them `[]`, `{}` or `null`.
///
/// Call it on every patched object before storing it: kube-runtime's finalizer helper adds
/// the first finalizer with `test /metadata/finalizers null`, which must succeed after the
/// last finalizer was removed.
pub fn omit_empty_metadata(obj: &mut serde_json::Value) {
    let Some(meta) = obj
        .get_mut("metadata")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    meta.retain(|k, v| {
        let omittable = matches!(
            k.as_str(),
            "labels" | "annotations" | "finalizers" | "ownerReferences" | "managedFields"
        );
        let empty = match v {
            serde_json::Value::Null => true,
            serde_json::Value::Array(a) => a.is_empty(),
            serde_json::Value::Object(m) => m.is_empty(),
            _ => false,
        };
        !(omittable && empty)
    });
}

/// The kinds of PATCH kube-apiserver accepts, by Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    StrategicMerge,
    /// `application/apply-patch+yaml` (server-side apply; the body may be YAML or JSON)
    Apply,
}

impl PatchType {
    /// The patch type for a Content-Type header value (parameters such as `charset` ignored);
    /// `None` means 415 `UnsupportedMediaType`.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        match essence.to_ascii_lowercase().as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }

    /// The Content-Type string of this patch type.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// kube-runtime's finalizer helper: remove the last finalizer, then add one again.
    #[test]
    fn finalizer_cycle_with_empty_metadata_omitted() {
        let obj = json!({"metadata": {"name": "x", "finalizers": ["a"]}});
        let mut removed = json_patch(
            &obj,
            &json!([
                {"op": "test", "path": "/metadata/finalizers/0", "value": "a"},
                {"op": "remove", "path": "/metadata/finalizers/0"}
            ]),
        )
        .unwrap();
        omit_empty_metadata(&mut removed);
        assert_eq!(removed, json!({"metadata": {"name": "x"}}));
        let added = json_patch(
            &removed,
            &json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["b"]}
            ]),
        )
        .unwrap();
        assert_eq!(added["metadata"]["finalizers"], json!(["b"]));
        let mut other = json!({"metadata": {"labels": {}, "annotations": null, "name": "y"}});
        omit_empty_metadata(&mut other);
        assert_eq!(other, json!({"metadata": {"name": "y"}}));
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/strategic-merge-patch+json"),
            Some(PatchType::StrategicMerge)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
        for t in [
            PatchType::Json,
            PatchType::Merge,
            PatchType::StrategicMerge,
            PatchType::Apply,
        ] {
            assert_eq!(PatchType::from_content_type(t.content_type()), Some(t));
        }
    }
}
