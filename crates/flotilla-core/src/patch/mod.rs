//! The PATCH engines of the API server, on `serde_json::Value`, with no I/O.
//!
//! | Content-Type | function |
//! |---|---|
//! | `application/merge-patch+json` | [`merge_patch`] (RFC 7386) |
//! | `application/json-patch+json` | [`json_patch()`] (RFC 6902, Go's `test`-null rule) |
//! | `application/strategic-merge-patch+json` | [`strategic_merge`] with [`builtin_merge_keys`] |
//! | `application/apply-patch+yaml` | [`server_side_apply_with`] (field ownership in `managedFields`) |
//!
//! Every other write records its field manager with [`update_managed_fields_with`].
//!
//! [`PatchType::from_content_type`] maps a request's Content-Type to the engine.

mod apply;
mod json;
mod merge;
#[cfg(test)]
mod robustness;
mod strategic;

pub use apply::{
    ApplyError, Conflict, FieldManager, default_field_manager, record_managed_fields,
    server_side_apply_with, update_managed_fields_with,
};
pub use json::{JsonPatchError, json_patch};
pub use merge::{MergePatchError, merge_patch};
pub use strategic::{
    ListStrategy, MergeKeyTable, MergeKeys, NoMergeKeys, StrategicMergeError, builtin_merge_keys,
    strategic_merge,
};

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
