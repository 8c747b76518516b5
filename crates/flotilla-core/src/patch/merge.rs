//! RFC 7386 JSON merge patch (`application/merge-patch+json`).
//!
//! Objects merge recursively, `null` deletes a key, everything else (including lists) replaces.
//! This is what `kubectl patch --type=merge` sends and what CRDs get instead of strategic merge.

use serde_json::Value;

/// Why a merge patch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergePatchError {
    /// The body is not a JSON object (kube-apiserver answers 400 `BadRequest`).
    #[error("Invalid JSON Patch")]
    NotAnObject,
}

impl MergePatchError {
    /// The Kubernetes `Status` (400 `BadRequest`).
    pub fn to_api_error(&self) -> crate::status::ApiError {
        crate::status::ApiError::bad_request(self.to_string())
    }
}

/// Applies a JSON merge patch to `original` and returns the result.
///
/// The patch must be an object (a bare value would replace the whole resource, which
/// kube-apiserver refuses with 400 `Invalid JSON Patch`).
pub fn merge_patch(original: &Value, patch: &Value) -> Result<Value, MergePatchError> {
    if !patch.is_object() {
        return Err(MergePatchError::NotAnObject);
    }
    let mut out = original.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// (original, patch, expected): RFC 7386 appendix A plus what `kubectl patch --type=merge`,
    /// `kubectl scale` and `kubectl label` rely on.
    #[test]
    fn merge_patch_table() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
            // kubectl scale --replicas=3 (merge patch on the scale subresource / object)
            (
                json!({"spec": {"replicas": 1, "template": {"x": 1}}}),
                json!({"spec": {"replicas": 3}}),
                json!({"spec": {"replicas": 3, "template": {"x": 1}}}),
            ),
            // kubectl label app- : {"metadata":{"labels":{"app":null}}}
            (
                json!({"metadata": {"labels": {"app": "web", "tier": "fe"}}}),
                json!({"metadata": {"labels": {"app": null}}}),
                json!({"metadata": {"labels": {"tier": "fe"}}}),
            ),
            // lists are replaced whole (containers are not merged by name in merge patch)
            (
                json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
                json!({"spec": {"containers": [{"name": "a", "image": "x"}]}}),
                json!({"spec": {"containers": [{"name": "a", "image": "x"}]}}),
            ),
        ];
        for (orig, patch, want) in cases {
            assert_eq!(
                merge_patch(&orig, &patch).unwrap(),
                want,
                "{orig} + {patch}"
            );
        }
    }

    #[test]
    fn non_object_patches_are_rejected() {
        for p in [json!([1]), json!("x"), json!(null), json!(3)] {
            assert_eq!(
                merge_patch(&json!({}), &p),
                Err(MergePatchError::NotAnObject)
            );
        }
    }
}
