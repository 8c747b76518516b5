//! ConfigMap and Secret: data keys, `stringData` folded into `data`, `immutable`.

use flotilla_core::status::StatusCause;
use serde_json::{Map, Value, json};

use super::print::{age, name, s};
use super::{Aggregate, PrintColumn, Strategy, set_default};
use crate::validation::{cause, invalid};
use k8s_openapi::api::core::v1 as core;

/// ConfigMap and Secret.
pub(crate) const STRATEGIES: &[Strategy] = &[
    Strategy::typed::<core::ConfigMap>()
        .short_names(&["cm"])
        .aggregate(Aggregate::ViewEdit)
        .validate(validate_keys)
        .validate_update(data_is_immutable)
        .columns(&[
            PrintColumn::new("Name", name),
            PrintColumn::new("Data", |o| {
                json!(
                    o.get("data").and_then(Value::as_object).map_or(0, Map::len)
                        + o.get("binaryData")
                            .and_then(Value::as_object)
                            .map_or(0, Map::len)
                )
            }),
            PrintColumn::new("Age", age),
        ]),
    Strategy::typed::<core::Secret>()
        .aggregate(Aggregate::Edit)
        .field_labels(&["type"])
        .defaults(default_secret)
        .validate(validate_keys)
        .validate_update(data_is_immutable)
        .columns(&[
            PrintColumn::new("Name", name),
            PrintColumn::new("Type", |o| json!(s(o, "/type"))),
            PrintColumn::new("Data", |o| {
                json!(o.get("data").and_then(Value::as_object).map_or(0, Map::len))
            }),
            PrintColumn::new("Age", age),
        ]),
];

/// `stringData` becomes base64 `data` (as kube-apiserver does on write); `type` is `Opaque`.
fn default_secret(obj: &mut Value) {
    fold_string_data(obj);
    if let Some(map) = obj.as_object_mut() {
        set_default(map, "type", json!("Opaque"));
    }
}

fn fold_string_data(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    use base64::Engine;
    let data = map.entry("data").or_insert_with(|| json!({}));
    if let Some(data) = data.as_object_mut() {
        for (k, v) in string_data {
            if let Some(s) = v.as_str() {
                data.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(s.as_bytes())),
                );
            }
        }
    }
}

fn validate_keys(obj: &Value, _old: Option<&Value>, causes: &mut Vec<StatusCause>) {
    for field in ["data", "binaryData", "stringData"] {
        if let Some(map) = obj.get(field).and_then(Value::as_object) {
            for k in map.keys() {
                let ok = !k.is_empty()
                    && k.len() <= 253
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
                if !ok {
                    causes.push(invalid(
                        &format!("{field}[{k}]"),
                        &Value::String(k.clone()),
                        "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                    ));
                }
            }
        }
    }
}

fn data_is_immutable(old: &Value, new: &Value, causes: &mut Vec<StatusCause>) {
    if old.get("immutable") == Some(&Value::Bool(true))
        && (old.get("data") != new.get("data") || old.get("binaryData") != new.get("binaryData"))
    {
        causes.push(cause(
            "FieldValueForbidden",
            "data",
            "Forbidden: field is immutable when `immutable` is set",
        ));
    }
}
