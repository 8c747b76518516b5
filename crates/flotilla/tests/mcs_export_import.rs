//! Multi-cluster Services end to end: a Service exported from two members and imported into
//! a third (both placed by Applications) gets `amcs-<name>` and one EndpointSlice per
//! exporting cluster listing its ready Pods; the slices follow scaling, Pods going unready and
//! a stopped member; the importer's service proxy spreads `amcs-<name>` over both clusters;
//! conflicting ports are reported in the ServiceExport's conditions; `flotilla get
//! serviceimports,endpointslices -M` and `flotilla status` show the imports.

mod support;

use std::time::Duration;

use support::fleet::{apply, echo_workload, wait_ready_pods};
use support::{Server, TestDir, flotilla, stderr, stdout, wait_for};

/// The export, placed on mcs-a and mcs-b by an Application.
const EXPORT_APP: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: {name: web-export, namespace: default}
spec:
  components:
    - name: export
      type: k8s-objects
      properties:
        objects:
          - apiVersion: multicluster.x-k8s.io/v1alpha1
            kind: ServiceExport
            metadata: {name: web, namespace: shop}
  policies:
    - {type: topology, name: exporters, properties: {clusters: [mcs-a, mcs-b]}}
"#;

/// The import, placed on mcs-c by an Application.
const IMPORT_APP: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: {name: web-import, namespace: default}
spec:
  components:
    - name: import
      type: k8s-objects
      properties:
        objects:
          - apiVersion: v1
            kind: Namespace
            metadata: {name: shop}
          - apiVersion: multicluster.x-k8s.io/v1alpha1
            kind: ServiceImport
            metadata: {name: web, namespace: shop}
            spec: {type: ClusterSetIP, ports: [{name: http, port: 80, protocol: TCP}]}
  policies:
    - {type: topology, name: importer, properties: {clusters: [mcs-c]}}
"#;

/// `cluster=ip ip;` per slice of `amcs-web`, sorted.
fn slices(importer: &Server) -> String {
    let out = importer.kubectl_ok(&[
        "get",
        "endpointslices",
        "-n",
        "shop",
        "-l",
        "kubernetes.io/service-name=amcs-web,endpointslice.kubernetes.io/managed-by=flotilla-mcs",
        "-o",
        "jsonpath={range .items[*]}{.metadata.labels.multicluster\\.kubernetes\\.io/source-cluster}={.endpoints[*].addresses[0]};{end}",
    ]);
    let mut parts: Vec<&str> = out.split(';').filter(|s| !s.is_empty()).collect();
    parts.sort();
    parts.join(";")
}

fn slices_become(importer: &Server, wanted: &str) {
    wait_for(&format!("slices {wanted}"), Duration::from_secs(30), || {
        (slices(importer) == wanted).then_some(())
    });
}

#[test]
fn exported_services_reach_the_importing_member() {
    let dir = TestDir::new("mcs");
    let hub = Server::hub_probing_every_second(&dir.path().join("hub"));
    let a = Server::member("mcs-a", &dir.path().join("a"));
    let b = Server::member("mcs-b", &dir.path().join("b"));
    let c = Server::member("mcs-c", &dir.path().join("c"));
    for (name, m) in [("mcs-a", &a), ("mcs-b", &b), ("mcs-c", &c)] {
        hub.join(name, m);
    }
    echo_workload(&a, "shop", "web", 2);
    echo_workload(&b, "shop", "web", 1);
    let a_pods = wait_ready_pods(&a, "shop", "web", 2);
    let b_pods = wait_ready_pods(&b, "shop", "web", 1);
    let ips = |pods: &[(String, String)]| {
        pods.iter()
            .map(|(_, ip)| ip.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    apply(&hub.kubeconfig, EXPORT_APP);
    apply(&hub.kubeconfig, IMPORT_APP);

    // The importer gets amcs-web and one slice per exporting cluster.
    slices_become(
        &c,
        &format!("mcs-a={};mcs-b={}", ips(&a_pods), ips(&b_pods)),
    );
    assert_eq!(
        c.jsonpath("service", "amcs-web", "shop", "{.spec.ports[0].port}"),
        "80"
    );
    assert_eq!(
        c.jsonpath(
            "serviceimport",
            "web",
            "shop",
            "{.status.clusters[*].cluster}"
        ),
        "mcs-a mcs-b"
    );
    let valid = a.jsonpath(
        "serviceexport",
        "web",
        "shop",
        "{.status.conditions[?(@.type==\"Valid\")].status}",
    );
    assert_eq!(valid, "True");

    // The importer's service proxy spreads amcs-web over both clusters' Pods.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let body = c.kubectl_ok(&[
            "get",
            "--raw",
            "/api/v1/namespaces/shop/services/amcs-web:80/proxy/hi",
        ]);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["path"], "/hi");
        seen.insert(format!(
            "{}/{}",
            body["cluster"].as_str().unwrap(),
            body["pod"].as_str().unwrap()
        ));
    }
    let mut expected: Vec<String> = a_pods.iter().map(|(p, _)| format!("mcs-a/{p}")).collect();
    expected.extend(b_pods.iter().map(|(p, _)| format!("mcs-b/{p}")));
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), expected);

    // Scale b to two Pods.
    b.kubectl_ok(&["scale", "deployment", "web", "-n", "shop", "--replicas=2"]);
    let b_pods = wait_ready_pods(&b, "shop", "web", 2);
    slices_become(
        &c,
        &format!("mcs-a={};mcs-b={}", ips(&a_pods), ips(&b_pods)),
    );

    // The CLI shows the imports: get across clusters, and the app's status.
    let out = flotilla(
        &hub.kubeconfig,
        &["get", "serviceimports,endpointslices", "-M", "-n", "shop"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    let rows: Vec<String> = table
        .lines()
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();
    for row in [
        "mcs-c serviceimport.multicluster.x-k8s.io/web",
        "mcs-c endpointslice.discovery.k8s.io/amcs-web-mcs-a",
        "mcs-c endpointslice.discovery.k8s.io/amcs-web-mcs-b",
    ] {
        assert!(rows.iter().any(|r| r == row), "{row:?} not in\n{table}");
    }
    // One table per kind, kubectl's blank line between.
    assert_eq!(
        rows.iter().filter(|r| *r == "CLUSTER NAME").count(),
        2,
        "{table}"
    );
    assert!(rows.iter().any(String::is_empty), "{table}");
    let status = stdout(&flotilla(&hub.kubeconfig, &["status", "web-export"]));
    assert!(
        status.contains(
            "Multi-cluster Services:\n  - Name: web  Namespace: shop\n    Exported from: mcs-a (valid), mcs-b (valid)\n    Imported into: mcs-c (4 endpoints: mcs-a 2, mcs-b 2)\n"
        ),
        "{status}"
    );

    // One of b's Pods stops being ready: its address leaves b's slice; ready again: back.
    let unready = |value: &str| {
        b.kubectl_ok(&[
            "annotate",
            "pod",
            &b_pods[0].0,
            "-n",
            "shop",
            "--overwrite",
            &format!("sim.flotilla.io/stuck={value}"),
        ]);
    };
    unready("true");
    slices_become(&c, &format!("mcs-a={};mcs-b={}", ips(&a_pods), b_pods[1].1));
    unready("false");
    slices_become(
        &c,
        &format!("mcs-a={};mcs-b={}", ips(&a_pods), ips(&b_pods)),
    );

    // Conflicting ports: b exports `api` on 8080 after a exported it on 80.
    apply(
        &a.kubeconfig,
        "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n---\napiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata: {name: api, namespace: shop}\n",
    );
    std::thread::sleep(Duration::from_millis(1100));
    apply(
        &b.kubeconfig,
        "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\nspec: {selector: {app: web}, ports: [{port: 8080}]}\n---\napiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata: {name: api, namespace: shop}\n",
    );
    wait_for("the Conflict condition", Duration::from_secs(30), || {
        let reason = b.jsonpath(
            "serviceexport",
            "api",
            "shop",
            "{.status.conditions[?(@.type==\"Conflict\")].reason}",
        );
        (reason == "PortConflict").then_some(())
    });
    assert_eq!(
        a.jsonpath(
            "serviceexport",
            "api",
            "shop",
            "{.status.conditions[?(@.type==\"Conflict\")].status}"
        ),
        "False"
    );

    // Stop b: its slice goes.
    drop(b);
    slices_become(&c, &format!("mcs-a={}", ips(&a_pods)));
}
