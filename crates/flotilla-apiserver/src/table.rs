//! `meta.k8s.io` Tables (what `kubectl get` prints) and PartialObjectMetadata.
//!
//! Columns follow kube-apiserver's printers for each built-in kind (wide-only columns have
//! priority 1); custom resources use their CRD's `additionalPrinterColumns`.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::registry::ResourceInfo;

/// `includeObject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IncludeObject {
    None,
    Metadata,
    Object,
}

/// Reads `includeObject` (default Metadata).
pub(crate) fn include_object(query: &HashMap<String, String>) -> IncludeObject {
    match query.get("includeObject").map(String::as_str) {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    }
}

/// A `PartialObjectMetadata` view of an object.
pub(crate) fn partial_metadata(obj: &Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// One column of a table.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: &'static str,
    pub format: String,
    pub description: String,
    pub priority: i64,
    /// For custom resources: the JSONPath of the value.
    pub json_path: Option<String>,
}

fn col(name: &str, ty: &'static str, priority: i64) -> Column {
    Column {
        name: name.into(),
        ty,
        format: if name == "Name" {
            "name".into()
        } else {
            String::new()
        },
        description: describe(name),
        priority,
        json_path: None,
    }
}

fn describe(name: &str) -> String {
    match name {
        "Name" => "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names".into(),
        "Age" => "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata".into(),
        other => format!("{other} of the object."),
    }
}

use crate::strategy::print::{age_of, s};

/// The columns of `info`'s table.
pub(crate) fn columns(info: &ResourceInfo) -> Vec<Column> {
    if let Some(crd) = &info.crd {
        let mut cols = vec![col("Name", "string", 0)];
        if crd.printer_columns.is_empty() {
            let mut age = col("Age", "date", 0);
            age.json_path = Some(".metadata.creationTimestamp".into());
            cols.push(age);
        } else {
            cols.extend(crd.printer_columns.iter().cloned());
        }
        return cols;
    }
    crate::strategy::of(info)
        .columns
        .iter()
        .map(|c| col(c.name, c.ty, c.priority))
        .collect()
}

fn cells(info: &ResourceInfo, cols: &[Column], obj: &Value) -> Vec<Value> {
    if info.crd.is_none() {
        return crate::strategy::of(info)
            .columns
            .iter()
            .map(|c| (c.cell)(obj))
            .collect();
    }
    let mut out = vec![json!(s(obj, "/metadata/name"))];
    for c in &cols[1..] {
        let path = c.json_path.as_deref().unwrap_or("");
        let found = crate::jsonpath::evaluate(obj, path);
        let value = match found.first() {
            None => Value::Null,
            Some(v) => match c.ty {
                "date" => age_of(v.as_str()),
                "integer" => v.as_i64().map(|n| json!(n)).unwrap_or_else(|| (*v).clone()),
                "number" => v.as_f64().map(|n| json!(n)).unwrap_or_else(|| (*v).clone()),
                "boolean" => v
                    .as_bool()
                    .map(|b| json!(b))
                    .unwrap_or_else(|| (*v).clone()),
                _ => match v {
                    Value::String(s) => json!(s),
                    other if found.len() == 1 => json!(other.to_string()),
                    _ => json!(
                        found
                            .iter()
                            .map(|v| v
                                .as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()))
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                },
            },
        };
        out.push(value);
    }
    out
}

/// A `meta.k8s.io` Table of `objects`.
pub(crate) fn table(
    info: &ResourceInfo,
    objects: &[Value],
    version: &str,
    include: IncludeObject,
    list_meta: Value,
    with_headers: bool,
) -> Value {
    let cols = columns(info);
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(info, &cols, o)});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => row["object"] = partial_metadata(o, version),
                IncludeObject::Object => row["object"] = o.clone(),
            }
            row
        })
        .collect();
    let defs: Vec<Value> = if with_headers {
        cols.iter()
            .map(|c| json!({"name": c.name, "type": c.ty, "format": c.format, "description": c.description, "priority": c.priority}))
            .collect()
    } else {
        Vec::new()
    };
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": list_meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::print::human_duration;

    #[test]
    fn human_durations_match_kubernetes() {
        let d = chrono::Duration::seconds;
        assert_eq!(human_duration(d(-5)), "<invalid>");
        assert_eq!(human_duration(d(-1)), "0s");
        assert_eq!(human_duration(d(45)), "45s");
        assert_eq!(human_duration(d(119)), "119s");
        assert_eq!(human_duration(d(130)), "2m10s");
        assert_eq!(human_duration(d(180)), "3m");
        assert_eq!(human_duration(d(60 * 15)), "15m");
        assert_eq!(human_duration(d(3600 * 5 + 60 * 3)), "5h3m");
        assert_eq!(human_duration(d(3600 * 30)), "30h");
        assert_eq!(human_duration(d(3600 * 24 * 3 + 3600 * 2)), "3d2h");
        assert_eq!(human_duration(d(3600 * 24 * 100)), "100d");
        assert_eq!(human_duration(d(3600 * 24 * 365 * 3)), "3y");
    }

    #[test]
    fn deployment_row() {
        let info = crate::builtin::resources()
            .into_iter()
            .find(|r| r.kind == "Deployment")
            .unwrap();
        let o = json!({"metadata":{"name":"web","creationTimestamp":"2020-01-01T00:00:00Z"},
            "spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},"template":{"spec":{"containers":[{"name":"c","image":"nginx"}]}}},
            "status":{"readyReplicas":2,"updatedReplicas":3,"availableReplicas":2}});
        let t = table(&info, &[o], "v1", IncludeObject::Metadata, json!({}), true);
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 8);
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[0], "web");
        assert_eq!(cells[1], "2/3");
        assert_eq!(cells[2], 3);
        assert_eq!(cells[7], "app=web");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }
}
