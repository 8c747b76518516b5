//! Services and networking: Service, Endpoints, EndpointSlice (core and `discovery.k8s.io`),
//! Ingress, IngressClass, NetworkPolicy (`networking.k8s.io`).

use flotilla_core::status::StatusCause;
use serde_json::{Value, json};

use super::print::{age, arr, first_three, i, lb_ingress, map_text, name, s, selector_text};
use super::{Aggregate, NameRule, PrintColumn, Strategy, get, obj_at, set_default};
use crate::validation::{invalid, required};
use flotilla_core::kinds::PatchSchema;
use k8s_openapi::api::{core::v1 as core, discovery::v1 as discovery, networking::v1 as net};

/// Service, Endpoints, EndpointSlice, Ingress, IngressClass, NetworkPolicy.
pub(crate) const STRATEGIES: &[Strategy] = &[
    Strategy::typed::<core::Service>()
        .short_names(&["svc"])
        .in_all()
        .status()
        .patch(Some(PatchSchema::Service))
        .aggregate(Aggregate::ViewEdit)
        .names(NameRule::Dns1035)
        .defaults(default_service)
        .on_create(|o, _| {
            o["status"] = json!({"loadBalancer": {}});
            Ok(())
        })
        .validate(validate_service)
        .columns(SERVICE_COLUMNS),
    Strategy::described::<core::Endpoints>()
        .short_names(&["ep"])
        .aggregate(Aggregate::View)
        .columns(&[
            PrintColumn::new("Name", name),
            PrintColumn::new("Endpoints", |o| json!(endpoints_text(o))),
            PrintColumn::new("Age", age),
        ]),
    Strategy::described::<discovery::EndpointSlice>()
        .aggregate(Aggregate::View)
        .columns(&[
            PrintColumn::new("Name", name),
            PrintColumn::new("AddressType", |o| json!(s(o, "/addressType"))),
            PrintColumn::new("Ports", |o| json!(slice_ports(o))),
            PrintColumn::new("Endpoints", |o| json!(slice_endpoints(o))),
            PrintColumn::new("Age", age),
        ]),
    Strategy::typed::<net::Ingress>()
        .short_names(&["ing"])
        .status()
        .aggregate(Aggregate::ViewEdit)
        .columns(INGRESS_COLUMNS)
        .generation(),
    Strategy::typed::<net::IngressClass>()
        .columns(&[
            PrintColumn::new("Name", name),
            PrintColumn::new("Controller", |o| json!(s(o, "/spec/controller"))),
            PrintColumn::new("Parameters", |o| {
                json!(match o.pointer("/spec/parameters") {
                    Some(p) => format!("{}/{}", s(p, "/kind"), s(p, "/name")),
                    None => "<none>".into(),
                })
            }),
            PrintColumn::new("Age", age),
        ])
        .generation(),
    Strategy::typed::<net::NetworkPolicy>()
        .short_names(&["netpol"])
        .aggregate(Aggregate::ViewEdit)
        .columns(&[
            PrintColumn::new("Name", name),
            PrintColumn::new("Pod-Selector", |o| {
                json!(selector_text(o.pointer("/spec/podSelector")))
            }),
            PrintColumn::new("Age", age),
        ])
        .generation(),
];

fn default_service(obj: &mut Value) {
    if let Some(spec) = obj_at(obj, &["spec"]) {
        set_default(spec, "type", json!("ClusterIP"));
        set_default(spec, "sessionAffinity", json!("None"));
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                set_default(p, "protocol", json!("TCP"));
                if let Some(port) = p.get("port").cloned() {
                    set_default(p, "targetPort", port);
                }
            }
        }
    } else {
        obj["spec"] = json!({"type": "ClusterIP", "sessionAffinity": "None"});
    }
}

fn validate_service(obj: &Value, _old: Option<&Value>, causes: &mut Vec<StatusCause>) {
    let ty = get(obj, &["spec", "type"])
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let ports = get(obj, &["spec", "ports"]).and_then(Value::as_array);
    let headless = get(obj, &["spec", "clusterIP"]).and_then(Value::as_str) == Some("None");
    if ty != "ExternalName" && !headless && ports.is_none_or(Vec::is_empty) {
        causes.push(required("spec.ports"));
    }
    for (i, p) in ports.into_iter().flatten().enumerate() {
        let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&port) {
            causes.push(invalid(
                &format!("spec.ports[{i}].port"),
                p.get("port").unwrap_or(&Value::Null),
                "must be between 1 and 65535, inclusive",
            ));
        }
    }
}

const SERVICE_COLUMNS: &[PrintColumn] = &[
    PrintColumn::new("Name", name),
    PrintColumn::new("Type", |o| json!(s(o, "/spec/type"))),
    PrintColumn::new("Cluster-IP", |o| {
        json!(match s(o, "/spec/clusterIP") {
            "" => "<none>",
            x => x,
        })
    }),
    PrintColumn::new("External-IP", |o| json!(service_external_ip(o))),
    PrintColumn::new("Port(s)", |o| json!(service_ports(o))),
    PrintColumn::new("Age", age),
    PrintColumn::new("Selector", |o| json!(map_text(o.pointer("/spec/selector")))).wide(),
];

const INGRESS_COLUMNS: &[PrintColumn] = &[
    PrintColumn::new("Name", name),
    PrintColumn::new("Class", |o| {
        json!(match s(o, "/spec/ingressClassName") {
            "" => "<none>",
            x => x,
        })
    }),
    PrintColumn::new("Hosts", |o| json!(ingress_hosts(o))),
    PrintColumn::new("Address", |o| {
        json!(lb_ingress(o, "/status/loadBalancer/ingress").join(","))
    }),
    PrintColumn::new("Ports", |o| {
        json!(if arr(o, "/spec/tls").is_empty() {
            "80"
        } else {
            "80, 443"
        })
    }),
    PrintColumn::new("Age", age),
];

fn service_ports(obj: &Value) -> String {
    let ports = arr(obj, "/spec/ports");
    if ports.is_empty() {
        return "<none>".into();
    }
    ports
        .iter()
        .map(|p| {
            let port = i(p, "/port");
            let proto = match s(p, "/protocol") {
                "" => "TCP",
                x => x,
            };
            let node = i(p, "/nodePort");
            if node > 0 {
                format!("{port}:{node}/{proto}")
            } else {
                format!("{port}/{proto}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `ip:port` for every address and port of an Endpoints object.
fn endpoints_text(obj: &Value) -> String {
    let mut items = Vec::new();
    for subset in arr(obj, "/subsets") {
        for address in arr(subset, "/addresses") {
            for port in arr(subset, "/ports") {
                items.push(format!("{}:{}", s(address, "/ip"), i(port, "/port")));
            }
        }
    }
    first_three(items)
}

fn slice_ports(obj: &Value) -> String {
    let ports = arr(obj, "/ports");
    if ports.is_empty() {
        return "<unset>".into();
    }
    first_three(ports.iter().map(|p| i(p, "/port").to_string()).collect())
}

fn slice_endpoints(obj: &Value) -> String {
    let addresses = arr(obj, "/endpoints")
        .iter()
        .flat_map(|e| arr(e, "/addresses").to_vec())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    first_three(addresses)
}

fn service_external_ip(obj: &Value) -> String {
    let ty = s(obj, "/spec/type");
    let external: Vec<String> = arr(obj, "/spec/externalIPs")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    match ty {
        "ClusterIP" | "" | "NodePort" => {
            if external.is_empty() {
                "<none>".into()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let mut ips = lb_ingress(obj, "/status/loadBalancer/ingress");
            ips.extend(external);
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        "ExternalName" => s(obj, "/spec/externalName").to_string(),
        _ => "<unknown>".into(),
    }
}

fn ingress_hosts(obj: &Value) -> String {
    let hosts: Vec<&str> = arr(obj, "/spec/rules")
        .iter()
        .map(|r| s(r, "/host"))
        .filter(|h| !h.is_empty())
        .collect();
    if hosts.is_empty() {
        return "*".into();
    }
    if hosts.len() > 4 {
        return format!("{} + {} more...", hosts[..4].join(","), hosts.len() - 4);
    }
    hosts.join(",")
}
