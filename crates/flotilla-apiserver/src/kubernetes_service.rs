//! The `kubernetes` Service in `default`, with its Endpoints and EndpointSlice pointing at
//! this server's own address, as every Kubernetes cluster has (in-cluster clients and
//! `kubectl get svc,ep,endpointslices` expect them). Reconciled at every start, so a server
//! that comes back on another port points at the new one.

use std::net::SocketAddr;

use flotilla_core::status::ApiError;
use flotilla_core::user::UserInfo;
use serde_json::{Value, json};

use crate::handlers::WriteOptions;
use crate::state::ApiState;
use crate::store::update::update_with;

/// The Service's name and namespace.
pub(crate) const NAME: &str = "kubernetes";
pub(crate) const NAMESPACE: &str = "default";
/// The cluster IP kube-apiserver gives it with the default service CIDR (10.96.0.0/12).
pub(crate) const CLUSTER_IP: &str = "10.96.0.1";
/// The Service port (the endpoints carry the real one).
pub(crate) const SERVICE_PORT: u16 = 443;

/// The address clients reach this server on: a wildcard listen address becomes loopback.
fn advertised(addr: SocketAddr) -> (String, &'static str) {
    let ip = addr.ip();
    if ip.is_unspecified() {
        return if ip.is_ipv4() {
            ("127.0.0.1".into(), "IPv4")
        } else {
            ("::1".into(), "IPv6")
        };
    }
    let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    (ip.to_string(), family)
}

/// The Service, Endpoints and EndpointSlice this server should have, as
/// `(apiVersion, kind, fields the server owns)`.
fn desired(addr: SocketAddr) -> Vec<(&'static str, &'static str, Value)> {
    let (ip, family) = advertised(addr);
    let port = addr.port();
    vec![
        (
            "v1",
            "Service",
            json!({
                "metadata": {"labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": CLUSTER_IP,
                    "clusterIPs": [CLUSTER_IP],
                    "ipFamilies": [family],
                    "ipFamilyPolicy": "SingleStack",
                    "internalTrafficPolicy": "Cluster",
                    "sessionAffinity": "None",
                    "ports": [{"name": "https", "port": SERVICE_PORT, "protocol": "TCP", "targetPort": port}],
                },
            }),
        ),
        (
            "v1",
            "Endpoints",
            json!({
                "metadata": {"labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                "subsets": [{
                    "addresses": [{"ip": ip}],
                    "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
                }],
            }),
        ),
        (
            "discovery.k8s.io/v1",
            "EndpointSlice",
            json!({
                "metadata": {"labels": {"kubernetes.io/service-name": NAME}},
                "addressType": family,
                "endpoints": [{"addresses": [ip], "conditions": {"ready": true, "serving": true, "terminating": false}}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            }),
        ),
    ]
}

/// `current` (or a new object) with the server-owned fields and labels of `owned`.
fn merged(api_version: &str, kind: &str, current: Option<&Value>, owned: &Value) -> Value {
    let mut obj = current.cloned().unwrap_or_else(|| {
        json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": NAME, "namespace": NAMESPACE}})
    });
    for (field, value) in owned.as_object().into_iter().flatten() {
        if field == "metadata" {
            for (label, v) in value["labels"].as_object().into_iter().flatten() {
                obj["metadata"]["labels"][label] = v.clone();
            }
        } else {
            obj[field] = value.clone();
        }
    }
    obj
}

/// Creates the three objects, or points them at `addr` if they point elsewhere.
pub(crate) async fn reconcile(state: &ApiState, addr: SocketAddr) -> Result<(), ApiError> {
    let snapshot = state.registry.snapshot();
    let opts = WriteOptions::internal("kube-apiserver");
    for (api_version, kind, owned) in desired(addr) {
        let (group, version) = flotilla_core::resource::split_api_version(api_version);
        let info = snapshot
            .by_kind(group, version, kind)
            .ok_or_else(|| ApiError::internal(format!("no served kind {kind} in {api_version}")))?;
        update_with(
            state,
            &info,
            NAMESPACE,
            NAME,
            &opts,
            "",
            &UserInfo::default(),
            true,
            |current| Ok(merged(api_version, kind, current, &owned)),
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_addresses_advertise_loopback() {
        assert_eq!(
            advertised("0.0.0.0:6443".parse().unwrap()),
            ("127.0.0.1".to_string(), "IPv4")
        );
        assert_eq!(
            advertised("[::]:6443".parse().unwrap()),
            ("::1".to_string(), "IPv6")
        );
        assert_eq!(
            advertised("10.1.2.3:1".parse().unwrap()),
            ("10.1.2.3".to_string(), "IPv4")
        );
    }

    #[test]
    fn merging_keeps_user_labels_and_replaces_owned_fields() {
        let current = json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"mine": "yes"}},
            "subsets": [{"addresses": [{"ip": "1.1.1.1"}]}],
        });
        let (_, kind, owned) = desired("127.0.0.1:7000".parse().unwrap()).remove(1);
        let out = merged("v1", kind, Some(&current), &owned);
        assert_eq!(out["metadata"]["labels"]["mine"], "yes");
        assert_eq!(
            out["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"],
            "true"
        );
        assert_eq!(out["subsets"][0]["addresses"][0]["ip"], "127.0.0.1");
        assert_eq!(out["subsets"][0]["ports"][0]["port"], 7000);
    }
}
