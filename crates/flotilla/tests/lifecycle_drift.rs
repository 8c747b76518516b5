//! Issue 10, item 1 (drift): an object the hub dispatched and a user then changes or deletes on
//! the member (`kubectl scale`, `kubectl set image`, `kubectl delete`) is put back by the hub's
//! drift watch, each correction counted in `flotilla_drift_corrections_total{cluster,kind}` on
//! the hub's /metrics and recorded as an Event on the Application. An Application annotated
//! `app.oam.dev/drift: report` is left drifted and `flotilla status` names the object and field.

mod support;

use std::time::Duration;

use support::{Server, TestDir, flotilla, stdout, wait_for};

const WAIT: Duration = Duration::from_secs(60);

const APPS: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: held
  namespace: default
spec:
  components:
    - name: web
      type: k8s-objects
      properties:
        objects:
          - apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: web
            spec:
              replicas: 2
              selector:
                matchLabels: {app: web}
              template:
                metadata:
                  labels: {app: web}
                spec:
                  containers:
                    - name: web
                      image: nginx:1.25
  policies:
    - type: topology
      name: m1
      properties:
        clusters: ["m1"]
---
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: told
  namespace: default
  annotations:
    app.oam.dev/drift: report
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
              mode: blue
  policies:
    - type: topology
      name: m1
      properties:
        clusters: ["m1"]
"#;

fn field(member: &Server, kind: &str, name: &str, path: &str) -> String {
    member.jsonpath(kind, name, "default", path)
}

#[test]
fn drift_is_corrected_counted_and_reported() {
    let dir = TestDir::new("lifecycle-drift");
    let hub = Server::hub(&dir.0.join("hub"));
    let m1 = Server::member("m1", &dir.0.join("m1"));
    hub.join("m1", &m1);
    let file = dir.0.join("apps.yaml");
    std::fs::write(&file, APPS).unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    wait_for("both applications run", WAIT, || {
        ["held", "told"]
            .iter()
            .all(|app| hub.jsonpath("app", app, "default", "{.status.status}") == "running")
            .then_some(())
    });

    // kubectl scale: replicas come back.
    m1.kubectl_ok(&[
        "scale",
        "deployment",
        "web",
        "--replicas=5",
        "-n",
        "default",
    ]);
    wait_for("replicas corrected back to 2", WAIT, || {
        (field(&m1, "deployment", "web", "{.spec.replicas}") == "2").then_some(())
    });
    // kubectl set image: the image comes back.
    m1.kubectl_ok(&[
        "set",
        "image",
        "deployment/web",
        "web=nginx:1.26",
        "-n",
        "default",
    ]);
    wait_for("image corrected back to nginx:1.25", WAIT, || {
        let image = field(
            &m1,
            "deployment",
            "web",
            "{.spec.template.spec.containers[0].image}",
        );
        (image == "nginx:1.25").then_some(())
    });
    // kubectl delete: the Deployment comes back.
    m1.kubectl_ok(&[
        "delete",
        "deployment",
        "web",
        "-n",
        "default",
        "--wait=false",
    ]);
    wait_for("the deleted Deployment comes back", WAIT, || {
        m1.exists("deployment", "web", "default").then_some(())
    });

    // Counted on the hub's /metrics, per cluster and kind.
    let metrics = hub.kubectl_ok(&["get", "--raw", "/metrics"]);
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("flotilla_drift_corrections_total{")
                && l.contains("cluster=\"m1\"")
                && l.contains("kind=\"Deployment\"")
        })
        .unwrap_or_else(|| panic!("no drift counter in:\n{metrics}"));
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 3.0, "{line}");

    // An Event on the Application names what was corrected.
    wait_for("a DriftCorrected Event on the application", WAIT, || {
        let events = hub.kubectl_ok(&[
            "get",
            "events.events.k8s.io",
            "-n",
            "default",
            "-o",
            "jsonpath={range .items[*]}{.reason} {.regarding.kind}/{.regarding.name}: {.note}{\"\\n\"}{end}",
        ]);
        events
            .lines()
            .any(|l| {
                l.starts_with("DriftCorrected Application/held:")
                    && l.contains("Deployment default/web in cluster m1")
            })
            .then_some(())
    });

    // Report mode: the change stays and `flotilla status` names object and field per cluster.
    m1.kubectl_ok(&[
        "patch",
        "configmap",
        "settings",
        "-n",
        "default",
        "--type=merge",
        "-p",
        r#"{"data":{"mode":"green"}}"#,
    ]);
    let status = wait_for("flotilla status reports the drift", WAIT, || {
        let out = stdout(&flotilla(
            &hub.kubeconfig,
            &["status", "told", "-n", "default"],
        ));
        out.contains("  - Cluster: m1  ConfigMap default/settings: data.mode")
            .then_some(out)
    });
    assert!(status.contains("Drift:"), "{status}");
    assert_eq!(field(&m1, "configmap", "settings", "{.data.mode}"), "green");
    // Back to the desired value: the report clears.
    m1.kubectl_ok(&[
        "patch",
        "configmap",
        "settings",
        "-n",
        "default",
        "--type=merge",
        "-p",
        r#"{"data":{"mode":"blue"}}"#,
    ]);
    wait_for("the report clears", WAIT, || {
        let out = stdout(&flotilla(
            &hub.kubeconfig,
            &["status", "told", "-n", "default"],
        ));
        (!out.contains("Drift:")).then_some(())
    });
}
