//! What the gateway writes back to the hub: each served Ingress's
//! `status.loadBalancer.ingress` lists the gateway's address, and a malformed weights
//! annotation becomes a Warning Event on the Ingress (once per value).

use std::collections::HashSet;
use std::net::SocketAddr;

use k8s_openapi::api::core::v1::{Event, ObjectReference};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::routes::{Served, WEIGHTS_ANNOTATION};

/// Event reason for a weights annotation that cannot be used.
pub(crate) const INVALID_WEIGHTS_REASON: &str = "InvalidClusterWeights";
/// The component named in Events and field managers.
pub(crate) const COMPONENT: &str = "flotilla-gateway";

/// The `status.loadBalancer` the gateway reports.
pub(crate) fn load_balancer_status(address: SocketAddr) -> Value {
    let ip = if address.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        address.ip().to_string()
    };
    json!({"ingress": [{"ip": ip, "ports": [{"port": address.port(), "protocol": "TCP"}]}]})
}

/// Writes the address into every served Ingress whose status differs, and reports new
/// weights errors as Events.
pub(crate) async fn sync(
    hub_client: &kube::Client,
    ingresses: &[std::sync::Arc<Ingress>],
    served: &[Served],
    address: SocketAddr,
    reported: &mut HashSet<String>,
) {
    let wanted = load_balancer_status(address);
    for s in served {
        let Some(ingress) = ingresses.iter().find(|i| {
            i.metadata.namespace.as_deref() == Some(s.namespace.as_str())
                && i.metadata.name.as_deref() == Some(s.name.as_str())
        }) else {
            continue;
        };
        let current = ingress
            .status
            .as_ref()
            .and_then(|st| serde_json::to_value(&st.load_balancer).ok())
            .unwrap_or(Value::Null);
        if current != wanted {
            let api: Api<Ingress> = Api::namespaced(hub_client.clone(), &s.namespace);
            let patch = json!({"status": {"loadBalancer": wanted}});
            if let Err(e) = api
                .patch_status(&s.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::warn!(ingress = %s.name, error = %e, "writing Ingress status failed");
            }
        }
        if let Some((value, error)) = &s.weights_error {
            let key = format!("{}/{}={value}", s.namespace, s.name);
            if reported.insert(key) {
                report_weights_error(hub_client, ingress, value, &error.to_string()).await;
            }
        }
    }
}

async fn report_weights_error(
    hub_client: &kube::Client,
    ingress: &Ingress,
    value: &str,
    why: &str,
) {
    let namespace = ingress.metadata.namespace.clone().unwrap_or_default();
    let name = ingress.metadata.name.clone().unwrap_or_default();
    let now = k8s_openapi::jiff::Timestamp::now();
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("networking.k8s.io/v1".into()),
            kind: Some("Ingress".into()),
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            uid: ingress.metadata.uid.clone(),
            resource_version: ingress.metadata.resource_version.clone(),
            ..Default::default()
        },
        reason: Some(INVALID_WEIGHTS_REASON.into()),
        message: Some(format!(
            "annotation {WEIGHTS_ANNOTATION}={value:?} is ignored ({why}); requests are spread equally over the available clusters"
        )),
        type_: Some("Warning".into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: Some(COMPONENT.into()),
        action: Some("Route".into()),
        source: Some(k8s_openapi::api::core::v1::EventSource {
            component: Some(COMPONENT.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(hub_client.clone(), &namespace);
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        tracing::warn!(ingress = %name, error = %e, "recording the weights Event failed");
    }
}
