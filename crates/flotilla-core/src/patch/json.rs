//! RFC 6902 JSON patch (`application/json-patch+json`), with kube-apiserver's rules.
//!
//! Operations are decoded and applied with the `json-patch` crate, one at a time, so that:
//! - a `test` whose path is missing (its parent exists) succeeds when the expected value is
//!   `null`: the Go library kube-apiserver uses behaves so, and kube-runtime's finalizer
//!   helper sends `test /metadata/finalizers null` on objects without finalizers;
//! - every failure names the operation and path like kube-apiserver's messages
//!   (`replace operation does not apply: doc is missing key: /spec/x: missing value`);
//! - at most [`MAX_OPERATIONS`] operations are accepted (kube-apiserver's limit).
//!
//! The patch is applied to a copy: on error the original is untouched.

use json_patch::PatchOperation;
use serde_json::Value;

use crate::status::ApiError;

/// kube-apiserver's limit on the number of operations in one JSON patch.
pub(crate) const MAX_OPERATIONS: usize = 10_000;

/// The most bytes all `copy` operations of one patch may duplicate (kube-apiserver bounds
/// it by the request size limit, 3 MiB): without it a few dozen `copy` ops doubling the
/// document would exhaust memory.
pub(crate) const MAX_COPY_BYTES: usize = 3 * 1024 * 1024;

/// Why a JSON patch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonPatchError {
    /// The body is not a list of valid operations (400 `BadRequest`).
    #[error("{0}")]
    Decode(String),
    /// More than 10 000 operations (413 `RequestEntityTooLarge`).
    #[error("The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {0}")]
    TooManyOperations(usize),
    /// An operation could not be applied (422 `Invalid`, message as kube-apiserver prints it).
    #[error("{message}")]
    Apply {
        /// Index of the failing operation.
        index: usize,
        /// What went wrong, e.g. `doc is missing path: "/spec/x": missing value`.
        message: String,
    },
}

impl JsonPatchError {
    /// The Kubernetes `Status`: 400 for an undecodable body, 413 over the operation limit,
    /// 422 `Invalid` for an operation that does not apply (as kube-apiserver answers).
    pub fn to_api_error(&self) -> ApiError {
        match self {
            JsonPatchError::Decode(m) => ApiError::bad_request(m.clone()),
            JsonPatchError::TooManyOperations(_) => {
                ApiError::new(413, "RequestEntityTooLarge", self.to_string())
            }
            JsonPatchError::Apply { message, .. } => ApiError::new(422, "Invalid", message.clone()),
        }
    }
}

/// Decodes a JSON patch body into operations.
pub(crate) fn parse_json_patch(patch: &Value) -> Result<Vec<PatchOperation>, JsonPatchError> {
    let Value::Array(ops) = patch else {
        return Err(JsonPatchError::Decode(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch".to_string(),
        ));
    };
    if ops.len() > MAX_OPERATIONS {
        return Err(JsonPatchError::TooManyOperations(ops.len()));
    }
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            serde_json::from_value::<PatchOperation>(op.clone()).map_err(|e| {
                JsonPatchError::Decode(format!("invalid JSON patch operation {i}: {e}"))
            })
        })
        .collect()
}

/// Applies a JSON patch body (a JSON list of operations) to `original`.
pub fn json_patch(original: &Value, patch: &Value) -> Result<Value, JsonPatchError> {
    let ops = parse_json_patch(patch)?;
    apply_operations(original, &ops)
}

/// Applies decoded operations to a copy of `original`.
pub(crate) fn apply_operations(
    original: &Value,
    ops: &[PatchOperation],
) -> Result<Value, JsonPatchError> {
    let mut doc = original.clone();
    let mut copied = 0usize;
    for (index, op) in ops.iter().enumerate() {
        if let PatchOperation::Copy(c) = op
            && let Some(source) = doc.pointer(c.from.as_str())
        {
            copied = copied.saturating_add(encoded_len(source));
            if copied > MAX_COPY_BYTES {
                return Err(JsonPatchError::Apply {
                    index,
                    message: format!(
                        "Unable to copy, would exceed max copy size of {MAX_COPY_BYTES} bytes"
                    ),
                });
            }
        }
        if let PatchOperation::Test(t) = op
            && t.value.is_null()
            && missing_in_existing_parent(&doc, t.path.as_str())
        {
            continue;
        }
        if let Err(e) = json_patch::patch(&mut doc, std::slice::from_ref(op)) {
            return Err(JsonPatchError::Apply {
                index,
                message: describe(op, &e.kind),
            });
        }
    }
    Ok(doc)
}

/// The length of a value's JSON encoding, without building it.
fn encoded_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing to a counter cannot fail.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// True when `pointer` names a key absent from an object that does exist.
fn missing_in_existing_parent(doc: &Value, pointer: &str) -> bool {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return false;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    match doc.pointer(parent) {
        Some(Value::Object(m)) => !m.contains_key(&key),
        _ => false,
    }
}

fn describe(op: &PatchOperation, kind: &json_patch::PatchErrorKind) -> String {
    use json_patch::PatchErrorKind as K;
    let path = op.path().as_str();
    let (name, from) = match op {
        PatchOperation::Add(_) => ("add", None),
        PatchOperation::Remove(_) => ("remove", None),
        PatchOperation::Replace(_) => ("replace", None),
        PatchOperation::Move(m) => ("move", Some(m.from.as_str())),
        PatchOperation::Copy(c) => ("copy", Some(c.from.as_str())),
        PatchOperation::Test(_) => ("test", None),
    };
    match kind {
        K::TestFailed => format!("testing value {path} failed: test failed"),
        K::InvalidFromPointer => format!(
            "{name} operation does not apply: doc is missing from path: \"{}\": missing value",
            from.unwrap_or_default()
        ),
        K::CannotMoveInsideItself => format!(
            "move operation does not apply: cannot move \"{}\" into its own child \"{path}\"",
            from.unwrap_or_default()
        ),
        K::InvalidPointer if name == "replace" => {
            format!("replace operation does not apply: doc is missing key: {path}: missing value")
        }
        K::InvalidPointer if name == "test" => {
            format!("test operation does not apply: doc is missing path: \"{path}\": missing value")
        }
        _ => format!(
            "{name} operation does not apply: doc is missing path: \"{path}\": missing value"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// (original, patch, expected result) — behaviours kubectl patch --type=json and kube-rs
    /// clients rely on.
    #[test]
    fn json_patch_applies() {
        let cases = [
            // add a new key, replace an existing one
            (
                json!({"spec": {"replicas": 1}}),
                json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]),
                json!({"spec": {"replicas": 3}}),
            ),
            (
                json!({"metadata": {}}),
                json!([{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}]),
                json!({"metadata": {"labels": {"a": "b"}}}),
            ),
            // "~1" escapes "/" in label keys
            (
                json!({"metadata": {"labels": {"app.kubernetes.io/name": "x", "k": "v"}}}),
                json!([{"op": "remove", "path": "/metadata/labels/app.kubernetes.io~1name"}]),
                json!({"metadata": {"labels": {"k": "v"}}}),
            ),
            // append with "-" and insert at an index
            (
                json!({"a": [1, 3]}),
                json!([{"op": "add", "path": "/a/-", "value": 4}, {"op": "add", "path": "/a/1", "value": 2}]),
                json!({"a": [1, 2, 3, 4]}),
            ),
            // move and copy
            (
                json!({"a": {"x": 1}, "b": {}}),
                json!([{"op": "move", "from": "/a/x", "path": "/b/y"}, {"op": "copy", "from": "/b/y", "path": "/c"}]),
                json!({"a": {}, "b": {"y": 1}, "c": 1}),
            ),
            // kube-runtime finalizer helper, first finalizer: test missing path against null
            (
                json!({"metadata": {"name": "x"}}),
                json!([
                    {"op": "test", "path": "/metadata/finalizers", "value": null},
                    {"op": "add", "path": "/metadata/finalizers", "value": ["example.com/f"]}
                ]),
                json!({"metadata": {"name": "x", "finalizers": ["example.com/f"]}}),
            ),
            // kube-runtime finalizer helper, removal: test the item then remove it by index
            (
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!([
                    {"op": "test", "path": "/metadata/finalizers/1", "value": "b"},
                    {"op": "remove", "path": "/metadata/finalizers/1"}
                ]),
                json!({"metadata": {"finalizers": ["a"]}}),
            ),
            // test of a present null value
            (
                json!({"a": null}),
                json!([{"op": "test", "path": "/a", "value": null}]),
                json!({"a": null}),
            ),
            // whole-document replace
            (
                json!({"a": 1}),
                json!([{"op": "replace", "path": "", "value": {"b": 2}}]),
                json!({"b": 2}),
            ),
            // empty patch is a no-op
            (json!({"a": 1}), json!([]), json!({"a": 1})),
        ];
        for (orig, patch, want) in cases {
            assert_eq!(json_patch(&orig, &patch).unwrap(), want, "{patch}");
        }
    }

    /// Bad patches are errors (never panics), and the message names the failing path.
    #[test]
    fn json_patch_errors() {
        let doc = json!({"metadata": {"finalizers": ["a"]}, "spec": {"list": [1, 2]}});
        let cases: &[(Value, &str)] = &[
            (json!({"op": "add"}), "cannot unmarshal object"),
            (
                json!([{"op": "frobnicate", "path": "/a"}]),
                "invalid JSON patch operation 0",
            ),
            (
                json!([{"op": "add", "value": 1}]),
                "invalid JSON patch operation 0",
            ),
            (
                json!([{"op": "add", "path": "no-slash", "value": 1}]),
                "invalid JSON patch operation 0",
            ),
            (json!([1]), "invalid JSON patch operation 0"),
            (
                json!([{"op": "replace", "path": "/spec/missing", "value": 1}]),
                "replace operation does not apply: doc is missing key: /spec/missing",
            ),
            (
                json!([{"op": "add", "path": "/nope/x", "value": 1}]),
                "add operation does not apply: doc is missing path: \"/nope/x\"",
            ),
            (
                json!([{"op": "remove", "path": "/spec/list/5"}]),
                "remove operation does not apply: doc is missing path: \"/spec/list/5\"",
            ),
            (
                json!([{"op": "add", "path": "/spec/list/9", "value": 1}]),
                "add operation does not apply",
            ),
            (
                json!([{"op": "remove", "path": "/spec/list/-"}]),
                "remove operation does not apply",
            ),
            (
                json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "b"}]),
                "testing value /metadata/finalizers/0 failed: test failed",
            ),
            // test against a non-null value of a missing path fails
            (
                json!([{"op": "test", "path": "/metadata/labels", "value": {}}]),
                "test operation does not apply",
            ),
            // null rule only applies when the parent exists
            (
                json!([{"op": "test", "path": "/status/phase", "value": null}]),
                "test operation does not apply",
            ),
            (
                json!([{"op": "move", "from": "/spec", "path": "/spec/inner"}]),
                "move operation does not apply",
            ),
            (
                json!([{"op": "copy", "from": "/nope", "path": "/x"}]),
                "doc is missing from path: \"/nope\"",
            ),
            // operations on a scalar
            (
                json!([{"op": "add", "path": "/metadata/finalizers/0/x", "value": 1}]),
                "add operation does not apply",
            ),
        ];
        for (patch, want) in cases {
            let err = json_patch(&doc, patch)
                .expect_err(&patch.to_string())
                .to_string();
            assert!(err.contains(want), "{patch}: got {err:?}");
        }
        // a failing later op leaves no partial result
        let err = json_patch(
            &doc,
            &json!([{"op": "add", "path": "/x", "value": 1}, {"op": "remove", "path": "/y"}]),
        );
        assert!(matches!(err, Err(JsonPatchError::Apply { index: 1, .. })));
        assert_eq!(err.unwrap_err().to_api_error().code, 422);
        assert_eq!(
            json_patch(&doc, &json!({}))
                .unwrap_err()
                .to_api_error()
                .code,
            400
        );
    }

    /// A patch that doubles the document with every `copy` is stopped, not run out of memory.
    #[test]
    fn json_patch_copy_amplification_is_bounded() {
        let doc = json!({"a": "x".repeat(1024)});
        let ops: Vec<Value> = (0..64)
            .map(|i| json!({"op": "copy", "from": "", "path": format!("/c{i}")}))
            .collect();
        let err = json_patch(&doc, &Value::Array(ops)).unwrap_err();
        assert!(
            err.to_string().contains("would exceed max copy size"),
            "{err}"
        );
        assert_eq!(err.to_api_error().code, 422);
        // Small copies are fine.
        let ok = json_patch(&doc, &json!([{"op": "copy", "from": "/a", "path": "/b"}])).unwrap();
        assert_eq!(ok["a"], ok["b"]);
    }

    #[test]
    fn json_patch_operation_limit() {
        let ops: Vec<Value> = (0..=MAX_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "", "value": {}}))
            .collect();
        assert_eq!(
            json_patch(&json!({}), &Value::Array(ops)),
            Err(JsonPatchError::TooManyOperations(MAX_OPERATIONS + 1))
        );
    }
}
