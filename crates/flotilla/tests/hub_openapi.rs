//! `/openapi/v3` component schemas: `kubectl explain` of built-in fields
//! (`deployment.spec.replicas`, `pods.spec.containers.image`) and of custom resources'
//! fields (`application.spec.policies`, and a CRD added while the hub runs) with kubectl
//! 1.27, 1.32 and 1.33; the documents carry `x-kubernetes-group-version-kind` and keep
//! their hash while nothing changes; List kinds, Scale and DeleteOptions are components and
//! every reference resolves.

mod support;

use serde_json::Value;
use support::{Server, kubectl_dir, kubectl_with, stderr, stdout, temp_dir, wait_for};

const GADGET_CRD: &str = r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
 "metadata": {"name": "gadgets.example.com"},
 "spec": {"group": "example.com", "scope": "Namespaced",
  "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
  "versions": [{"name": "v1", "served": true, "storage": true,
   "schema": {"openAPIV3Schema": {"type": "object", "properties": {
     "spec": {"type": "object", "properties": {
       "size": {"type": "integer", "description": "How many sprockets the gadget has."}}}}}}}]}}"#;

/// `kubectl explain <path>` with kubectl `version`, which must succeed.
fn explain(hub: &Server, version: &str, path: &str) -> String {
    let bin = kubectl_dir().join(format!("kubectl.{version}"));
    let out = kubectl_with(&bin, &hub.kubeconfig, &["explain", path]);
    assert!(
        out.status.success(),
        "kubectl {version} explain {path}: {}",
        stderr(&out)
    );
    stdout(&out)
}

fn get_raw(hub: &Server, path: &str) -> Value {
    serde_json::from_str(&hub.kubectl_ok(&["get", "--raw", path])).unwrap()
}

#[test]
fn kubectl_explain_reads_component_schemas() {
    let dir = temp_dir("hub-openapi");
    let hub = Server::hub(&dir);

    for version in ["1.27", "1.32", "1.33"] {
        let replicas = explain(&hub, version, "deployment.spec.replicas");
        assert!(
            replicas.contains("replicas") && replicas.contains("<integer>"),
            "kubectl {version}:\n{replicas}"
        );
        assert!(replicas.contains("Number of desired pods"), "{replicas}");
        let image = explain(&hub, version, "pods.spec.containers.image");
        assert!(image.contains("<string>"), "kubectl {version}:\n{image}");
        let policies = explain(&hub, version, "application.spec.policies");
        assert!(
            policies.contains("policies") && policies.contains("[]Object"),
            "kubectl {version}:\n{policies}"
        );
        // Unknown fields are reported as kubectl reports them on a real cluster.
        let bin = kubectl_dir().join(format!("kubectl.{version}"));
        let out = kubectl_with(
            &bin,
            &hub.kubeconfig,
            &["explain", "deployment.spec.nosuchfield"],
        );
        assert!(!out.status.success(), "kubectl {version}: unknown field");
        assert!(stderr(&out).contains("nosuchfield"), "{}", stderr(&out));
    }

    // The documents name each kind's group-version-kind, and keep their hash.
    let index = get_raw(&hub, "/openapi/v3");
    let apps_url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let apps = get_raw(&hub, &apps_url);
    let deployment = &apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        deployment["x-kubernetes-group-version-kind"][0]["kind"],
        "Deployment"
    );
    // List kinds, Scale and DeleteOptions are components too, and every reference resolves.
    let schemas = &apps["components"]["schemas"];
    let list = &schemas["io.k8s.api.apps.v1.DeploymentList"];
    assert_eq!(
        list["x-kubernetes-group-version-kind"],
        serde_json::json!([{"group": "apps", "kind": "DeploymentList", "version": "v1"}])
    );
    assert_eq!(
        list["properties"]["items"]["items"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.Deployment"
    );
    assert_eq!(
        schemas["io.k8s.api.autoscaling.v1.Scale"]["x-kubernetes-group-version-kind"],
        serde_json::json!([{"group": "autoscaling", "kind": "Scale", "version": "v1"}])
    );
    let delete_gvks = &schemas["io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"]["x-kubernetes-group-version-kind"];
    for (group, version) in [("", "v1"), ("apps", "v1")] {
        let gvk = serde_json::json!({"group": group, "kind": "DeleteOptions", "version": version});
        assert!(
            delete_gvks.as_array().is_some_and(|a| a.contains(&gvk)),
            "{delete_gvks}"
        );
    }
    assert_refs_resolve(&apps);
    let oam_url = index["paths"]["apis/core.oam.dev/v1beta1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let oam = get_raw(&hub, &oam_url);
    assert_eq!(
        oam["components"]["schemas"]["dev.oam.core.v1beta1.ApplicationList"]["properties"]["items"]
            ["items"]["allOf"][0]["$ref"],
        "#/components/schemas/dev.oam.core.v1beta1.Application"
    );
    assert_refs_resolve(&oam);

    let again = get_raw(&hub, "/openapi/v3");
    assert_eq!(
        again["paths"]["apis/apps/v1"]["serverRelativeURL"],
        apps_url.as_str()
    );

    // A CRD added while the hub runs is explained from its structural schema.
    let file = dir.join("gadget-crd.json");
    std::fs::write(&file, GADGET_CRD).unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    wait_for(
        "the Gadget kind to be served",
        std::time::Duration::from_secs(30),
        || {
            hub.kubectl(&["get", "gadgets", "-A"])
                .status
                .success()
                .then_some(())
        },
    );
    for version in ["1.27", "1.33"] {
        let size = explain(&hub, version, "gadget.spec.size");
        assert!(
            size.contains("<integer>") && size.contains("How many sprockets"),
            "kubectl {version}:\n{size}"
        );
    }
}

/// Every `$ref` in `doc` names one of its component schemas.
fn assert_refs_resolve(doc: &Value) {
    fn walk<'a>(v: &'a Value, refs: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    refs.push(r);
                }
                m.values().for_each(|v| walk(v, refs));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, refs)),
            _ => {}
        }
    }
    let mut refs = Vec::new();
    walk(doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or(r);
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "unresolved {r}"
        );
    }
}
