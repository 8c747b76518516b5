//! SPEC 4.2 `apply-once`: listed fields are set at creation and then left to the member (the
//! HPA case: `spec.replicas`), while the rest of the spec still follows the application.

mod support;

use std::time::Duration;

use support::{Server, TestDir, stdout, wait_for};

const WAIT: Duration = Duration::from_secs(60);

fn app(image: &str) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: web
  namespace: default
spec:
  components:
    - name: web
      type: webservice
      properties:
        image: {image}
      traits:
        - type: scaler
          properties:
            replicas: 2
  policies:
    - type: topology
      name: here
      properties:
        clusters: ["edge"]
    - type: apply-once
      name: hpa-owns-replicas
      properties:
        enable: true
        rules:
          - selector:
              resourceTypes: ["Deployment"]
            strategy:
              path: ["spec.replicas"]
"#
    )
}

fn deployment(member: &Server) -> String {
    stdout(&member.kubectl(&[
        "get",
        "deployment",
        "web",
        "-n",
        "default",
        "-o",
        "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}",
    ]))
}

#[test]
fn apply_once_fields_are_left_to_the_member() {
    let dir = TestDir::new("apply-once");
    let hub = Server::hub(&dir.0.join("hub"));
    let member = Server::member("edge", &dir.0.join("edge"));
    hub.join("edge", &member);
    let file = dir.0.join("app.yaml");
    std::fs::write(&file, app("nginx:1")).unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    wait_for("created with 2 replicas", WAIT, || {
        (deployment(&member) == "2 nginx:1").then_some(())
    });

    // Something in the member (an HPA) scales it; a new revision keeps that, updates the rest.
    member.kubectl_ok(&[
        "scale",
        "deployment",
        "web",
        "-n",
        "default",
        "--replicas=4",
    ]);
    std::fs::write(&file, app("nginx:2")).unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    wait_for("image updated", WAIT, || {
        deployment(&member).ends_with("nginx:2").then_some(())
    });
    assert_eq!(deployment(&member), "4 nginx:2");
    wait_for("running", WAIT, || {
        let phase = hub.jsonpath(
            "app",
            "web",
            "default",
            "{.status.status} {.status.services[0].message}",
        );
        (phase == "running Ready:4/4").then_some(())
    });
}
