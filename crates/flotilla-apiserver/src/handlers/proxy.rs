//! The service and pod proxy: `/api/v1/namespaces/NS/services/NAME[:PORT]/proxy/PATH` and
//! `/api/v1/namespaces/NS/pods/NAME[:PORT]/proxy/PATH`, every method.
//!
//! A simulated member has no containers, so its API server answers as the Pods would: a
//! JSON echo naming the cluster, the Pod and the request. A Service picks its ready Pods
//! round-robin (selector Services), or the ready endpoints of its EndpointSlices (Services
//! without a selector, such as the `amcs-<name>` Services of multi-cluster Services; an
//! endpoint in another cluster is reached through that cluster's pod proxy, see
//! [`super::proxy_remote`]). Annotations on the Pod's Deployment inject faults:
//! `sim.flotilla.io/http-status` (every answer has that status) and
//! `sim.flotilla.io/http-latency` (a duration such as `250ms`, waited before answering).
//!
//! Authorization is RBAC on the `services/proxy` and `pods/proxy` subresources with the verb
//! of the HTTP method (get, create, update, patch, delete), as kube-apiserver does; the
//! router's middleware has already checked it.

use std::collections::HashMap;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use flotilla_core::selector::LabelSelector;
use flotilla_core::status::ApiError;
use http::{HeaderValue, StatusCode, header};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};

use super::Req;
use crate::objects;
use crate::state::SharedState;

/// Deployment annotation: every answer of its Pods has this HTTP status.
pub(crate) const HTTP_STATUS_ANNOTATION: &str = "sim.flotilla.io/http-status";
/// Deployment annotation: its Pods wait this long (a duration: `250ms`, `1s`) before answering.
pub(crate) const HTTP_LATENCY_ANNOTATION: &str = "sim.flotilla.io/http-latency";
/// EndpointSlice label naming the Service it belongs to.
pub(crate) const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// EndpointSlice label naming the cluster its endpoints live in (multi-cluster Services).
pub(crate) const SOURCE_CLUSTER_LABEL: &str = "multicluster.kubernetes.io/source-cluster";

/// What the proxy of one API server knows: whether it simulates a member, and the
/// round-robin position of every Service.
#[derive(Debug, Default)]
pub(crate) struct ProxyState {
    /// The member's cluster name; `None` on the hub (which runs no workloads).
    member_cluster: Option<String>,
    next: Mutex<HashMap<String, usize>>,
}

impl ProxyState {
    /// The proxy of a simulated member named `cluster_name`, or of the hub (`None`).
    pub(crate) fn new(member_cluster: Option<String>) -> ProxyState {
        ProxyState {
            member_cluster,
            ..Default::default()
        }
    }

    /// The next round-robin index below `len` for `key`.
    fn pick(&self, key: &str, len: usize) -> usize {
        let mut next = self.next.lock();
        let slot = next.entry(key.to_string()).or_insert(0);
        let i = *slot % len;
        *slot = slot.wrapping_add(1);
        i
    }
}

/// One place a request can be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// A Pod of this cluster.
    Local { pod: String },
    /// A Pod of another member (multi-cluster Services).
    Remote { cluster: String, pod: String },
}

/// The request as the Pod sees it.
struct Inbound<'a> {
    req: &'a Req,
    /// `/` + what follows `/proxy`.
    path: String,
}

/// `.../services/NAME[:PORT]/proxy/...` and `.../pods/NAME[:PORT]/proxy/...`
pub(crate) async fn handle(state: SharedState, req: Req) -> Result<Response, ApiError> {
    let Some(cluster) = state.proxy.member_cluster.clone() else {
        return Err(ApiError::service_unavailable(
            "the hub runs no workloads: proxy to a member cluster instead",
        ));
    };
    let (name, _port) = split_name_port(&req.info.name);
    let inbound = Inbound {
        path: proxied_path(&req),
        req: &req,
    };
    let endpoint = match req.info.resource.as_str() {
        "services" => service_endpoint(&state, &req, name).await?,
        _ => Endpoint::Local {
            pod: name.to_string(),
        },
    };
    match endpoint {
        Endpoint::Local { pod } => answer_as_pod(&state, &cluster, &pod, &inbound).await,
        Endpoint::Remote { cluster, pod } => {
            super::proxy_remote::forward(&state, &cluster, &pod, &inbound.path, &req).await
        }
    }
}

/// `NAME`, `NAME:PORT` or `SCHEME:NAME:PORT` → (name, port).
fn split_name_port(id: &str) -> (&str, &str) {
    let parts: Vec<&str> = id.split(':').collect();
    match parts.as_slice() {
        [name] => (name, ""),
        [name, port] => (name, port),
        [_, name, port] => (name, port),
        _ => (id, ""),
    }
}

/// The path after `.../{name}/proxy` (always starting with `/`).
fn proxied_path(req: &Req) -> String {
    let marker = format!("/{}/{}/proxy", req.info.resource, req.info.name);
    let rest = req
        .info
        .path
        .find(&marker)
        .map(|i| &req.info.path[i + marker.len()..])
        .unwrap_or("");
    if rest.is_empty() {
        "/".to_string()
    } else {
        rest.to_string()
    }
}

fn no_endpoints(id: &str) -> ApiError {
    ApiError::service_unavailable(format!("no endpoints available for service {id:?}"))
}

/// Chooses the endpoint of a Service, round-robin over its ready endpoints.
async fn service_endpoint(
    state: &SharedState,
    req: &Req,
    name: &str,
) -> Result<Endpoint, ApiError> {
    let ns = &req.info.namespace;
    let (service, _) = state.store.get_existing(&req.resource, ns, name).await?;
    let (_, port) = split_name_port(&req.info.name);
    if !port.is_empty() && !service_has_port(&service, port) {
        return Err(no_endpoints(&req.info.name));
    }
    let endpoints = match service.pointer("/spec/selector").and_then(Value::as_object) {
        Some(selector) if !selector.is_empty() => selected_pods(state, ns, selector).await?,
        _ => sliced_endpoints(state, ns, name, state.proxy.member_cluster.as_deref()).await?,
    };
    if endpoints.is_empty() {
        return Err(no_endpoints(&req.info.name));
    }
    let i = state.proxy.pick(&format!("{ns}/{name}"), endpoints.len());
    Ok(endpoints[i].clone())
}

/// Whether `port` (a name or a number) is one of the Service's ports.
fn service_has_port(service: &Value, port: &str) -> bool {
    let ports = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    ports.iter().any(|p| {
        p.get("name").and_then(Value::as_str) == Some(port)
            || p.get("port").and_then(Value::as_i64).map(|n| n.to_string()) == Some(port.into())
    })
}

/// Reads every object of a built-in resource in a namespace.
async fn list_in(
    state: &SharedState,
    group: &str,
    resource: &str,
    ns: &str,
) -> Result<Vec<Value>, ApiError> {
    let snapshot = state.registry.snapshot();
    let Some(info) = snapshot.lookup(group, "v1", resource) else {
        return Ok(Vec::new());
    };
    Ok(state
        .store
        .list(&info, ns)
        .await?
        .into_iter()
        .map(|(o, _)| o)
        .collect())
}

/// Whether a Pod is ready to serve: an IP, condition Ready True, not being deleted.
pub(crate) fn pod_is_ready(pod: &Value) -> bool {
    let has_ip = pod
        .pointer("/status/podIP")
        .and_then(Value::as_str)
        .is_some_and(|ip| !ip.is_empty());
    let ready = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        });
    has_ip && ready && pod.pointer("/metadata/deletionTimestamp").is_none()
}

/// The ready Pods a Service selector picks, sorted by name.
async fn selected_pods(
    state: &SharedState,
    ns: &str,
    selector: &Map<String, Value>,
) -> Result<Vec<Endpoint>, ApiError> {
    let selector = LabelSelector::from_match_labels(selector)
        .map_err(|e| ApiError::internal(format!("service selector: {e}")))?;
    let mut pods: Vec<String> = list_in(state, "", "pods", ns)
        .await?
        .iter()
        .filter(|p| pod_is_ready(p) && selector.matches_object(p))
        .map(|p| objects::meta_str(p, "name").to_string())
        .collect();
    pods.sort();
    Ok(pods
        .into_iter()
        .map(|pod| Endpoint::Local { pod })
        .collect())
}

/// The ready endpoints of the EndpointSlices of a Service without a selector.
async fn sliced_endpoints(
    state: &SharedState,
    ns: &str,
    service: &str,
    own_cluster: Option<&str>,
) -> Result<Vec<Endpoint>, ApiError> {
    let mut out = Vec::new();
    for slice in list_in(state, "discovery.k8s.io", "endpointslices", ns).await? {
        let labels = slice.pointer("/metadata/labels");
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        if label(SERVICE_NAME_LABEL) != Some(service) {
            continue;
        }
        let cluster = label(SOURCE_CLUSTER_LABEL).map(str::to_string);
        let endpoints = slice.get("endpoints").and_then(Value::as_array);
        for e in endpoints.into_iter().flatten() {
            if e.pointer("/conditions/ready").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let Some(pod) = e.pointer("/targetRef/name").and_then(Value::as_str) else {
                continue;
            };
            let pod = pod.to_string();
            out.push(match &cluster {
                Some(c) if Some(c.as_str()) != own_cluster => Endpoint::Remote {
                    cluster: c.clone(),
                    pod,
                },
                _ => Endpoint::Local { pod },
            });
        }
    }
    Ok(out)
}

/// The faults the Pod's Deployment asks for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Faults {
    status: Option<StatusCode>,
    latency: Duration,
}

/// Answers as the Pod would: a JSON echo of the request.
async fn answer_as_pod(
    state: &SharedState,
    cluster: &str,
    pod_name: &str,
    inbound: &Inbound<'_>,
) -> Result<Response, ApiError> {
    let ns = &inbound.req.info.namespace;
    let snapshot = state.registry.snapshot();
    let pods = snapshot
        .lookup("", "v1", "pods")
        .ok_or_else(|| ApiError::not_found("", "pods", pod_name))?;
    let (pod, _) = state.store.get_existing(&pods, ns, pod_name).await?;
    let pod_ip = pod
        .pointer("/status/podIP")
        .and_then(Value::as_str)
        .unwrap_or("");
    if pod_ip.is_empty() {
        return Err(ApiError::service_unavailable(format!(
            "pod {pod_name:?} has no IP address yet"
        )));
    }
    let faults = owner_faults(state, ns, &pod).await?;
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    let req = inbound.req;
    let headers: Map<String, Value> = req
        .headers
        .keys()
        .map(|k| {
            let values: Vec<&str> = req
                .headers
                .get_all(k)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (k.as_str().to_string(), Value::String(values.join(", ")))
        })
        .collect();
    let status = faults.status.unwrap_or(StatusCode::OK);
    let body = json!({
        "cluster": cluster,
        "namespace": ns,
        "pod": pod_name,
        "podIP": pod_ip,
        "method": req.method.as_str(),
        "path": inbound.path,
        "query": query_string(&req.query),
        "headers": headers,
        "bodyBytes": req.body.len(),
        "status": status.as_u16(),
    });
    let mut resp = (status, serde_json::to_vec(&body).unwrap_or_default()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(cluster) {
        h.insert("x-flotilla-cluster", v);
    }
    if let Ok(v) = HeaderValue::from_str(pod_name) {
        h.insert("x-flotilla-pod", v);
    }
    Ok(resp)
}

/// The query string of the proxied request (keys sorted).
pub(crate) fn query_string(query: &HashMap<String, String>) -> String {
    let mut pairs: Vec<_> = query.iter().collect();
    pairs.sort();
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The faults on the Deployment owning the Pod (Pod → ReplicaSet → Deployment by owner
/// references, else the Deployment whose selector matches the Pod's labels).
async fn owner_faults(state: &SharedState, ns: &str, pod: &Value) -> Result<Faults, ApiError> {
    let snapshot = state.registry.snapshot();
    let (Some(replicasets), Some(deployments)) = (
        snapshot.lookup("apps", "v1", "replicasets"),
        snapshot.lookup("apps", "v1", "deployments"),
    ) else {
        return Ok(Faults::default());
    };
    if let Some(rs_name) = owner_named(pod, "ReplicaSet")
        && let Some((rs, _)) = state.store.get(&replicasets, ns, &rs_name).await?
        && let Some(deploy_name) = owner_named(&rs, "Deployment")
        && let Some((deploy, _)) = state.store.get(&deployments, ns, &deploy_name).await?
    {
        return Ok(faults_of(&deploy));
    }
    for deploy in list_in(state, "apps", "deployments", ns).await? {
        let selector = deploy
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or(Value::Null);
        if LabelSelector::from_json(&selector).is_ok_and(|s| s.matches_object(pod)) {
            return Ok(faults_of(&deploy));
        }
    }
    Ok(Faults::default())
}

/// The name of the controller owner of `kind`.
fn owner_named(obj: &Value, kind: &str) -> Option<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("kind").and_then(Value::as_str) == Some(kind))
        .and_then(|r| r.get("name").and_then(Value::as_str))
        .map(str::to_string)
}

/// Reads the fault annotations (an unparsable value is ignored).
fn faults_of(deploy: &Value) -> Faults {
    let annotation = |k: &str| {
        deploy
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .map(str::trim)
    };
    Faults {
        status: annotation(HTTP_STATUS_ANNOTATION)
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|c| (100..=599).contains(c))
            .and_then(|c| StatusCode::from_u16(c).ok()),
        latency: annotation(HTTP_LATENCY_ANNOTATION)
            .and_then(parse_duration)
            .unwrap_or_default(),
    }
}

/// Parses a Go-style duration: `250ms`, `1s`, `1.5s`, `2m`, `1m30s`, `100us`, `0`.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * seconds;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_go_does() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in ["", "ms", "10", "1x", "-1s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn name_port_forms() {
        assert_eq!(split_name_port("web"), ("web", ""));
        assert_eq!(split_name_port("web:80"), ("web", "80"));
        assert_eq!(split_name_port("https:web:443"), ("web", "443"));
    }

    #[test]
    fn fault_annotations() {
        let d = json!({"metadata": {"annotations": {
            HTTP_STATUS_ANNOTATION: "503", HTTP_LATENCY_ANNOTATION: "20ms"}}});
        assert_eq!(
            faults_of(&d),
            Faults {
                status: Some(StatusCode::SERVICE_UNAVAILABLE),
                latency: Duration::from_millis(20)
            }
        );
        let d = json!({"metadata": {"annotations": {HTTP_STATUS_ANNOTATION: "nope"}}});
        assert_eq!(faults_of(&d), Faults::default());
    }

    #[test]
    fn readiness() {
        let ready = json!({"status": {"podIP": "10.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}]}});
        assert!(pod_is_ready(&ready));
        let unready = json!({"status": {"podIP": "10.0.0.1",
            "conditions": [{"type": "Ready", "status": "False"}]}});
        assert!(!pod_is_ready(&unready));
        assert!(!pod_is_ready(&json!({"status": {}})));
    }
}
