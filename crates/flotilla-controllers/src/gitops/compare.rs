//! Git vs cluster: an object is in sync when every field Git sets has the same value live.
//! Fields the cluster adds (defaults, status, other managers' labels) do not count, as in
//! Argo CD's default comparison.

use serde_json::Value;

/// Most differences listed per object.
const MAX_DIFFERENCES: usize = 20;

fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 80 {
        format!("{}...", &text[..text.floor_char_boundary(77)])
    } else {
        text
    }
}

fn numbers_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn walk(path: &str, desired: &Value, live: Option<&Value>, out: &mut Vec<String>) {
    if out.len() >= MAX_DIFFERENCES {
        return;
    }
    let live_text = || live.map(short).unwrap_or_else(|| "<none>".into());
    match (desired, live) {
        // `field: null` in Git means "unset": absent live is equal.
        (Value::Null, None | Some(Value::Null)) => {}
        (Value::Object(want), Some(Value::Object(have))) => {
            for (key, value) in want {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                walk(&child, value, have.get(key), out);
            }
        }
        (Value::Array(want), Some(Value::Array(have))) if want.len() == have.len() => {
            for (i, (w, h)) in want.iter().zip(have).enumerate() {
                walk(&format!("{path}[{i}]"), w, Some(h), out);
            }
        }
        (Value::Number(_), Some(h)) if numbers_equal(desired, h) => {}
        (want, Some(have)) if want == have => {}
        (want, _) => out.push(format!(
            "{path}: git {} != live {}",
            short(want),
            live_text()
        )),
    }
}

/// Where `live` differs from `desired` (`path: git X != live Y`); empty when in sync.
pub(crate) fn differences(desired: &Value, live: &Value) -> Vec<String> {
    let mut out = Vec::new();
    // `stringData` is write-only (the server folds it into `data`), so it is not compared.
    for key in ["metadata", "spec", "data", "rules", "subjects", "roleRef"] {
        if let Some(want) = desired.get(key) {
            let want = if key == "metadata" {
                comparable_metadata(want)
            } else {
                want.clone()
            };
            walk(key, &want, live.get(key), &mut out);
        }
    }
    // Top-level fields of kinds without a spec (e.g. `type` of a Secret, `webhooks`).
    if let Some(obj) = desired.as_object() {
        for (key, want) in obj {
            let skip = matches!(
                key.as_str(),
                "apiVersion"
                    | "kind"
                    | "status"
                    | "metadata"
                    | "spec"
                    | "data"
                    | "stringData"
                    | "rules"
                    | "subjects"
                    | "roleRef"
            );
            if !skip {
                walk(key, want, live.get(key), &mut out);
            }
        }
    }
    out
}

/// The parts of `metadata` Git decides: labels and annotations.
fn comparable_metadata(metadata: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in ["labels", "annotations"] {
        if let Some(v) = metadata.get(key) {
            out.insert(key.to_string(), v.clone());
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extra_live_fields_are_in_sync_and_changed_ones_are_not() {
        let desired = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "namespace": "n", "labels": {"x": "1"}},
            "spec": {"replicas": 2, "template": {"metadata": {"creationTimestamp": null},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let mut live = desired.clone();
        live["metadata"]["uid"] = json!("u");
        live["metadata"]["labels"]["y"] = json!("2");
        live["spec"]["template"]["metadata"] = json!({});
        live["spec"]["replicas"] = json!(2.0);
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
        live["status"] = json!({"replicas": 2});
        assert!(
            differences(&desired, &live).is_empty(),
            "{:?}",
            differences(&desired, &live)
        );
        live["spec"]["replicas"] = json!(5);
        live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("j");
        assert_eq!(
            differences(&desired, &live),
            [
                "spec.replicas: git 2 != live 5",
                "spec.template.spec.containers[0].image: git \"i\" != live \"j\""
            ]
        );
    }

    #[test]
    fn data_and_top_level_fields_count() {
        let desired = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "type": "Opaque", "data": {"k": "dg=="}});
        let live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "type": "Opaque", "data": {}});
        assert_eq!(
            differences(&desired, &live),
            ["data.k: git \"dg==\" != live <none>"]
        );
    }
}
