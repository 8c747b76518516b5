//! HorizontalPodAutoscaler simulation: the replica count an HPA settles on and the status it
//! reports. With no metrics in a simulated member, the HPA keeps its target inside
//! `[minReplicas, maxReplicas]`; annotation `sim.flotilla.io/desired-replicas` asks it to
//! settle on a given count (still clamped), as if load had changed.

use serde_json::{Value, json};

/// Annotation on an HPA: the replica count the simulated metrics ask for.
pub(crate) const DESIRED_REPLICAS_ANNOTATION: &str = "sim.flotilla.io/desired-replicas";

/// What an HPA points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScaleTarget {
    /// `apiVersion` of the target, e.g. `apps/v1`.
    pub api_version: String,
    /// `kind` of the target, e.g. `Deployment`.
    pub kind: String,
    /// Target name (in the HPA's namespace).
    pub name: String,
}

/// The HPA's `spec.scaleTargetRef`.
pub(crate) fn scale_target(hpa: &Value) -> Option<ScaleTarget> {
    let r = hpa.pointer("/spec/scaleTargetRef")?;
    Some(ScaleTarget {
        api_version: r["apiVersion"].as_str().unwrap_or("apps/v1").to_string(),
        kind: r["kind"].as_str()?.to_string(),
        name: r["name"].as_str()?.to_string(),
    })
}

/// `(minReplicas, maxReplicas)` with Kubernetes' defaults.
pub(crate) fn bounds(hpa: &Value) -> (i64, i64) {
    let min = hpa
        .pointer("/spec/minReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(1);
    let max = hpa
        .pointer("/spec/maxReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(min)
        .max(min);
    (min, max)
}

/// The replica count the HPA settles on given the target's current `spec.replicas`.
pub(crate) fn desired_replicas(hpa: &Value, current: i64) -> i64 {
    let (min, max) = bounds(hpa);
    let wanted = hpa
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(DESIRED_REPLICAS_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(current);
    wanted.clamp(min, max)
}

/// The HPA status after a sync at `now`: `current` replicas observed, `desired` chosen,
/// `scaled` when this sync changed the target.
pub(crate) fn status(hpa: &Value, current: i64, desired: i64, scaled: bool, now: &str) -> Value {
    let scaled_at = scaled.then_some(now);
    let (min, max) = bounds(hpa);
    let previous = hpa.pointer("/status").cloned().unwrap_or(json!({}));
    let last_scale = scaled_at
        .map(|t| Value::String(t.to_string()))
        .or_else(|| previous.get("lastScaleTime").cloned());
    let limited = current < min || current > max || desired == min || desired == max;
    let mut s = json!({
        "currentReplicas": current,
        "desiredReplicas": desired,
        "conditions": [
            {"type": "AbleToScale", "status": "True", "reason": if scaled_at.is_some() { "SucceededRescale" } else { "ReadyForNewScale" },
             "message": "the HPA controller was able to update the target scale"},
            {"type": "ScalingLimited", "status": if limited { "True" } else { "False" },
             "reason": if limited { "TooFewReplicas" } else { "DesiredWithinRange" },
             "message": if limited { "the desired replica count is at the limit of the allowed range" } else { "the desired count is within the acceptable range" }},
        ],
    });
    if let Some(generation) = hpa.pointer("/metadata/generation") {
        s["observedGeneration"] = generation.clone();
    }
    if let Some(t) = last_scale {
        s["lastScaleTime"] = t;
    }
    // Keep lastTransitionTime stable per condition status.
    if let Some(conds) = s["conditions"].as_array_mut() {
        for c in conds {
            let prev = previous
                .get("conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|p| p["type"] == c["type"]));
            c["lastTransitionTime"] = match prev {
                Some(p) if p["status"] == c["status"] => p["lastTransitionTime"].clone(),
                _ => Value::String(now.to_string()),
            };
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_to_bounds_and_follows_the_annotation() {
        let hpa = json!({"spec": {"minReplicas": 5, "maxReplicas": 10, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}});
        assert_eq!(desired_replicas(&hpa, 3), 5);
        assert_eq!(desired_replicas(&hpa, 7), 7);
        assert_eq!(desired_replicas(&hpa, 20), 10);
        let mut annotated = hpa.clone();
        annotated["metadata"] = json!({"annotations": {DESIRED_REPLICAS_ANNOTATION: "8"}});
        assert_eq!(desired_replicas(&annotated, 5), 8);
        annotated["metadata"]["annotations"][DESIRED_REPLICAS_ANNOTATION] = json!("100");
        assert_eq!(desired_replicas(&annotated, 5), 10);
        assert_eq!(scale_target(&hpa).unwrap().name, "web");
    }

    #[test]
    fn status_reports_current_and_desired() {
        let hpa = json!({"metadata": {"generation": 2}, "spec": {"maxReplicas": 4}});
        let s = status(&hpa, 1, 1, false, "t0");
        assert_eq!(s["currentReplicas"], 1);
        assert_eq!(s["observedGeneration"], 2);
        let scaled = status(&hpa, 6, 4, true, "t1");
        assert_eq!(scaled["lastScaleTime"], "t1");
        assert_eq!(scaled["desiredReplicas"], 4);
    }
}
