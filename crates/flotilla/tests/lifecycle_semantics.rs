//! Issue 10, item 5 (KubeVela semantics that differed), with real members and kubectl:
//! anonymous policies; `k8s-objects` objects without a name take the component's; an object
//! labelled `app.oam.dev/cluster` goes to that cluster only; a workload on `local` says at once
//! that it can never become healthy; a kind the member does not serve yet keeps the workflow
//! running and is retried until a CRD arrives; the `app.oam.dev/orphan-resource` finalizer;
//! several `garbage-collect` policies combining, with `propagation: orphan`; `shared-resource`
//! with `app.oam.dev/shared-by` and ownership passing on.

mod support;

use std::time::Duration;

use support::{Server, TestDir, wait_for};

const WAIT: Duration = Duration::from_secs(40);

fn apply(hub: &Server, dir: &TestDir, name: &str, yaml: &str) {
    let file = dir.0.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
}

fn app(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n{spec}"
    )
}

fn field(hub: &Server, app: &str, path: &str) -> String {
    hub.jsonpath("app", app, "default", path)
}

fn wait_phase(hub: &Server, app: &str, phase: &str) {
    wait_for(&format!("{app} reaches {phase}"), WAIT, || {
        (field(hub, app, "{.status.status}") == phase).then_some(())
    });
}

fn wait_gone(server: &Server, kind: &str, name: &str) {
    wait_for(&format!("{kind} {name} is gone"), WAIT, || {
        (!server.exists(kind, name, "default")).then_some(())
    });
}

const PINNED: &str = r#"  components:
    - name: cfg
      type: k8s-objects
      properties:
        objects:
          - {apiVersion: v1, kind: ConfigMap, data: {where: topology}}
          - apiVersion: v1
            kind: ConfigMap
            metadata: {name: only-m2, labels: {app.oam.dev/cluster: m2}}
    - name: api
      type: webservice
      properties: {image: nginx:1.25}
      traits:
        - {type: labels, properties: {app.oam.dev/cluster: m2}}
        - {type: expose, properties: {port: [80]}}
  policies:
    - type: topology
      properties: {clusters: ["m1"]}
"#;

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

const LATER: &str = r#"  components:
    - name: gadget
      type: k8s-objects
      properties:
        objects:
          - {apiVersion: example.com/v1, kind: Widget, spec: {size: 3}}
  policies:
    - {type: topology, properties: {clusters: ["m1"]}}
"#;

#[test]
fn kubevela_semantics() {
    let dir = TestDir::new("lifecycle-semantics");
    let hub = Server::hub(&dir.0.join("hub"));
    let m1 = Server::member("m1", &dir.0.join("m1"));
    let m2 = Server::member("m2", &dir.0.join("m2"));
    hub.join("m1", &m1);
    hub.join("m2", &m2);

    // Anonymous topology policy, a nameless object, a pinned object.
    apply(&hub, &dir, "pinned", &app("pinned", PINNED));
    wait_phase(&hub, "pinned", "running");
    assert_eq!(
        field(&hub, "pinned", "{.status.workflow.steps[0].name}"),
        "deploy-topology"
    );
    assert_eq!(
        m1.jsonpath("cm", "cfg", "default", "{.data.where}"),
        "topology"
    );
    assert!(m2.exists("cm", "only-m2", "default"));
    assert!(!m1.exists("cm", "only-m2", "default"));
    assert!(!m2.exists("cm", "cfg", "default"));
    assert!(m2.exists("deployment", "api", "default") && m2.exists("service", "api", "default"));
    assert!(!m1.exists("deployment", "api", "default") && !m1.exists("service", "api", "default"));

    // A workload on `local` says at once why it will never be healthy.
    let local =
        "  components:\n    - {name: web, type: webservice, properties: {image: nginx:1.25}}\n";
    apply(&hub, &dir, "onhub", &app("onhub", local));
    wait_for("the local step explains itself", WAIT, || {
        field(&hub, "onhub", "{.status.workflow.steps[0].message}")
            .contains("Deployment default/web on cluster local will never become healthy")
            .then_some(())
    });

    // A kind m1 does not serve yet: running, retried, done once the CRD is there.
    apply(&hub, &dir, "later", &app("later", LATER));
    wait_for("the step waits for the kind", WAIT, || {
        let reason = field(&hub, "later", "{.status.workflow.steps[0].reason}");
        (reason == "Retry").then_some(())
    });
    assert_eq!(field(&hub, "later", "{.status.status}"), "runningWorkflow");
    let message = field(&hub, "later", "{.status.workflow.steps[0].message}");
    assert!(message.contains("does not serve kind Widget"), "{message}");
    let crd = dir.0.join("crd.yaml");
    std::fs::write(&crd, CRD).unwrap();
    m1.kubectl_ok(&["apply", "-f", crd.to_str().unwrap()]);
    wait_phase(&hub, "later", "running");
    assert_eq!(
        m1.jsonpath("widget", "gadget", "default", "{.spec.size}"),
        "3"
    );

    // The orphan finalizer: the application goes, its objects stay.
    hub.kubectl_ok(&[
        "patch",
        "app",
        "pinned",
        "-n",
        "default",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/metadata/finalizers/-","value":"app.oam.dev/orphan-resource"}]"#,
    ]);
    hub.kubectl_ok(&["delete", "app", "pinned", "-n", "default", "--wait=false"]);
    wait_gone(&hub, "app", "pinned");
    assert!(m1.exists("cm", "cfg", "default"));
    assert!(m2.exists("cm", "only-m2", "default"));
}

const GC: &str = r#"  components:
    - {name: web, type: webservice, properties: {image: nginx:1.25}}
    - name: db
      type: k8s-objects
      properties:
        objects: [{apiVersion: v1, kind: ConfigMap, data: {k: v}}]
  policies:
    - {type: topology, properties: {clusters: ["m1"]}}
    - type: garbage-collect
      properties:
        rules: [{selector: {resourceTypes: ["Deployment"]}, propagation: orphan}]
    - type: garbage-collect
      properties:
        rules: [{selector: {componentNames: ["db"]}, strategy: never}]
"#;

fn shared(name: &str, value: &str) -> String {
    app(
        name,
        &format!(
            r#"  components:
    - name: cm
      type: k8s-objects
      properties:
        objects: [{{apiVersion: v1, kind: ConfigMap, metadata: {{name: shared-cm}}, data: {{by: {value}}}}}]
  policies:
    - {{type: topology, properties: {{clusters: ["m1"]}}}}
    - {{type: shared-resource, properties: {{rules: [{{selector: {{resourceTypes: ["ConfigMap"]}}}}]}}}}
"#
        ),
    )
}

#[test]
fn garbage_collect_policies_and_shared_resources() {
    let dir = TestDir::new("lifecycle-semantics-gc");
    let hub = Server::hub(&dir.0.join("hub"));
    let m1 = Server::member("m1", &dir.0.join("m1"));
    hub.join("m1", &m1);

    // Two garbage-collect policies: both count.
    apply(&hub, &dir, "gc", &app("gcapp", GC));
    wait_phase(&hub, "gcapp", "running");
    let replicasets = || {
        m1.kubectl_ok(&[
            "get",
            "rs",
            "-n",
            "default",
            "-l",
            "app.oam.dev/component=web",
            "-o",
            "name",
        ])
    };
    assert!(!replicasets().trim().is_empty());
    hub.kubectl_ok(&["delete", "app", "gcapp", "-n", "default"]);
    wait_gone(&m1, "deployment", "web");
    assert!(
        !replicasets().trim().is_empty(),
        "propagation: orphan keeps the ReplicaSet"
    );
    assert!(m1.exists("cm", "db", "default"), "strategy: never keeps db");

    // Shared: recorded in shared-by; the object outlives its first owner.
    let shared_by = || {
        m1.jsonpath(
            "cm",
            "shared-cm",
            "default",
            r"{.metadata.annotations.app\.oam\.dev/shared-by}",
        )
    };
    let owner = || {
        m1.jsonpath(
            "cm",
            "shared-cm",
            "default",
            r"{.metadata.labels.app\.oam\.dev/name}",
        )
    };
    apply(&hub, &dir, "share-a", &shared("share-a", "a"));
    wait_phase(&hub, "share-a", "running");
    apply(&hub, &dir, "share-b", &shared("share-b", "b"));
    wait_phase(&hub, "share-b", "running");
    wait_for("both sharers are recorded", WAIT, || {
        (shared_by() == "default/share-a,default/share-b").then_some(())
    });
    hub.kubectl_ok(&["delete", "app", "share-a", "-n", "default"]);
    wait_for("ownership passes to share-b", WAIT, || {
        (owner() == "share-b").then_some(())
    });
    assert_eq!(shared_by(), "default/share-b");
    hub.kubectl_ok(&["delete", "app", "share-b", "-n", "default"]);
    wait_gone(&m1, "cm", "shared-cm");
}
