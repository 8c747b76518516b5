//! Validation of incoming objects: type metadata, decoding built-in kinds through their
//! real schemas (the `k8s-openapi` types), unknown-field detection for
//! `fieldValidation`, name rules and the semantic checks kube-apiserver makes that users
//! meet most often.

use flotilla_core::status::{ApiError, StatusCause};
use serde_json::Value;

use crate::handlers::FieldValidation;
use crate::registry::ResourceInfo;
use crate::strategy::NameRule;
use crate::typed_kinds::typed_decode;

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
pub(crate) const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

/// A field-level problem, as a `Status` cause.
pub(crate) fn cause(reason: &str, field: &str, message: impl Into<String>) -> StatusCause {
    StatusCause {
        reason: reason.into(),
        field: field.into(),
        message: message.into(),
    }
}

/// `field: Required value`
pub(crate) fn required(field: &str) -> StatusCause {
    cause("FieldValueRequired", field, "Required value")
}

/// `field: Invalid value: <v>: why`
pub(crate) fn invalid(field: &str, value: &Value, why: &str) -> StatusCause {
    let shown = match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    cause(
        "FieldValueInvalid",
        field,
        format!("Invalid value: {shown}: {why}"),
    )
}

/// Checks (and fills, when missing) `apiVersion` and `kind` against the endpoint.
pub(crate) fn check_type_meta(info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    let expected_version = info.api_version();
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    match map.get("apiVersion") {
        None | Some(Value::Null) => {
            map.insert("apiVersion".into(), Value::String(expected_version.clone()));
        }
        Some(Value::String(v)) if *v == expected_version => {}
        Some(Value::String(v)) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected_version})"
            )));
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "couldn't get version/kind; json parse error: apiVersion must be a string, got {other}"
            )));
        }
    }
    match map.get("kind") {
        None | Some(Value::Null) => {
            map.insert("kind".into(), Value::String(info.kind.clone()));
        }
        Some(Value::String(k)) if *k == info.kind => {}
        Some(Value::String(k)) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                info.kind
            )));
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "couldn't get version/kind; json parse error: kind must be a string, got {other}"
            )));
        }
    }
    if !map
        .get("metadata")
        .is_none_or(|m| m.is_object() || m.is_null())
    {
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: metadata must be an object",
            info.kind, info.version, info.kind
        )));
    }
    if map.get("metadata").is_some_and(Value::is_null) {
        map.remove("metadata");
    }
    Ok(())
}

/// Paths (`spec.foo`, `spec.containers[0].bar`) present in `input` but not in `decoded`.
pub(crate) fn unknown_fields(input: &Value, decoded: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_unknown(input, decoded, "", &mut out);
    out
}

fn walk_unknown(input: &Value, decoded: &Value, path: &str, out: &mut Vec<String>) {
    match (input, decoded) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(d) => walk_unknown(v, d, &p, out),
                    None if v.is_null() => {}
                    None if is_empty_container(v) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                walk_unknown(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// The strict-decoding message for a list of unknown fields.
pub(crate) fn strict_message(unknown: &[String]) -> String {
    format!(
        "strict decoding error: {}",
        unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Decodes a built-in object through its schema, applying `fieldValidation`.
/// Returns the normalized object (unknown fields dropped) and any warnings.
pub(crate) fn decode_builtin(
    info: &ResourceInfo,
    obj: &Value,
    mode: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    let Some(result) = typed_decode(&info.group, &info.version, &info.kind, obj) else {
        return Ok((obj.clone(), Vec::new()));
    };
    let cannot = |why: String| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {why}",
            info.kind, info.version, info.kind
        ))
    };
    let decoded = result.map_err(cannot)?;
    let unknown = unknown_fields(obj, &decoded);
    let mut warnings = Vec::new();
    if !unknown.is_empty() {
        match mode {
            FieldValidation::Strict => return Err(cannot(strict_message(&unknown))),
            FieldValidation::Warn => {
                warnings.extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")))
            }
            FieldValidation::Ignore => {}
        }
    }
    Ok((decoded, warnings))
}

pub(crate) fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && has_dns1123_label_shape(s)
}

/// Lower-case alphanumerics and `-`, starting and ending alphanumeric (no length cap).
fn has_dns1123_label_shape(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Kubernetes' `IsDNS1123Subdomain`: at most 253 characters in all; the dot-separated
/// parts are label-shaped but, unlike DNS, not capped at 63 each.
fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(has_dns1123_label_shape)
}

fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// Validates `metadata.name` (and `generateName` prefixes, labels, annotations).
pub(crate) fn validate_metadata(info: &ResourceInfo, obj: &Value, causes: &mut Vec<StatusCause>) {
    let meta = obj.get("metadata").and_then(Value::as_object);
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() {
        causes.push(cause(
            "FieldValueRequired",
            "metadata.name",
            "Required value: name or generateName is required",
        ));
    } else {
        let v = Value::String(name.to_string());
        match crate::strategy::of(info).name_rule {
            NameRule::Subdomain if !is_dns1123_subdomain(name) => {
                if name.len() > 253 {
                    causes.push(invalid(
                        "metadata.name",
                        &v,
                        "must be no more than 253 characters",
                    ));
                } else {
                    causes.push(invalid("metadata.name", &v, DNS1123_SUBDOMAIN_MSG));
                }
            }
            NameRule::Label if !is_dns1123_label(name) => {
                if name.len() > 63 {
                    causes.push(invalid(
                        "metadata.name",
                        &v,
                        "must be no more than 63 characters",
                    ));
                } else {
                    causes.push(invalid("metadata.name", &v, DNS1123_LABEL_MSG));
                }
            }
            NameRule::Dns1035 if !is_dns1035_label(name) => {
                if name.len() > 63 {
                    causes.push(invalid(
                        "metadata.name",
                        &v,
                        "must be no more than 63 characters",
                    ));
                } else {
                    causes.push(invalid("metadata.name", &v, DNS1035_LABEL_MSG));
                }
            }
            NameRule::Path if name == "." || name == ".." => {
                causes.push(invalid(
                    "metadata.name",
                    &v,
                    &format!("may not be '{name}'"),
                ));
            }
            NameRule::Path if name.contains('/') || name.contains('%') => {
                causes.push(invalid("metadata.name", &v, "may not contain '/'"));
            }
            _ => {}
        }
    }
    if let Some(labels) = meta
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
    {
        for (k, v) in labels {
            for msg in flotilla_core::selector::validate_label_key(k) {
                causes.push(invalid("metadata.labels", &Value::String(k.clone()), &msg));
            }
            if let Some(s) = v.as_str() {
                for msg in flotilla_core::selector::validate_label_value(s) {
                    causes.push(invalid("metadata.labels", v, &msg));
                }
            }
        }
    }
    if let Some(annotations) = meta
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        for k in annotations.keys() {
            for msg in flotilla_core::selector::validate_label_key(k) {
                causes.push(invalid(
                    "metadata.annotations",
                    &Value::String(k.clone()),
                    &msg,
                ));
            }
        }
        let total: usize = annotations
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if total > 256 * 1024 {
            causes.push(cause(
                "FieldValueTooLong",
                "metadata.annotations",
                "Too long: must have at most 262144 bytes",
            ));
        }
    }
}

/// Metadata checks and the kind's own semantic checks (its strategy's); `old` is the stored
/// object on updates. Returns the causes (empty when valid).
pub(crate) fn validate_builtin(
    info: &ResourceInfo,
    obj: &Value,
    old: Option<&Value>,
) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    validate_metadata(info, obj, &mut causes);
    (crate::strategy::of(info).validate)(obj, old, &mut causes);
    causes
}

/// The 422 for `causes` on `info`'s kind.
pub(crate) fn invalid_error(info: &ResourceInfo, name: &str, causes: Vec<StatusCause>) -> ApiError {
    ApiError::invalid(&info.group, &info.kind, name, causes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomain_parts_are_not_capped_at_63() {
        let long = "a".repeat(64);
        assert!(is_dns1123_subdomain(&long));
        assert!(is_dns1123_subdomain(&format!("{long}.example")));
        assert!(!is_dns1123_label(&long));
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain("-a.b"));
        assert!(!is_dns1123_subdomain("A.b"));
    }
    use serde_json::json;

    fn info(group: &str, kind: &str) -> ResourceInfo {
        crate::builtin::resources()
            .into_iter()
            .find(|r| r.group == group && r.kind == kind)
            .unwrap()
    }

    #[test]
    fn unknown_fields_are_found() {
        let d = info("apps", "Deployment");
        let obj = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"},
            "spec":{"foo":1,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},
            "spec":{"containers":[{"name":"c","image":"i","bogus":true}]}}}});
        let err = decode_builtin(&d, &obj, FieldValidation::Strict).unwrap_err();
        assert!(
            err.message.contains("unknown field \"spec.foo\""),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains("unknown field \"spec.template.spec.containers[0].bogus\"")
        );
        let (decoded, warnings) = decode_builtin(&d, &obj, FieldValidation::Warn).unwrap();
        assert_eq!(warnings.len(), 2);
        assert!(decoded["spec"].get("foo").is_none());
    }

    #[test]
    fn wrong_types_are_bad_requests() {
        let d = info("apps", "Deployment");
        let obj = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"},"spec":{"replicas":"three"}});
        let err = decode_builtin(&d, &obj, FieldValidation::Ignore).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message
                .starts_with("Deployment in version \"v1\" cannot be handled as a Deployment")
        );
    }

    #[test]
    fn semantic_checks() {
        let d = info("apps", "Deployment");
        let obj = json!({"metadata":{"name":"web"},"spec":{"replicas":-1,"selector":{"matchLabels":{"app":"web"}},
            "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"nginx"}]}}}});
        let causes = validate_builtin(&d, &obj, None);
        assert_eq!(causes.len(), 1);
        let e = invalid_error(&d, "web", causes);
        assert_eq!(
            e.message,
            "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        let cm = info("", "ConfigMap");
        let causes = validate_builtin(&cm, &json!({"metadata":{"name":"Bad_Name"}}), None);
        assert_eq!(causes[0].field, "metadata.name");
    }
}
