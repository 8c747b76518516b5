//! Drift: which fields of a dispatched object differ from its desired state. Pure.
//!
//! Only what the desired state sets is compared (fields added by the cluster or by others are
//! not drift); `metadata` is compared on labels and annotations only; `status` never. Paths the
//! desired state leaves to others are exempt: apply-once paths, `spec.replicas` when an HPA
//! scales the object, and fields another field manager owns through server-side apply (its
//! declared intent; imperative edits such as `kubectl scale` or `kubectl set image` are
//! `Update` operations and count as drift).

use serde_json::Value;

use super::dispatch::FIELD_MANAGER;

/// The marker for an object that is gone.
pub(crate) const DELETED: &str = "<deleted>";

/// Paths (`spec.template.spec.containers[0].image`) where `live` differs from `desired`.
pub(crate) fn drifted_fields(desired: &Value, live: &Value, exempt: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(fields) = desired.as_object() else {
        return out;
    };
    for (key, value) in fields {
        match key.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                for part in ["labels", "annotations"] {
                    if let Some(d) = value.get(part) {
                        let l = &live["metadata"][part];
                        compare(&format!("metadata.{part}"), d, l, exempt, &mut out);
                    }
                }
            }
            _ => compare(key, value, &live[key.as_str()], exempt, &mut out),
        }
    }
    out
}

fn is_exempt(path: &str, exempt: &[String]) -> bool {
    exempt.iter().any(|e| {
        path == e
            || path
                .strip_prefix(e.as_str())
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    })
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn compare(path: &str, desired: &Value, live: &Value, exempt: &[String], out: &mut Vec<String>) {
    if is_exempt(path, exempt) {
        return;
    }
    match (desired, live) {
        (d, Value::Null) if is_empty(d) => {}
        (Value::Object(d), Value::Object(l)) => {
            for (k, dv) in d {
                let child = format!("{path}.{k}");
                compare(&child, dv, l.get(k).unwrap_or(&Value::Null), exempt, out);
            }
        }
        (Value::Array(d), Value::Array(l)) if d.len() == l.len() => {
            for (i, (dv, lv)) in d.iter().zip(l).enumerate() {
                compare(&format!("{path}[{i}]"), dv, lv, exempt, out);
            }
        }
        (Value::Number(d), Value::Number(l)) if d.as_f64() == l.as_f64() => {}
        (d, l) if d == l => {}
        _ => out.push(path.to_string()),
    }
}

/// Map fields other field managers own through server-side apply (`Apply` operations), as
/// dotted paths; fields inside lists are not followed.
pub(crate) fn applied_by_others(live: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for entry in live["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if entry["manager"].as_str() == Some(FIELD_MANAGER) || entry["operation"] != "Apply" {
            continue;
        }
        collect_fields("", &entry["fieldsV1"], &mut out);
    }
    out
}

fn collect_fields(path: &str, fields: &Value, out: &mut Vec<String>) {
    let Some(map) = fields.as_object() else {
        return;
    };
    for (key, sub) in map {
        let Some(name) = key.strip_prefix("f:") else {
            continue;
        };
        let child = if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        };
        if sub
            .as_object()
            .is_none_or(|m| m.is_empty() || m.contains_key("."))
        {
            out.push(child.clone());
        }
        collect_fields(&child, sub, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(image: &str, replicas: i64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "labels": {"app.oam.dev/name": "a"}},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                   {"name": "web", "image": image}]}}}})
    }

    #[test]
    fn edits_of_desired_fields_are_drift_additions_are_not() {
        let desired = deployment("nginx:1", 2);
        let mut live = deployment("nginx:1", 2);
        live["metadata"]["uid"] = json!("u");
        live["metadata"]["labels"]["extra"] = json!("x");
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
        live["status"] = json!({"replicas": 2});
        assert!(drifted_fields(&desired, &live, &[]).is_empty());

        live["spec"]["replicas"] = json!(5);
        live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        assert_eq!(
            drifted_fields(&desired, &live, &[]),
            ["spec.replicas", "spec.template.spec.containers[0].image"]
        );
        assert_eq!(
            drifted_fields(&desired, &live, &["spec.replicas".into()]),
            ["spec.template.spec.containers[0].image"]
        );
        assert!(drifted_fields(&desired, &live, &["spec".into()]).is_empty());
        live["metadata"]["labels"]["app.oam.dev/name"] = json!("b");
        assert!(
            drifted_fields(&desired, &live, &["spec".into()])
                == ["metadata.labels.app.oam.dev/name"]
        );
    }

    #[test]
    fn fields_applied_by_other_managers_are_listed() {
        let live = json!({"metadata": {"managedFields": [
            {"manager": "flotilla", "operation": "Apply",
             "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "kubectl", "operation": "Update",
             "fieldsV1": {"f:spec": {"f:paused": {}}}},
            {"manager": "team-b", "operation": "Apply",
             "fieldsV1": {"f:metadata": {"f:labels": {"f:tier": {}}},
                          "f:spec": {"f:minReadySeconds": {}}}}]}});
        assert_eq!(
            applied_by_others(&live),
            ["metadata.labels.tier", "spec.minReadySeconds"]
        );
    }
}
