//! Acceptance (issue 5, Deliver 5): an unknown trait type is a clear message on the
//! Application (the other unknowns, cluster, policy and component type, are covered by
//! `scenario_failures.rs`). The workflow fails with the message in `status.workflow` and in
//! `flotilla status`.

mod support;

use std::time::Duration;

use support::{Server, flotilla, stdout, temp_dir, wait_for};

const APP: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: badtrait
  namespace: default
spec:
  components:
    - name: web
      type: webservice
      properties:
        image: nginx:1.25
      traits:
        - type: sidecar-magic
          properties: {}
"#;

#[test]
fn an_unknown_trait_type_is_named_on_the_application() {
    let dir = temp_dir("acceptance-app-errors");
    let hub = Server::hub(&dir.join("hub"));
    let file = dir.join("app.yaml");
    std::fs::write(&file, APP).unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    let expected = "component web: unknown trait type \"sidecar-magic\"";
    wait_for("the workflow to fail", Duration::from_secs(60), || {
        let seen = hub.kubectl_ok(&[
            "get",
            "app",
            "badtrait",
            "-n",
            "default",
            "-o",
            "jsonpath={.status.status}|{.status.workflow.steps[0].message}",
        ]);
        (seen == format!("workflowFailed|{expected}")).then_some(())
    });
    let status = stdout(&flotilla(&hub.kubeconfig, &["status", "badtrait"]));
    assert!(status.contains(expected), "{status}");
    assert!(
        !hub.kubectl(&["get", "deployment", "web", "-n", "default"])
            .status
            .success(),
        "nothing is dispatched when rendering fails"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
