//! Acceptance (issue 5): "a member that is down: its placements wait and retry, the others
//! finish". An Application placed on two members while one is stopped finishes on the live one
//! and keeps `runningWorkflow`; when the stopped member comes back on the same address, the
//! controller retries on its own and the Application reaches `running` with the object on both.

mod support;

use std::time::Duration;

use support::{Server, TestDir, wait_for};

const WAIT: Duration = Duration::from_secs(90);

const APP: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: retry
  namespace: default
spec:
  components:
    - name: retry
      type: k8s-objects
      properties:
        objects:
          - apiVersion: v1
            kind: ConfigMap
            metadata:
              name: retry
            data:
              k: v
  policies:
    - type: topology
      name: where
      properties:
        clusters: ["up", "later"]
  workflow:
    steps:
      - type: deploy
        name: deploy
        properties:
          policies: ["where"]
"#;

fn app_field(hub: &Server, jsonpath: &str) -> String {
    hub.jsonpath("app", "retry", "default", jsonpath)
}

#[test]
fn a_down_member_is_retried_when_it_returns() {
    let dir = TestDir::new("acceptance-retry");
    let hub = Server::hub(&dir.0.join("hub"));
    let up = Server::member("up", &dir.0.join("up"));
    let later = Server::member("later", &dir.0.join("later"));
    for (name, member) in [("up", &up), ("later", &later)] {
        hub.join(name, member);
    }
    let address = later.url().trim_start_matches("https://").to_string();
    let later_dir = later.data_dir.clone();
    drop(later);

    let file = dir.0.join("app.yaml");
    std::fs::write(&file, APP).unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);

    // The live member finishes; the down one is named and the workflow keeps going.
    wait_for("the live member got its ConfigMap", WAIT, || {
        up.exists("configmap", "retry", "default").then_some(())
    });
    wait_for("the step names the down member", WAIT, || {
        app_field(&hub, "{.status.workflow.steps[0].message}")
            .contains("cluster later is unreachable")
            .then_some(())
    });
    assert_eq!(app_field(&hub, "{.status.status}"), "runningWorkflow");

    // The member returns on the same address: the controller retries by itself.
    let later = Server::start(
        &["member", "--name", "later", "--listen", &address],
        &later_dir,
    );
    wait_for("the returning member got its ConfigMap", WAIT, || {
        later.exists("configmap", "retry", "default").then_some(())
    });
    wait_for("the application runs", WAIT, || {
        (app_field(&hub, "{.status.status}") == "running").then_some(())
    });
    assert!(up.exists("configmap", "retry", "default"));
}
