//! Health of live objects, as Argo CD words it: `Healthy`, `Progressing`, `Degraded`,
//! `Missing`, `Unknown`; an Application's health is the worst of its objects'.

use serde_json::Value;

/// `Healthy`.
pub(crate) const HEALTHY: &str = "Healthy";
/// `Progressing`.
pub(crate) const PROGRESSING: &str = "Progressing";
/// `Degraded`.
pub(crate) const DEGRADED: &str = "Degraded";
/// `Missing`.
pub(crate) const MISSING: &str = "Missing";

/// A verdict and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Health {
    /// One of the constants above.
    pub status: &'static str,
    /// Why, when not healthy.
    pub message: Option<String>,
}

impl Health {
    fn healthy() -> Health {
        Health {
            status: HEALTHY,
            message: None,
        }
    }
    fn progressing(message: String) -> Health {
        Health {
            status: PROGRESSING,
            message: Some(message),
        }
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn workload(live: &Value) -> Health {
    let desired = live["spec"]["replicas"].as_i64().unwrap_or(1);
    let status = &live["status"];
    let generation = int(&live["metadata"]["generation"]);
    if int(&status["observedGeneration"]) < generation {
        return Health::progressing("waiting for the rollout to be observed".into());
    }
    let updated = status.get("updatedReplicas").map(int).unwrap_or(desired);
    let available = int(&status["availableReplicas"]);
    if updated < desired {
        return Health::progressing(format!(
            "{updated} of {desired} updated replicas are available"
        ));
    }
    if available < desired {
        return Health::progressing(format!("{available} of {desired} replicas are available"));
    }
    Health::healthy()
}

fn oam_application(live: &Value) -> Health {
    match live["status"]["status"].as_str().unwrap_or_default() {
        "running" => Health::healthy(),
        phase @ ("workflowFailed" | "workflowTerminated") => Health {
            status: DEGRADED,
            message: Some(format!("application phase {phase}")),
        },
        "" => Health::progressing("not rendered yet".into()),
        phase => Health::progressing(format!("application phase {phase}")),
    }
}

fn argo_application(live: &Value) -> Health {
    let status = match live["status"]["health"]["status"].as_str() {
        Some(HEALTHY) => HEALTHY,
        Some(DEGRADED) => DEGRADED,
        Some(MISSING) => MISSING,
        _ => PROGRESSING,
    };
    Health {
        status,
        message: None,
    }
}

/// The health of one live object (`None`: it does not exist).
pub(crate) fn of(live: Option<&Value>) -> Health {
    let Some(live) = live else {
        return Health {
            status: MISSING,
            message: None,
        };
    };
    let api_version = live["apiVersion"].as_str().unwrap_or_default();
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    match (group, live["kind"].as_str().unwrap_or_default()) {
        ("apps", "Deployment" | "StatefulSet" | "ReplicaSet") => workload(live),
        ("core.oam.dev", "Application") => oam_application(live),
        ("argoproj.io", "Application") => argo_application(live),
        _ => Health::healthy(),
    }
}

fn rank(status: &str) -> u8 {
    match status {
        HEALTHY => 0,
        PROGRESSING => 1,
        MISSING => 2,
        DEGRADED => 3,
        _ => 4,
    }
}

/// The worst of several verdicts (`Healthy` when there are none).
pub(crate) fn worst<'a>(verdicts: impl IntoIterator<Item = &'a Health>) -> Health {
    verdicts
        .into_iter()
        .max_by_key(|h| rank(h.status))
        .cloned()
        .unwrap_or_else(Health::healthy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployments_are_healthy_when_available() {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"generation": 2}, "spec": {"replicas": 3},
            "status": {"observedGeneration": 2, "updatedReplicas": 3, "availableReplicas": 1}});
        assert_eq!(of(Some(&d)).status, PROGRESSING);
        d["status"]["availableReplicas"] = json!(3);
        assert_eq!(of(Some(&d)).status, HEALTHY);
        d["metadata"]["generation"] = json!(3);
        assert_eq!(of(Some(&d)).status, PROGRESSING);
        assert_eq!(of(None).status, MISSING);
    }

    #[test]
    fn the_worst_wins() {
        let list = [of(Some(&json!({"kind": "ConfigMap"}))), of(None)];
        assert_eq!(worst(&list).status, MISSING);
        let app = json!({"apiVersion": "core.oam.dev/v1beta1", "kind": "Application",
            "status": {"status": "workflowFailed"}});
        assert_eq!(worst(&[of(None), of(Some(&app))]).status, DEGRADED);
        assert_eq!(worst(&[]).status, HEALTHY);
    }
}
