//! Version conversion for kinds served in more than one version: HorizontalPodAutoscaler
//! is stored as `autoscaling/v2` and served as `v1` too.

use serde_json::{Value, json};

use crate::registry::ResourceInfo;

/// Converts a stored object into the version `info` serves.
pub(crate) fn to_served(info: &ResourceInfo, mut obj: Value) -> Value {
    if info.version == info.storage_version {
        return obj;
    }
    if info.crd.is_some() {
        obj["apiVersion"] = json!(info.api_version());
        return obj;
    }
    if info.resource == "horizontalpodautoscalers" && info.version == "v1" {
        return hpa_v2_to_v1(obj);
    }
    obj
}

/// Converts an object in `info`'s version into the stored version.
pub(crate) fn to_storage(info: &ResourceInfo, mut obj: Value) -> Value {
    if info.version == info.storage_version {
        return obj;
    }
    if info.crd.is_some() {
        obj["apiVersion"] = json!(flotilla_core::resource::api_version(
            &info.group,
            &info.storage_version
        ));
        return obj;
    }
    if info.resource == "horizontalpodautoscalers" && info.version == "v1" {
        return hpa_v1_to_v2(obj);
    }
    obj
}

fn hpa_v2_to_v1(mut obj: Value) -> Value {
    obj["apiVersion"] = json!("autoscaling/v1");
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        let cpu = spec
            .remove("metrics")
            .and_then(|m| m.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .find(|m| {
                m.get("type").and_then(Value::as_str) == Some("Resource")
                    && m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
            })
            .and_then(|m| m.pointer("/resource/target/averageUtilization").cloned());
        spec.remove("behavior");
        if let Some(cpu) = cpu {
            spec.insert("targetCPUUtilizationPercentage".into(), cpu);
        }
    }
    if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) {
        let cpu = status
            .remove("currentMetrics")
            .and_then(|m| m.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .find_map(|m| m.pointer("/resource/current/averageUtilization").cloned());
        status.remove("conditions");
        if let Some(cpu) = cpu {
            status.insert("currentCPUUtilizationPercentage".into(), cpu);
        }
    }
    obj
}

fn hpa_v1_to_v2(mut obj: Value) -> Value {
    obj["apiVersion"] = json!("autoscaling/v2");
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
        && let Some(cpu) = spec.remove("targetCPUUtilizationPercentage")
    {
        spec.insert(
                "metrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}}}]),
            );
    }
    if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) {
        if let Some(cpu) = status.remove("currentCPUUtilizationPercentage") {
            status.insert(
                "currentMetrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": cpu}}}]),
            );
        }
        if status.get("desiredReplicas").is_none() {
            status.insert("desiredReplicas".into(), json!(0));
        }
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpa_round_trip_keeps_cpu_target() {
        let v1 = json!({"apiVersion":"autoscaling/v1","kind":"HorizontalPodAutoscaler","metadata":{"name":"h"},
            "spec":{"scaleTargetRef":{"kind":"Deployment","name":"d"},"minReplicas":1,"maxReplicas":5,"targetCPUUtilizationPercentage":80}});
        let v2 = hpa_v1_to_v2(v1.clone());
        assert_eq!(
            v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        assert_eq!(hpa_v2_to_v1(v2)["spec"], v1["spec"]);
    }
}
