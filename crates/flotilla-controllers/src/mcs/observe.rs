//! Reading one member: its ServiceExports (each with its Service and the Service's ready
//! Pods) and its ServiceImports.

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;

use super::{Export, Import, MemberView, Port};

/// The API resource of a `multicluster.x-k8s.io/v1alpha1` kind.
pub fn mcs_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(flotilla_apis::MCS_GROUP, "v1alpha1", kind),
        plural,
    )
}

/// Reads the member's exports and imports.
pub(crate) async fn read(
    cluster: &str,
    member_client: &kube::Client,
) -> Result<MemberView, kube::Error> {
    let exports: Api<DynamicObject> = Api::all_with(
        member_client.clone(),
        &mcs_resource("ServiceExport", "serviceexports"),
    );
    let imports: Api<DynamicObject> = Api::all_with(
        member_client.clone(),
        &mcs_resource("ServiceImport", "serviceimports"),
    );
    let mut view = MemberView::default();
    for export in exports.list(&ListParams::default()).await?.items {
        view.exports
            .push(read_export(cluster, member_client, &export).await?);
    }
    for import in imports.list(&ListParams::default()).await?.items {
        view.imports.push(Import {
            cluster: cluster.to_string(),
            namespace: import.metadata.namespace.clone().unwrap_or_default(),
            name: import.metadata.name.clone().unwrap_or_default(),
        });
    }
    Ok(view)
}

async fn read_export(
    cluster: &str,
    member_client: &kube::Client,
    export: &DynamicObject,
) -> Result<Export, kube::Error> {
    let namespace = export.metadata.namespace.clone().unwrap_or_default();
    let name = export.metadata.name.clone().unwrap_or_default();
    let services: Api<Service> = Api::namespaced(member_client.clone(), &namespace);
    let service = services.get_opt(&name).await?;
    let mut out = Export {
        cluster: cluster.to_string(),
        namespace: namespace.clone(),
        name,
        created: export
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
        service_found: service.is_some(),
        ports: Vec::new(),
        endpoints: Vec::new(),
    };
    let Some(spec) = service.and_then(|s| s.spec) else {
        return Ok(out);
    };
    out.ports = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .map(|p| Port {
            name: p.name.unwrap_or_default(),
            port: p.port,
            target_port: match p.target_port {
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => n,
                _ => p.port,
            },
            protocol: p.protocol.unwrap_or_else(|| "TCP".into()),
        })
        .collect();
    out.ports.sort();
    let selector = spec.selector.unwrap_or_default();
    if selector.is_empty() {
        return Ok(out);
    }
    let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let pods: Api<Pod> = Api::namespaced(member_client.clone(), &namespace);
    let pods = pods
        .list(&ListParams::default().labels(&labels.join(",")))
        .await?;
    out.endpoints = pods.items.iter().filter_map(ready_endpoint).collect();
    out.endpoints.sort();
    Ok(out)
}

/// (name, IP) of a Pod that is ready: an IP, condition Ready True, not being deleted.
fn ready_endpoint(pod: &Pod) -> Option<(String, String)> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    let ip = status.pod_ip.clone().filter(|ip| !ip.is_empty())?;
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    ready.then(|| (pod.metadata.name.clone().unwrap_or_default(), ip))
}
