//! What the endpoints and endpoint-slice controllers publish for a Service with a selector,
//! as pure functions: its Pods' addresses (ready or not) with the Service's ports resolved
//! against the Pods' container ports, as `discovery.k8s.io/v1` EndpointSlices (at most 100
//! endpoints each) and a `v1` Endpoints object.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::slim::{SimPod, SimService, labels};

/// Label: the Service an EndpointSlice belongs to.
pub(crate) const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label: who manages an EndpointSlice.
pub(crate) const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// The endpoint-slice controller's name, as kube-controller-manager spells it.
pub(crate) const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// Endpoints per slice, as kube-controller-manager's default.
pub(crate) const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// Whether the Service's selector selects the Pod.
pub(crate) fn selects(service: &SimService, pod: &SimPod) -> bool {
    let Some(selector) = service.spec.selector.as_ref().filter(|s| !s.is_empty()) else {
        return false;
    };
    service.metadata.namespace == pod.metadata.namespace
        && selector
            .iter()
            .all(|(k, v)| labels(&pod.metadata).get(k) == Some(v))
}

/// The Pod port a Service port's `targetPort` means (a number, or a container port's name).
fn target_port(target: Option<&Value>, port: i64, pod: &SimPod) -> Option<i64> {
    match target {
        None => Some(port),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(name)) => match name.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => pod
                .spec
                .containers
                .iter()
                .flat_map(|c| &c.ports)
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port),
        },
        _ => None,
    }
}

/// The Service's ports as a Pod serves them: `[{name, port, protocol}]`.
fn ports_for(service: &SimService, pod: &SimPod) -> Vec<Value> {
    service
        .spec
        .ports
        .iter()
        .filter_map(|p| {
            let port = target_port(p.target_port.as_ref(), p.port, pod)?;
            Some(json!({
                "name": p.name.clone().unwrap_or_default(),
                "port": port,
                "protocol": p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            }))
        })
        .collect()
}

/// One endpoint of the Service: a Pod with an address.
struct Endpoint<'a> {
    pod: &'a SimPod,
    ip: &'a str,
    ready: bool,
    ports: Vec<Value>,
}

fn endpoints<'a>(service: &SimService, pods: &[&'a SimPod]) -> Vec<Endpoint<'a>> {
    let publish_not_ready = service.spec.publish_not_ready_addresses == Some(true);
    let mut out: Vec<Endpoint<'a>> = pods
        .iter()
        .filter(|p| selects(service, p) && p.metadata.deletion_timestamp.is_none())
        .filter(|p| !matches!(p.status.phase.as_deref(), Some("Succeeded" | "Failed")))
        .filter_map(|p| {
            let ip = p.status.pod_ip.as_deref().filter(|ip| !ip.is_empty())?;
            Some(Endpoint {
                pod: p,
                ip,
                ready: p.is_ready() || publish_not_ready,
                ports: ports_for(service, p),
            })
        })
        .collect();
    out.sort_by(|a, b| a.pod.metadata.name.cmp(&b.pod.metadata.name));
    out
}

fn target_ref(pod: &SimPod) -> Value {
    json!({
        "kind": "Pod",
        "namespace": pod.metadata.namespace,
        "name": pod.metadata.name,
        "uid": pod.metadata.uid,
    })
}

/// The `endpoints` and `ports` of each EndpointSlice the Service should have (one slice per
/// distinct port list, split at 100 endpoints). A Service whose Pods are all gone keeps one
/// empty slice with its declared ports.
pub(crate) fn slices(service: &SimService, pods: &[&SimPod]) -> Vec<(Value, Value)> {
    let mut by_ports: BTreeMap<String, (Value, Vec<Value>)> = BTreeMap::new();
    for e in endpoints(service, pods) {
        let ports = Value::Array(e.ports.clone());
        let entry = by_ports
            .entry(ports.to_string())
            .or_insert_with(|| (ports, Vec::new()));
        entry.1.push(json!({
            "addresses": [e.ip],
            "conditions": {"ready": e.ready, "serving": e.ready, "terminating": false},
            "nodeName": e.pod.spec.node_name,
            "targetRef": target_ref(e.pod),
        }));
    }
    if by_ports.is_empty() {
        let declared: Vec<Value> = service
            .spec
            .ports
            .iter()
            .map(|p| {
                json!({
                    "name": p.name.clone().unwrap_or_default(),
                    "port": match p.target_port.as_ref() {
                        Some(Value::Number(n)) => n.as_i64().unwrap_or(p.port),
                        _ => p.port,
                    },
                    "protocol": p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                })
            })
            .collect();
        return vec![(json!([]), Value::Array(declared))];
    }
    by_ports
        .into_values()
        .flat_map(|(ports, eps)| {
            eps.chunks(MAX_ENDPOINTS_PER_SLICE)
                .map(|c| (Value::Array(c.to_vec()), ports.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A new EndpointSlice of the Service (named by the server from `<service>-`).
pub(crate) fn new_slice(service: &SimService, endpoints: Value, ports: Value) -> Value {
    let name = service.metadata.name.clone().unwrap_or_default();
    let mut labels: Map<String, Value> = labels(&service.metadata)
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    labels.insert(SERVICE_NAME_LABEL.into(), json!(name));
    labels.insert(MANAGED_BY_LABEL.into(), json!(MANAGED_BY));
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "generateName": format!("{name}-"),
            "namespace": service.metadata.namespace,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Service", "name": name,
                "uid": service.metadata.uid, "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    })
}

/// The `v1` Endpoints `subsets` of the Service (omitted when it has no addresses).
pub(crate) fn subsets(service: &SimService, pods: &[&SimPod]) -> Value {
    let mut by_ports: BTreeMap<String, (Value, Vec<Value>, Vec<Value>)> = BTreeMap::new();
    for e in endpoints(service, pods) {
        let ports = Value::Array(e.ports.clone());
        let entry = by_ports
            .entry(ports.to_string())
            .or_insert_with(|| (ports, Vec::new(), Vec::new()));
        let address = json!({
            "ip": e.ip, "nodeName": e.pod.spec.node_name, "targetRef": target_ref(e.pod),
        });
        if e.ready {
            entry.1.push(address);
        } else {
            entry.2.push(address);
        }
    }
    let subsets: Vec<Value> = by_ports
        .into_values()
        .map(|(ports, ready, not_ready)| {
            let mut s = Map::new();
            if !ready.is_empty() {
                s.insert("addresses".into(), Value::Array(ready));
            }
            if !not_ready.is_empty() {
                s.insert("notReadyAddresses".into(), Value::Array(not_ready));
            }
            s.insert("ports".into(), ports);
            Value::Object(s)
        })
        .collect();
    Value::Array(subsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(ports: Value) -> SimService {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "s1",
                         "labels": {"app": "web"}},
            "spec": {"selector": {"app": "web"}, "ports": ports},
        }))
        .unwrap()
    }

    fn pod(name: &str, ip: &str, ready: bool, app: &str) -> SimPod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"),
                         "labels": {"app": app}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx",
                     "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        }))
        .unwrap()
    }

    #[test]
    fn slices_list_selected_pods_with_resolved_ports() {
        let svc = service(json!([{"name": "http", "port": 80, "targetPort": "http"}]));
        let a = pod("web-a", "10.128.0.2", true, "web");
        let b = pod("web-b", "10.128.0.3", false, "web");
        let other = pod("db", "10.128.0.4", true, "db");
        let out = slices(&svc, &[&b, &other, &a]);
        assert_eq!(out.len(), 1);
        let (eps, ports) = &out[0];
        assert_eq!(
            ports,
            &json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        assert_eq!(eps.as_array().unwrap().len(), 2);
        assert_eq!(eps[0]["addresses"][0], "10.128.0.2");
        assert_eq!(eps[0]["conditions"]["ready"], true);
        assert_eq!(eps[1]["conditions"]["ready"], false);
        assert_eq!(eps[0]["targetRef"]["name"], "web-a");
        let slice = new_slice(&svc, eps.clone(), ports.clone());
        assert_eq!(slice["metadata"]["labels"][SERVICE_NAME_LABEL], "web");
        assert_eq!(slice["metadata"]["labels"][MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(slice["metadata"]["ownerReferences"][0]["uid"], "s1");
        assert_eq!(slice["addressType"], "IPv4");
        let sub = subsets(&svc, &[&a, &b]);
        assert_eq!(sub[0]["addresses"][0]["ip"], "10.128.0.2");
        assert_eq!(sub[0]["notReadyAddresses"][0]["ip"], "10.128.0.3");
        assert_eq!(sub[0]["ports"][0]["port"], 8080);
    }

    #[test]
    fn no_pods_leave_one_empty_slice_and_no_subsets() {
        let svc = service(json!([{"port": 80, "targetPort": 8080}]));
        let out = slices(&svc, &[]);
        assert_eq!(
            out,
            vec![(
                json!([]),
                json!([{"name": "", "port": 8080, "protocol": "TCP"}])
            )]
        );
        assert_eq!(subsets(&svc, &[]), json!([]));
    }

    #[test]
    fn big_services_split_at_a_hundred() {
        let svc = service(json!([{"port": 80}]));
        let pods: Vec<SimPod> = (0..150)
            .map(|i| {
                pod(
                    &format!("p{i:03}"),
                    &format!("10.128.1.{}", i % 250),
                    true,
                    "web",
                )
            })
            .collect();
        let refs: Vec<&SimPod> = pods.iter().collect();
        let out = slices(&svc, &refs);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0.as_array().unwrap().len(), 100);
        assert_eq!(out[1].0.as_array().unwrap().len(), 50);
    }
}
