//! Health: what the dispatched objects say about a component and its traits. Pure.

use flotilla_apis::{ApplicationComponentStatus, ApplicationTraitStatus};
use serde_json::Value;

use super::render::RenderedComponent;

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Health of a workload object as read back from its cluster: `(healthy, message)`.
pub fn workload_health(object: &Value) -> (bool, String) {
    let status = &object["status"];
    match object["kind"].as_str() {
        Some("Deployment" | "StatefulSet") => {
            let replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
            let ready = int(&status["readyReplicas"]);
            let updated = int(&status["updatedReplicas"]);
            let observed = int(&status["observedGeneration"]);
            let generation = int(&object["metadata"]["generation"]);
            let healthy = int(&status["replicas"]) == replicas
                && ready == replicas
                && updated == replicas
                && observed >= generation;
            (healthy, format!("Ready:{ready}/{replicas}"))
        }
        Some("DaemonSet") => {
            let desired = int(&status["desiredNumberScheduled"]);
            let ready = int(&status["numberReady"]);
            (ready == desired, format!("Ready:{ready}/{desired}"))
        }
        Some("Job") => {
            let succeeded = int(&status["succeeded"]);
            (succeeded > 0, format!("Succeeded:{succeeded}"))
        }
        Some("PersistentVolumeClaim") => {
            let phase = status["phase"].as_str().unwrap_or("Pending");
            (phase == "Bound", phase.to_string())
        }
        // Everything else is healthy once it exists.
        _ => (true, String::new()),
    }
}

/// The message of the gateway trait: the URL and the Ingress's load-balancer address.
pub(crate) fn gateway_message(ingress: &Value) -> String {
    let domain = ingress["spec"]["rules"][0]["host"].as_str().unwrap_or("");
    let lb = &ingress["status"]["loadBalancer"]["ingress"][0];
    let address = lb["ip"].as_str().or_else(|| lb["hostname"].as_str());
    match address {
        Some(ip) => format!("Visiting URL: {domain}, IP: {ip}"),
        None => format!("Visiting URL: {domain}, IP: <pending>"),
    }
}

/// What health takes from one object as its cluster holds it: read back by a pass, or kept
/// from the drift watch's last event of it (a few bytes instead of the object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Observed {
    /// [`workload_health`]'s verdict.
    pub(crate) healthy: bool,
    /// [`workload_health`]'s message.
    pub(crate) message: String,
    /// An Ingress's [`gateway_message`].
    pub(crate) gateway: Option<String>,
}

impl Observed {
    /// What health takes from `live`.
    pub(crate) fn of(live: &Value) -> Observed {
        let (healthy, message) = workload_health(live);
        let gateway = (live["kind"] == "Ingress").then(|| gateway_message(live));
        Observed {
            healthy,
            message,
            gateway,
        }
    }
}

/// The health of one component in one cluster, from its objects as observed (`None`:
/// absent). `live` is in the same order as `rendered.objects`.
pub(crate) fn component_status(
    rendered: &RenderedComponent,
    cluster: &str,
    namespace: &str,
    live: &[Option<Observed>],
) -> ApplicationComponentStatus {
    let mut healthy = true;
    let mut message = String::new();
    let mut saw_workload = false;
    for (object, live) in rendered.objects.iter().zip(live) {
        if object.trait_type.is_some() {
            continue;
        }
        match live {
            None => {
                healthy = false;
                if message.is_empty() {
                    message = format!(
                        "{} {} not found",
                        object.object["kind"].as_str().unwrap_or_default(),
                        object.object["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default()
                    );
                }
            }
            Some(live) => {
                healthy &= live.healthy;
                if !saw_workload && !live.message.is_empty() {
                    message = live.message.clone();
                    saw_workload = true;
                }
            }
        }
    }
    let traits = rendered
        .traits
        .iter()
        .map(|t| {
            let produced: Vec<(&Value, &Option<Observed>)> = rendered
                .objects
                .iter()
                .zip(live)
                .filter(|(o, _)| o.trait_type.as_deref() == Some(t.trait_type.as_str()))
                .map(|(o, l)| (&o.object, l))
                .collect();
            let all_exist = produced.iter().all(|(_, l)| l.is_some());
            let message = if t.trait_type == "gateway" {
                produced
                    .iter()
                    .find(|(o, _)| o["kind"] == "Ingress")
                    .and_then(|(_, l)| l.as_ref()?.gateway.clone())
                    .unwrap_or_default()
            } else {
                String::new()
            };
            ApplicationTraitStatus {
                trait_type: t.trait_type.clone(),
                healthy: all_exist,
                message,
            }
        })
        .collect::<Vec<_>>();
    let traits_healthy = traits.iter().all(|t| t.healthy);
    ApplicationComponentStatus {
        name: rendered.name.clone(),
        namespace: namespace.to_string(),
        cluster: cluster.to_string(),
        workload_type: rendered.component_type.clone(),
        healthy: healthy && traits_healthy,
        message,
        traits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::application::render::render_component;
    use serde_json::json;

    fn deployment(
        replicas: i64,
        ready: i64,
        updated: i64,
        observed: i64,
        generation: i64,
    ) -> Value {
        json!({"kind": "Deployment", "metadata": {"generation": generation},
               "spec": {"replicas": replicas},
               "status": {"replicas": replicas, "readyReplicas": ready,
                          "updatedReplicas": updated, "observedGeneration": observed}})
    }

    #[test]
    fn deployment_health_needs_every_replica_ready_updated_and_observed() {
        assert_eq!(
            workload_health(&deployment(3, 3, 3, 2, 2)),
            (true, "Ready:3/3".into())
        );
        assert_eq!(
            workload_health(&deployment(3, 2, 3, 2, 2)),
            (false, "Ready:2/3".into())
        );
        assert!(!workload_health(&deployment(3, 3, 2, 2, 2)).0);
        assert!(!workload_health(&deployment(3, 3, 3, 1, 2)).0);
        let fresh = json!({"kind": "Deployment", "metadata": {"generation": 1},
                           "spec": {"replicas": 1}});
        assert_eq!(workload_health(&fresh), (false, "Ready:0/1".into()));
    }

    #[test]
    fn gateway_trait_is_healthy_when_the_ingress_exists() {
        let component = serde_json::from_value(json!({
            "name": "web", "type": "webservice", "properties": {"image": "i", "port": 8000},
            "traits": [{"type": "scaler", "properties": {"replicas": 3}},
                       {"type": "gateway", "properties": {"domain": "testsvc-mc.example.com",
                                                          "http": {"/": 8000}}}]}))
        .unwrap();
        let rendered = render_component(&component, "app", "default", &[]).unwrap();
        let mut ingress = rendered.objects[2].object.clone();
        ingress["status"] = json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.12"}]}});
        let live = [
            Some(deployment(3, 3, 3, 1, 1)),
            Some(rendered.objects[1].object.clone()),
            Some(ingress),
        ]
        .map(|l| l.as_ref().map(Observed::of));
        let status = component_status(&rendered, "beijing-1", "default", &live);
        assert!(status.healthy);
        assert_eq!(status.message, "Ready:3/3");
        assert_eq!(status.traits[0].trait_type, "scaler");
        assert!(status.traits[0].healthy);
        assert_eq!(
            status.traits[1].message,
            "Visiting URL: testsvc-mc.example.com, IP: 10.0.0.12"
        );
        let missing = [Some(Observed::of(&deployment(3, 3, 3, 1, 1))), None, None];
        let status = component_status(&rendered, "beijing-1", "default", &missing);
        assert!(!status.healthy);
        assert!(!status.traits[1].healthy);
    }
}
