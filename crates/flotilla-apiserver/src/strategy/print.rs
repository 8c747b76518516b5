//! Cell helpers shared by the strategies' `kubectl get` columns: reading fields leniently
//! (missing is empty or zero), ages as kube-apiserver prints them, selectors and maps as text.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// kube-apiserver's `HumanDuration`.
pub(crate) fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

pub(crate) fn age_of(ts: Option<&str>) -> Value {
    match ts.and_then(|t| DateTime::parse_from_rfc3339(t).ok()) {
        Some(t) => json!(human_duration(
            Utc::now().signed_duration_since(t.with_timezone(&Utc))
        )),
        None => json!("<unknown>"),
    }
}

pub(crate) fn age(obj: &Value) -> Value {
    age_of(
        obj.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str),
    )
}

pub(crate) fn s<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn i(obj: &Value, ptr: &str) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

pub(crate) fn arr<'a>(obj: &'a Value, ptr: &str) -> &'a [Value] {
    obj.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub(crate) fn selector_text(sel: Option<&Value>) -> String {
    match sel.and_then(|s| flotilla_core::selector::LabelSelector::from_json(s).ok()) {
        Some(s) if !s.is_everything() => s.to_string(),
        Some(_) => "<none>".into(),
        None => "<none>".into(),
    }
}

pub(crate) fn map_text(m: Option<&Value>) -> String {
    match m.and_then(Value::as_object) {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".into(),
    }
}

/// At most three items joined with commas, then `+ N more...`, as kubectl's printers.
pub(crate) fn first_three(items: Vec<String>) -> String {
    if items.is_empty() {
        return "<none>".into();
    }
    let mut text = items.iter().take(3).cloned().collect::<Vec<_>>().join(",");
    if items.len() > 3 {
        text.push_str(&format!(" + {} more...", items.len() - 3));
    }
    text
}

pub(crate) fn lb_ingress(obj: &Value, ptr: &str) -> Vec<String> {
    arr(obj, ptr)
        .iter()
        .filter_map(|i| {
            let ip = s(i, "/ip");
            let host = s(i, "/hostname");
            if !ip.is_empty() {
                Some(ip.to_string())
            } else if !host.is_empty() {
                Some(host.to_string())
            } else {
                None
            }
        })
        .collect()
}

/// The `Name` cell.
pub(crate) fn name(o: &Value) -> Value {
    json!(s(o, "/metadata/name"))
}

/// The raw creation timestamp (the `Created At` date cell).
pub(crate) fn created_at(o: &Value) -> Value {
    json!(s(o, "/metadata/creationTimestamp"))
}

/// `v`, or `<none>` when empty.
pub(crate) fn or_none(v: &str) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v.to_string()
    }
}

/// The container names of the pod spec whose containers are at `ptr`, comma-separated.
pub(crate) fn container_names(o: &Value, ptr: &str) -> Value {
    json!(
        arr(o, ptr)
            .iter()
            .map(|c| s(c, "/name"))
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// The container images of the pod spec whose containers are at `ptr`, comma-separated.
pub(crate) fn container_images(o: &Value, ptr: &str) -> Value {
    json!(
        arr(o, ptr)
            .iter()
            .map(|c| s(c, "/image"))
            .collect::<Vec<_>>()
            .join(",")
    )
}
