//! SPEC 5: applications that select clusters by label follow label changes — a cluster that
//! starts matching receives the application, one that stops matching is cleaned up.

mod support;

use std::time::Duration;

use support::{Server, TestDir, flotilla, stderr, wait_for};

const WAIT: Duration = Duration::from_secs(90);

const APP: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: follow
  namespace: default
spec:
  components:
    - name: follow
      type: k8s-objects
      properties:
        objects:
          - apiVersion: v1
            kind: ConfigMap
            metadata:
              name: follow
            data:
              k: v
  policies:
    - type: topology
      name: prod
      properties:
        clusterLabelSelector:
          env: prod
"#;

fn labels(hub: &Server, args: &[&str]) {
    let mut all = vec!["cluster", "labels"];
    all.extend_from_slice(args);
    let out = flotilla(&hub.kubeconfig, &all);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
}

fn services(hub: &Server) -> String {
    hub.jsonpath(
        "app",
        "follow",
        "default",
        "{.status.status} {.status.services[*].cluster}",
    )
}

#[test]
fn label_changes_re_place_applications() {
    let dir = TestDir::new("cluster-labels");
    let hub = Server::hub(&dir.0.join("hub"));
    let a = Server::member("a", &dir.0.join("a"));
    let b = Server::member("b", &dir.0.join("b"));
    for (name, member) in [("a", &a), ("b", &b)] {
        hub.join(name, member);
    }
    labels(&hub, &["add", "a", "env=prod"]);
    let file = dir.0.join("app.yaml");
    std::fs::write(&file, APP).unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);

    wait_for("a selected", WAIT, || {
        (services(&hub) == "running a").then_some(())
    });
    assert!(a.exists("configmap", "follow", "default"));
    assert!(!b.exists("configmap", "follow", "default"));
    let step = hub.jsonpath(
        "app",
        "follow",
        "default",
        "{.status.workflow.steps[0].name}",
    );
    assert_eq!(step, "deploy-prod");

    // b starts matching: it receives the application.
    labels(&hub, &["add", "b", "env=prod"]);
    wait_for("b receives the application", WAIT, || {
        b.exists("configmap", "follow", "default").then_some(())
    });
    wait_for("status lists both", WAIT, || {
        (services(&hub) == "running a b").then_some(())
    });

    // a stops matching: what was dispatched there is deleted.
    labels(&hub, &["del", "a", "env"]);
    wait_for("a cleaned up", WAIT, || {
        (!a.exists("configmap", "follow", "default")).then_some(())
    });
    wait_for("status lists b only", WAIT, || {
        (services(&hub) == "running b").then_some(())
    });
    assert!(b.exists("configmap", "follow", "default"));
}
