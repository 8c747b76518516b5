//! Errors as every kubectl 1.27 … 1.33 prints them against the hub: NotFound,
//! AlreadyExists, Invalid with the field, Conflict, a missing namespace, strict field
//! validation.

mod support;

use support::{Server, kubectl_versions, kubectl_with, stderr, temp_dir};

#[test]
fn every_kubectl_version_prints_hub_errors_exactly() {
    let dir = temp_dir("hub-kubectl-errors");
    let hub = Server::hub(&dir);
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let dup = write(
        "dup.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\n  namespace: default\n",
    );
    let invalid = write(
        "invalid.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: bad\n  namespace: default\nspec:\n  replicas: -1\n  selector:\n    matchLabels: {app: bad}\n  template:\n    metadata:\n      labels: {app: bad}\n    spec:\n      containers:\n      - {name: bad, image: nginx}\n",
    );
    let unknown = write(
        "unknown.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strict\n  namespace: default\nbogus: 1\n",
    );
    let elsewhere = write(
        "elsewhere.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lost\n  namespace: nowhere\n",
    );
    hub.kubectl_ok(&["create", "-f", &dup]);
    hub.kubectl_ok(&["create", "configmap", "stale", "--from-literal=a=1"]);
    let stale = String::from_utf8(
        hub.kubectl(&["get", "configmap", "stale", "-o", "yaml"])
            .stdout,
    )
    .unwrap();
    let stale_file = write("stale.yaml", &stale);
    hub.kubectl_ok(&["label", "configmap", "stale", "moved=on"]);

    for (version, bin) in kubectl_versions() {
        let run = |args: &[&str]| {
            let out = kubectl_with(&bin, &hub.kubeconfig, args);
            assert!(!out.status.success(), "{version}: {args:?} succeeded");
            stderr(&out)
        };
        let e = run(&["get", "configmap", "nope"]);
        assert_eq!(
            e.trim(),
            "Error from server (NotFound): configmaps \"nope\" not found",
            "{version}"
        );
        let e = run(&["get", "deployment.apps", "nope"]);
        assert_eq!(
            e.trim(),
            "Error from server (NotFound): deployments.apps \"nope\" not found",
            "{version}"
        );
        let e = run(&["create", "-f", &dup]);
        assert_eq!(
            e.trim(),
            format!(
                "Error from server (AlreadyExists): error when creating \"{dup}\": configmaps \"dup\" already exists"
            ),
            "{version}"
        );
        let e = run(&["apply", "-f", &invalid]);
        assert!(
            e.contains("The Deployment \"bad\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
            "{version}: {e}"
        );
        let e = run(&["replace", "-f", &stale_file]);
        assert!(
            e.contains("Error from server (Conflict)")
                && e.contains("Operation cannot be fulfilled on configmaps \"stale\": the object has been modified; please apply your changes to the latest version and try again"),
            "{version}: {e}"
        );
        let e = run(&["create", "-f", &elsewhere]);
        assert!(
            e.contains("Error from server (NotFound)")
                && e.contains("namespaces \"nowhere\" not found"),
            "{version}: {e}"
        );
        let e = run(&["apply", "-f", &unknown]);
        assert!(
            e.contains("Error from server (BadRequest)")
                && e.contains("strict decoding error: unknown field \"bogus\""),
            "{version}: {e}"
        );
    }
    // Nothing refused was stored.
    let out = hub.kubectl(&["get", "configmap", "strict"]);
    assert!(!out.status.success());
    let out = hub.kubectl(&["get", "deployment", "bad"]);
    assert!(!out.status.success());
    drop(hub);
    let _ = std::fs::remove_dir_all(&dir);
}
