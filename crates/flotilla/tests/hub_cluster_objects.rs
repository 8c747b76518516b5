//! Objects every Kubernetes cluster has, on the hub and on a member: the `kubernetes`
//! Service in `default` with Endpoints and an EndpointSlice pointing at the server itself
//! (also after a restart on another port), and one Available APIService per served
//! group-version, following CRDs as they come and go.

mod support;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, ListParams};
use support::{Server, kubectl_versions, kubectl_with, stderr, stdout, temp_dir, wait_for};

/// The port of a server URL `https://127.0.0.1:PORT`.
fn port_of(server: &Server) -> String {
    server.url().rsplit(':').next().unwrap().to_string()
}

/// What `kubectl` (every supported version) shows of the `kubernetes` Service.
fn assert_kubernetes_service_with_kubectl(server: &Server) {
    let port = port_of(server);
    for (version, bin) in kubectl_versions() {
        let run = |args: &[&str]| {
            let out = kubectl_with(&bin, &server.kubeconfig, args);
            assert!(
                out.status.success(),
                "kubectl {version} {args:?}: {}",
                stderr(&out)
            );
            stdout(&out)
        };
        let svc = run(&["get", "svc", "kubernetes", "-n", "default"]);
        assert!(
            svc.contains("ClusterIP") && svc.contains("10.96.0.1") && svc.contains("443/TCP"),
            "kubectl {version} get svc:\n{svc}"
        );
        let ep = run(&["get", "endpoints", "kubernetes", "-n", "default"]);
        assert!(
            ep.contains(&format!("127.0.0.1:{port}")),
            "kubectl {version} get ep:\n{ep}"
        );
        let slices = run(&[
            "get",
            "endpointslices",
            "-n",
            "default",
            "-l",
            "kubernetes.io/service-name=kubernetes",
        ]);
        assert!(
            slices.contains("IPv4") && slices.contains(&port) && slices.contains("127.0.0.1"),
            "kubectl {version} get endpointslices:\n{slices}"
        );
        let describe = run(&["describe", "svc", "kubernetes", "-n", "default"]);
        assert!(
            describe.contains(&format!("127.0.0.1:{port}")),
            "kubectl {version} describe svc shows the endpoints:\n{describe}"
        );
    }
}

async fn assert_kubernetes_service_with_kube_rs(server: &Server) {
    let client = server.kube_client().await;
    let port: i32 = port_of(server).parse().unwrap();
    let svc = Api::<Service>::namespaced(client.clone(), "default")
        .get("kubernetes")
        .await
        .unwrap();
    let spec = svc.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.1"));
    let ports = spec.ports.unwrap();
    assert_eq!(ports[0].port, 443);
    assert_eq!(ports[0].name.as_deref(), Some("https"));
    let ep = Api::<Endpoints>::namespaced(client.clone(), "default")
        .get("kubernetes")
        .await
        .unwrap();
    let subset = &ep.subsets.unwrap()[0];
    assert_eq!(subset.addresses.as_ref().unwrap()[0].ip, "127.0.0.1");
    assert_eq!(subset.ports.as_ref().unwrap()[0].port, port);
    let slice = Api::<EndpointSlice>::namespaced(client, "default")
        .get("kubernetes")
        .await
        .unwrap();
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(
        slice.endpoints.unwrap()[0].addresses,
        vec!["127.0.0.1".to_string()]
    );
    assert_eq!(slice.ports.unwrap()[0].port, Some(port));
}

/// `kubectl get apiservices` lists one Local, Available APIService per served group-version.
fn assert_apiservices_with_kubectl(server: &Server) {
    let api_versions = stdout(&server.kubectl(&["api-versions"]));
    for (version, bin) in kubectl_versions() {
        let out = kubectl_with(&bin, &server.kubeconfig, &["get", "apiservices"]);
        assert!(out.status.success(), "kubectl {version}: {}", stderr(&out));
        let table = stdout(&out);
        assert!(
            table.starts_with("NAME") && table.contains("SERVICE") && table.contains("AVAILABLE"),
            "kubectl {version}:\n{table}"
        );
        for gv in api_versions.lines() {
            let name = match gv.split_once('/') {
                Some((group, v)) => format!("{v}.{group}"),
                None => format!("{gv}."),
            };
            let row = table
                .lines()
                .find(|l| l.split_whitespace().next() == Some(name.as_str()))
                .unwrap_or_else(|| panic!("kubectl {version}: no APIService {name}:\n{table}"));
            assert!(
                row.contains("Local") && row.contains("True"),
                "kubectl {version}: {row}"
            );
        }
    }
}

const WIDGET_CRD: &str = r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
 "metadata": {"name": "widgets.example.com"},
 "spec": {"group": "example.com", "scope": "Namespaced",
  "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
  "versions": [{"name": "v1", "served": true, "storage": true,
   "schema": {"openAPIV3Schema": {"type": "object"}}}]}}"#;

async fn assert_apiservices_follow_crds(server: &Server, dir: &std::path::Path) {
    let api = Api::<APIService>::all(server.kube_client().await);
    let all = api.list(&ListParams::default()).await.unwrap();
    let apps = all
        .items
        .iter()
        .find(|a| a.metadata.name.as_deref() == Some("v1.apps"))
        .expect("v1.apps");
    let spec = apps.spec.as_ref().unwrap();
    assert_eq!(spec.group.as_deref(), Some("apps"));
    assert!(spec.service.is_none(), "served locally");
    let conditions = apps.status.as_ref().unwrap().conditions.as_ref().unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True")
    );

    let file = dir.join("widget-crd.json");
    std::fs::write(&file, WIDGET_CRD).unwrap();
    server.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    let name = "v1.example.com";
    wait_for(
        "the CRD's APIService",
        std::time::Duration::from_secs(30),
        || server.exists("apiservice", name, "default").then_some(()),
    );
    let label = server.jsonpath(
        "apiservice",
        name,
        "default",
        "{.metadata.labels.kube-aggregator\\.kubernetes\\.io/automanaged}",
    );
    assert_eq!(label, "true");
    server.kubectl_ok(&["delete", "-f", file.to_str().unwrap()]);
    wait_for(
        "the APIService to go",
        std::time::Duration::from_secs(30),
        || (!server.exists("apiservice", name, "default")).then_some(()),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_and_member_have_the_kubernetes_service() {
    let dir = temp_dir("cluster-objects");
    let hub = Server::hub(&dir.join("hub"));
    let member = Server::member("east", &dir.join("east"));
    for server in [&hub, &member] {
        assert_kubernetes_service_with_kubectl(server);
        assert_kubernetes_service_with_kube_rs(server).await;
        assert_apiservices_with_kubectl(server);
    }
    assert_apiservices_follow_crds(&hub, &dir).await;

    // After a restart on a new port, the endpoints follow.
    let old_port = port_of(&hub);
    drop(hub);
    let hub = Server::hub(&dir.join("hub"));
    assert_ne!(
        old_port,
        port_of(&hub),
        "the restarted hub picked a new port"
    );
    assert_kubernetes_service_with_kube_rs(&hub).await;
}
