//! Scaling and disruption: `autoscaling` HorizontalPodAutoscaler (v2, also served as v1) and
//! `policy/v1` PodDisruptionBudget.

use flotilla_core::status::StatusCause;
use serde_json::{Value, json};

use super::print::{age, arr, i, name, s};
use super::{Aggregate, PrintColumn, Strategy, get};
use crate::validation::invalid;
use k8s_openapi::api::{autoscaling::v1 as as1, autoscaling::v2 as as2, policy::v1 as policy};

/// HorizontalPodAutoscaler and PodDisruptionBudget.
pub(crate) const STRATEGIES: &[Strategy] = &[
    Strategy::typed::<as2::HorizontalPodAutoscaler>()
        .also::<as1::HorizontalPodAutoscaler>()
        .short_names(&["hpa"])
        .in_all()
        .status()
        .aggregate(Aggregate::ViewEdit)
        .validate(validate_hpa)
        .columns(HPA_COLUMNS)
        .generation(),
    Strategy::typed::<policy::PodDisruptionBudget>()
        .short_names(&["pdb"])
        .status()
        .aggregate(Aggregate::ViewEdit)
        .columns(&[
            PrintColumn::new("Name", name),
            PrintColumn::new("Min Available", |o| {
                json!(int_or_string(o.pointer("/spec/minAvailable")))
            }),
            PrintColumn::new("Max Unavailable", |o| {
                json!(int_or_string(o.pointer("/spec/maxUnavailable")))
            }),
            PrintColumn::new("Allowed Disruptions", |o| {
                json!(i(o, "/status/disruptionsAllowed"))
            })
            .typed("integer"),
            PrintColumn::new("Age", age),
        ])
        .generation(),
];

fn validate_hpa(obj: &Value, _old: Option<&Value>, causes: &mut Vec<StatusCause>) {
    let max = get(obj, &["spec", "maxReplicas"])
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if max < 1 {
        causes.push(invalid(
            "spec.maxReplicas",
            get(obj, &["spec", "maxReplicas"]).unwrap_or(&Value::Null),
            "must be greater than or equal to 1",
        ));
    }
}

const HPA_COLUMNS: &[PrintColumn] = &[
    PrintColumn::new("Name", name),
    PrintColumn::new("Reference", |o| {
        json!(format!(
            "{}/{}",
            s(o, "/spec/scaleTargetRef/kind"),
            s(o, "/spec/scaleTargetRef/name")
        ))
    }),
    PrintColumn::new("Targets", |o| json!(hpa_targets(o))),
    PrintColumn::new("MinPods", |o| {
        json!(
            o.pointer("/spec/minReplicas")
                .and_then(Value::as_i64)
                .map_or("<unset>".to_string(), |v| v.to_string())
        )
    }),
    PrintColumn::new("MaxPods", |o| json!(i(o, "/spec/maxReplicas"))),
    PrintColumn::new("Replicas", |o| json!(i(o, "/status/currentReplicas"))),
    PrintColumn::new("Age", age),
];

fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "N/A".into(),
    }
}

fn hpa_targets(obj: &Value) -> String {
    let metrics = arr(obj, "/spec/metrics");
    if metrics.is_empty() {
        return "<none>".into();
    }
    let current = arr(obj, "/status/currentMetrics");
    metrics
        .iter()
        .enumerate()
        .map(|(idx, m)| {
            let name = s(m, "/resource/name");
            let target = m
                .pointer("/resource/target/averageUtilization")
                .map(|v| format!("{v}%"))
                .or_else(|| {
                    m.pointer("/resource/target/averageValue")
                        .map(|v| v.as_str().unwrap_or("").to_string())
                })
                .unwrap_or_else(|| "<unknown>".into());
            let cur = current
                .get(idx)
                .and_then(|c| {
                    c.pointer("/resource/current/averageUtilization")
                        .map(|v| format!("{v}%"))
                })
                .unwrap_or_else(|| "<unknown>".into());
            if name.is_empty() {
                format!("{cur}/{target}")
            } else {
                format!("{name}: {cur}/{target}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
