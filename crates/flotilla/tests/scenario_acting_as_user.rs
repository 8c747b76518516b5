//! SPEC 4.7 end to end: an Application is dispatched as the user who created it. The hub
//! records the authenticated user on the Application (overwriting what the user wrote), every
//! member request impersonates that user, the member's RBAC decides, and its audit log shows
//! the user.

mod support;

use std::time::Duration;

use support::{Server, TestDir, create_user_kubeconfig, kubectl, stderr, wait_for};

const WAIT: Duration = Duration::from_secs(60);

const APP: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: settings
  namespace: default
  annotations:
    app.oam.dev/username: admin
spec:
  components:
    - name: settings
      type: k8s-objects
      properties:
        objects:
          - apiVersion: v1
            kind: ConfigMap
            metadata:
              name: settings
            data:
              color: blue
  policies:
    - type: topology
      name: beijing
      properties:
        clusters: ["beijing-1"]
"#;

#[test]
fn applications_are_dispatched_as_their_user() {
    let dir = TestDir::new("acting-as-user");
    let hub = Server::hub(&dir.0.join("hub"));
    let member = Server::member("beijing-1", &dir.0.join("beijing-1"));
    hub.join("beijing-1", &member);

    // alice may manage Applications on the hub, and nothing on the member yet.
    let alice = dir.0.join("alice.kubeconfig");
    create_user_kubeconfig(&hub, "alice", &["dev"], &alice);
    hub.kubectl_ok(&[
        "create",
        "role",
        "app-editor",
        "-n",
        "default",
        "--verb=*",
        "--resource=applications.core.oam.dev",
    ]);
    hub.kubectl_ok(&[
        "create",
        "rolebinding",
        "alice-apps",
        "-n",
        "default",
        "--role=app-editor",
        "--user=alice",
    ]);
    let app_file = dir.0.join("app.yaml");
    std::fs::write(&app_file, APP).unwrap();
    let out = kubectl(&alice, &["apply", "-f", app_file.to_str().unwrap()]);
    assert!(out.status.success(), "alice applies: {}", stderr(&out));

    // The hub recorded alice (not what she wrote).
    let recorded = hub.jsonpath("app", "settings", "default", "{.metadata.annotations.app\\.oam\\.dev/username} {.metadata.annotations.app\\.oam\\.dev/group}");
    let mut parts = recorded.split_whitespace();
    assert_eq!(parts.next(), Some("alice"), "{recorded}");
    assert!(
        parts.next().unwrap_or("").split(',').any(|g| g == "dev"),
        "{recorded}"
    );

    // The member refuses alice: the step fails naming the cluster, with the member's message.
    let message = wait_for("the deploy step to fail", WAIT, || {
        let m = hub.jsonpath(
            "app",
            "settings",
            "default",
            "{.status.workflow.steps[0].message}",
        );
        m.contains("forbidden").then_some(m)
    });
    assert!(message.contains("beijing-1"), "{message}");
    assert!(message.contains("User \"alice\""), "{message}");
    assert!(
        !member
            .kubectl(&["get", "configmap", "settings", "-n", "default"])
            .status
            .success()
    );

    // Granted on the member, the retry succeeds and the member's audit log shows alice.
    member.kubectl_ok(&[
        "create",
        "role",
        "cm-editor",
        "-n",
        "default",
        "--verb=*",
        "--resource=configmaps",
    ]);
    member.kubectl_ok(&[
        "create",
        "rolebinding",
        "alice-cm",
        "-n",
        "default",
        "--role=cm-editor",
        "--user=alice",
    ]);
    wait_for("the application to run", WAIT, || {
        (hub.jsonpath("app", "settings", "default", "{.status.status}") == "running").then_some(())
    });
    let color = member.jsonpath("configmap", "settings", "default", "{.data.color}");
    assert_eq!(color, "blue");
    let audit = std::fs::read_to_string(member.data_dir.join("audit.log")).unwrap();
    let created = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| {
            e["objectRef"]["resource"] == "configmaps"
                && e["objectRef"]["name"] == "settings"
                && e["verb"] == "patch"
                && e["responseStatus"]["code"]
                    .as_i64()
                    .is_some_and(|c| c < 300)
        })
        .expect("the member audited the apply");
    assert_eq!(
        created["impersonatedUser"]["username"], "alice",
        "{created}"
    );
}
