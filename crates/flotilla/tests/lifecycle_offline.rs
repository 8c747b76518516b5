//! Issue 10, item 2 (offline members): deleting an Application, or dropping a cluster from its
//! placement, while that member is down finishes for the user at once and leaves a cleanup
//! record on the hub, shown by `flotilla status` and `flotilla cluster list`; when the member
//! comes back the leftovers are deleted and the records go. `flotilla cluster detach` says what
//! it leaves behind on the member.

mod support;

use std::time::Duration;

use support::{Server, TestDir, flotilla, stdout, wait_for};

const WAIT: Duration = Duration::from_secs(60);

fn app(name: &str, clusters: &str) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {name}
  namespace: default
spec:
  components:
    - name: {name}
      type: k8s-objects
      properties:
        objects:
          - apiVersion: v1
            kind: ConfigMap
            metadata:
              name: {name}
            data:
              k: v
  policies:
    - type: topology
      name: where
      properties:
        clusters: [{clusters}]
"#
    )
}

fn apply(hub: &Server, dir: &std::path::Path, yaml: &str) {
    let file = dir.join("app.yaml");
    std::fs::write(&file, yaml).unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
}

fn running(hub: &Server, name: &str) -> bool {
    hub.jsonpath("app", name, "default", "{.status.status}") == "running"
}

#[test]
fn cleanup_waits_for_an_offline_member_and_runs_when_it_returns() {
    let dir = TestDir::new("lifecycle-offline");
    let hub = Server::hub(&dir.0.join("hub"));
    let m1 = Server::member("m1", &dir.0.join("m1"));
    let m2 = Server::member("m2", &dir.0.join("m2"));
    hub.join("m1", &m1);
    hub.join("m2", &m2);
    for (name, clusters) in [("gone", "m1, m2"), ("moved", "m1, m2"), ("kept", "m2")] {
        apply(&hub, &dir.0, &app(name, clusters));
    }
    wait_for("the applications run", WAIT, || {
        ["gone", "moved", "kept"]
            .iter()
            .all(|a| running(&hub, a))
            .then_some(())
    });
    assert!(m2.exists("configmap", "gone", "default"));

    // m2 goes away.
    let address = m2.url().trim_start_matches("https://").to_string();
    let m2_dir = m2.data_dir.clone();
    drop(m2);

    // Deleting an application finishes at once; dropping m2 from a placement finishes too.
    hub.kubectl_ok(&["delete", "app", "gone", "-n", "default", "--timeout=30s"]);
    assert!(!hub.exists("app", "gone", "default"));
    assert!(!m1.exists("configmap", "gone", "default"));
    apply(&hub, &dir.0, &app("moved", "m1"));
    let status = wait_for("flotilla status shows the pending cleanup", WAIT, || {
        let out = stdout(&flotilla(
            &hub.kubeconfig,
            &["status", "moved", "-n", "default"],
        ));
        out.contains("  - Cluster: m2  ConfigMap default/moved")
            .then_some(out)
    });
    assert!(status.contains("Pending cleanup"), "{status}");
    let list = stdout(&flotilla(&hub.kubeconfig, &["cluster", "list"]));
    assert!(
        list.contains("  - Cluster: m2  ConfigMap default/gone"),
        "{list}"
    );
    assert!(
        list.contains("  - Cluster: m2  ConfigMap default/moved"),
        "{list}"
    );

    // m2 returns: the leftovers are deleted and the records go.
    let m2 = Server::start(&["member", "--name", "m2", "--listen", &address], &m2_dir);
    wait_for("the leftovers are deleted on m2", WAIT, || {
        (!m2.exists("configmap", "gone", "default") && !m2.exists("configmap", "moved", "default"))
            .then_some(())
    });
    wait_for("no cleanup is pending", WAIT, || {
        let list = stdout(&flotilla(&hub.kubeconfig, &["cluster", "list"]));
        (!list.contains("Pending cleanup")).then_some(())
    });
    assert!(m2.exists("configmap", "kept", "default"));
    assert!(m1.exists("configmap", "moved", "default"));

    // Detach says what stays on the member.
    let out = flotilla(&hub.kubeconfig, &["cluster", "detach", "m2"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Left on cluster m2"), "{text}");
    assert!(
        text.contains("  - ConfigMap default/kept (application default/kept)"),
        "{text}"
    );
    assert!(!text.contains("default/moved"), "{text}");
}
