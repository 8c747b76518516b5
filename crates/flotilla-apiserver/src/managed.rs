//! `metadata.managedFields` bookkeeping for non-apply writes: every create, update and
//! patch records (or refreshes) an `Update` entry for its field manager listing the
//! fields it set, and removes those fields from other managers' entries, as
//! kube-apiserver's field manager does.

use serde_json::{Map, Value, json};

use crate::objects::now_rfc3339;

/// Keys of list items that identify them (associative lists) in built-in kinds.
const LIST_KEYS: &[&str] = &[
    "name",
    "containerPort",
    "port",
    "mountPath",
    "type",
    "uid",
    "ip",
    "devicePath",
];

/// The `fieldsV1` set of an object's fields (without metadata bookkeeping and status,
/// which belongs to the status subresource).
pub fn fields_of(obj: &Value, include_status: bool) -> Value {
    let mut out = Map::new();
    if let Some(map) = obj.as_object() {
        for (k, v) in map {
            match k.as_str() {
                "apiVersion" | "kind" => {}
                "status" if !include_status => {}
                "metadata" => {
                    let mut m = Map::new();
                    if let Some(meta) = v.as_object() {
                        for (mk, mv) in meta {
                            if matches!(
                                mk.as_str(),
                                "labels" | "annotations" | "finalizers" | "ownerReferences"
                            ) {
                                m.insert(format!("f:{mk}"), fields_value(mv));
                            }
                        }
                    }
                    if !m.is_empty() {
                        out.insert("f:metadata".into(), Value::Object(m));
                    }
                }
                _ => {
                    out.insert(format!("f:{k}"), fields_value(v));
                }
            }
        }
    }
    Value::Object(out)
}

fn fields_value(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(format!("f:{k}"), fields_value(v));
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut out = Map::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Object(m) => {
                        let key = LIST_KEYS.iter().find_map(|k| m.get(*k).map(|v| (*k, v)));
                        let mut inner = match fields_value(item) {
                            Value::Object(o) => o,
                            _ => Map::new(),
                        };
                        inner.insert(".".into(), json!({}));
                        match key {
                            Some((k, v)) => {
                                out.insert(format!("k:{}", json!({k: v})), Value::Object(inner));
                            }
                            None => {
                                out.insert(format!("i:{i}"), Value::Object(inner));
                            }
                        }
                    }
                    other => {
                        out.insert(format!("v:{other}"), json!({}));
                    }
                }
            }
            Value::Object(out)
        }
        _ => json!({}),
    }
}

/// Removes from `set` every leaf also in `taken`; returns whether anything is left.
fn subtract(set: &mut Value, taken: &Value) -> bool {
    let (Some(set_map), Some(taken_map)) = (set.as_object_mut(), taken.as_object()) else {
        return !set.as_object().is_some_and(Map::is_empty);
    };
    let keys: Vec<String> = set_map.keys().cloned().collect();
    for k in keys {
        if let Some(t) = taken_map.get(&k) {
            let child = set_map.get_mut(&k).expect("key exists");
            let child_is_leaf = child.as_object().is_some_and(Map::is_empty);
            let taken_is_leaf = t.as_object().is_some_and(Map::is_empty);
            if child_is_leaf || taken_is_leaf {
                if child_is_leaf {
                    set_map.remove(&k);
                }
                continue;
            }
            if !subtract(child, t) {
                set_map.remove(&k);
            }
        }
    }
    set_map.iter().any(|(k, _)| k != ".")
}

/// Records an `Update` by `manager` of the fields that changed between `old` and `new`
/// (all of `new`'s fields on create). `subresource` is `""` or `"status"`.
pub fn record_update(
    new: &mut Value,
    old: Option<&Value>,
    manager: &str,
    api_version: &str,
    subresource: &str,
) {
    let include_status = subresource == "status";
    let changed = match old {
        None => fields_of(new, include_status),
        Some(old) => changed_fields(old, new, include_status),
    };
    if changed.as_object().is_some_and(Map::is_empty) {
        return;
    }
    let entries = new
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut kept = Vec::new();
    let mut own: Option<Value> = None;
    for mut e in entries {
        let same_manager = e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some("Update")
            && e.get("subresource").and_then(Value::as_str).unwrap_or("") == subresource;
        if same_manager {
            own = Some(e);
            continue;
        }
        if let Some(fields) = e.get_mut("fieldsV1")
            && !subtract(fields, &changed)
        {
            continue;
        }
        kept.push(e);
    }
    let mut fields = own
        .as_ref()
        .and_then(|e| e.get("fieldsV1"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    merge_sets(&mut fields, &changed);
    let mut entry = json!({
        "manager": manager,
        "operation": "Update",
        "apiVersion": api_version,
        "time": now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    });
    if !subresource.is_empty() {
        entry["subresource"] = json!(subresource);
    }
    kept.push(entry);
    crate::objects::meta_mut(new).insert("managedFields".into(), Value::Array(kept));
}

fn merge_sets(into: &mut Value, from: &Value) {
    let (Some(a), Some(b)) = (into.as_object_mut(), from.as_object()) else {
        return;
    };
    for (k, v) in b {
        match a.get_mut(k) {
            Some(existing) => merge_sets(existing, v),
            None => {
                a.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Fields whose values differ between `old` and `new` (present in `new`).
fn changed_fields(old: &Value, new: &Value, include_status: bool) -> Value {
    let old_set = fields_of(old, include_status);
    let new_set = fields_of(new, include_status);
    let mut out = new_set.clone();
    // A field is unchanged if both the set entry and the value are the same; approximate
    // by comparing top-level sections and dropping identical ones.
    if let (Some(o), Some(n), Some(out_map)) =
        (old.as_object(), new.as_object(), out.as_object_mut())
    {
        for (k, v) in n {
            if k == "metadata" {
                let om = o.get("metadata");
                let keep: Vec<&str> = ["labels", "annotations", "finalizers", "ownerReferences"]
                    .into_iter()
                    .filter(|f| om.and_then(|m| m.get(*f)) != v.get(*f))
                    .collect();
                if let Some(Value::Object(mm)) = out_map.get_mut("f:metadata") {
                    mm.retain(|fk, _| keep.iter().any(|f| fk == &format!("f:{f}")));
                    if mm.is_empty() {
                        out_map.remove("f:metadata");
                    }
                }
            } else if o.get(k) == Some(v) {
                out_map.remove(&format!("f:{k}"));
            }
        }
    }
    let _ = old_set;
    out
}

/// Drops managedFields entries from an object that has none worth keeping (used when a
/// client sends `managedFields: []` to reset them).
pub fn strip_if_reset(new: &mut Value) -> bool {
    let reset = new
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty);
    if reset {
        crate::objects::meta_mut(new).remove("managedFields");
    }
    reset
}
