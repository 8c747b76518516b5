//! Issue 10, item 4 (policies end to end, with real members and kubectl): `take-over` adopts
//! an object of no application (refused without it); `read-only` neither writes nor deletes;
//! `apply-once` paths are left to the member; `garbage-collect` with `keepLegacyResource` and
//! rules of strategy `onAppDelete` / `never`; revision pruning (`--application-revision-limit`);
//! `flotilla workflow rollback` bringing every member back and restoring the revision's
//! recorded copies of the standalone Policy and Workflow.

mod support;

use std::time::Duration;

use support::{Server, TestDir, flotilla, stderr, stdout, wait_for};

const WAIT: Duration = Duration::from_secs(40);

fn apply(hub: &Server, dir: &TestDir, name: &str, yaml: &str) {
    let file = dir.0.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
}

/// An application of ConfigMap components (`name: {data}`) on `m1` with extra policies.
fn app(name: &str, configmaps: &[(&str, &str)], policies: &str) -> String {
    let mut yaml = format!(
        "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  components:\n"
    );
    for (cm, data) in configmaps {
        yaml.push_str(&format!(
            "    - name: {cm}\n      type: k8s-objects\n      properties:\n        objects: [{{apiVersion: v1, kind: ConfigMap, data: {data}}}]\n"
        ));
    }
    yaml.push_str("  policies:\n    - {type: topology, properties: {clusters: [\"m1\"]}}\n");
    yaml.push_str(policies);
    yaml
}

fn field(hub: &Server, app: &str, path: &str) -> String {
    hub.jsonpath("app", app, "default", path)
}

fn wait_running(hub: &Server, app: &str, revision: &str) {
    let now = || {
        field(
            hub,
            app,
            "{.status.status} {.status.latestRevision.name} {.status.workflow.finished}",
        )
    };
    let want = format!("running {revision} true");
    wait_for(&format!("{app} runs {revision}"), WAIT, || {
        let now = now();
        (now == want).then_some(())
    });
}

fn data(member: &Server, cm: &str, key: &str) -> String {
    member.jsonpath("cm", cm, "default", &format!("{{.data.{key}}}"))
}

fn wait_gone(server: &Server, kind: &str, name: &str) {
    wait_for(&format!("{kind} {name} is gone"), WAIT, || {
        (!server.exists(kind, name, "default")).then_some(())
    });
}

#[test]
fn resource_policies_and_revision_pruning() {
    let dir = TestDir::new("lifecycle-policies");
    let hub = Server::start(
        &[
            "hub",
            "--listen",
            "127.0.0.1:0",
            "--application-revision-limit",
            "3",
        ],
        &dir.0.join("hub"),
    );
    let m1 = Server::member("m1", &dir.0.join("m1"));
    hub.join("m1", &m1);
    for (cm, value) in [("legacy", "old"), ("ro", "member")] {
        m1.kubectl_ok(&[
            "create",
            "configmap",
            cm,
            "-n",
            "default",
            &format!("--from-literal=k={value}"),
        ]);
    }

    // keepLegacyResource: a removed component's object stays (checked at the end, after the
    // other applications have been through several passes).
    let keep = "    - {type: garbage-collect, properties: {keepLegacyResource: true}}\n";
    apply(
        &hub,
        &dir,
        "keep",
        &app(
            "keep",
            &[("kx", r#"{k: "x"}"#), ("ky", r#"{k: "y"}"#)],
            keep,
        ),
    );
    wait_running(&hub, "keep", "keep-v1");
    apply(
        &hub,
        &dir,
        "keep",
        &app(
            "keep",
            &[("kx", r#"{k: "x"}"#), ("kz", r#"{k: "z"}"#)],
            keep,
        ),
    );
    wait_running(&hub, "keep", "keep-v2");
    assert_eq!(data(&m1, "kz", "k"), "z");

    // take-over: refused without it, adopted with it.
    let legacy = [("legacy", r#"{k: "new"}"#)];
    apply(&hub, &dir, "adopt", &app("adopt", &legacy, ""));
    wait_for("the unowned object is refused", WAIT, || {
        field(&hub, "adopt", "{.status.workflow.steps[0].message}")
            .contains("ConfigMap default/legacy exists but not managed by any application")
            .then_some(())
    });
    assert_eq!(data(&m1, "legacy", "k"), "old");
    let take_over =
        "    - {type: take-over, properties: {rules: [{selector: {resourceNames: [legacy]}}]}}\n";
    apply(&hub, &dir, "adopt", &app("adopt", &legacy, take_over));
    wait_for("legacy is adopted", WAIT, || {
        (data(&m1, "legacy", "k") == "new").then_some(())
    });
    assert_eq!(
        m1.jsonpath(
            "cm",
            "legacy",
            "default",
            r"{.metadata.labels.app\.oam\.dev/name}"
        ),
        "adopt"
    );

    // read-only: never written, never deleted.
    let read_only =
        "    - {type: read-only, properties: {rules: [{selector: {resourceNames: [ro]}}]}}\n";
    apply(
        &hub,
        &dir,
        "viewer",
        &app("viewer", &[("ro", r#"{k: "app"}"#)], read_only),
    );
    wait_running(&hub, "viewer", "viewer-v1");
    assert_eq!(data(&m1, "ro", "k"), "member");
    hub.kubectl_ok(&["delete", "app", "viewer", "-n", "default"]);
    wait_gone(&hub, "app", "viewer");
    assert_eq!(data(&m1, "ro", "k"), "member");

    // apply-once: the listed path is set at creation, then left to the member.
    let once = "    - {type: apply-once, properties: {enable: true, rules: [{selector: {resourceNames: [once]}, strategy: {path: [data.k]}}]}}\n";
    apply(
        &hub,
        &dir,
        "once",
        &app("once", &[("once", r#"{k: "v1", other: "a"}"#)], once),
    );
    wait_running(&hub, "once", "once-v1");
    m1.kubectl_ok(&[
        "patch",
        "cm",
        "once",
        "-n",
        "default",
        "-p",
        r#"{"data":{"k":"member"}}"#,
    ]);
    apply(
        &hub,
        &dir,
        "once",
        &app("once", &[("once", r#"{k: "v2", other: "b"}"#)], once),
    );
    wait_for(
        "the rest of the object follows the application",
        WAIT,
        || (data(&m1, "once", "other") == "b").then_some(()),
    );
    assert_eq!(data(&m1, "once", "k"), "member");

    garbage_collect_rules(&hub, &dir, &m1);
    revision_pruning(&hub, &dir);

    assert_eq!(data(&m1, "ky", "k"), "y", "keepLegacyResource keeps ky");
}

/// Rules: `b` only goes with the application, `c` never; `e` (no rule) goes at once.
fn garbage_collect_rules(hub: &Server, dir: &TestDir, m1: &Server) {
    let gc = "    - type: garbage-collect\n      properties:\n        rules:\n          - {selector: {componentNames: [b]}, strategy: onAppDelete}\n          - {selector: {componentNames: [c]}, strategy: never}\n";
    let all = [
        ("a", r#"{k: "a"}"#),
        ("b", r#"{k: "b"}"#),
        ("c", r#"{k: "c"}"#),
        ("e", r#"{k: "e"}"#),
    ];
    apply(hub, dir, "gc", &app("gc", &all, gc));
    wait_running(hub, "gc", "gc-v1");
    apply(hub, dir, "gc", &app("gc", &all[..1], gc));
    wait_gone(m1, "cm", "e");
    assert!(m1.exists("cm", "b", "default") && m1.exists("cm", "c", "default"));
    hub.kubectl_ok(&["delete", "app", "gc", "-n", "default"]);
    wait_gone(hub, "app", "gc");
    wait_gone(m1, "cm", "a");
    wait_gone(m1, "cm", "b");
    assert_eq!(data(m1, "c", "k"), "c", "strategy never keeps c");
}

/// With `--application-revision-limit 3`, five revisions leave the newest three.
fn revision_pruning(hub: &Server, dir: &TestDir) {
    for n in 1..=5 {
        let value = format!("{{k: \"{n}\"}}");
        apply(hub, dir, "rev", &app("rev", &[("rev", &value)], ""));
        wait_running(hub, "rev", &format!("rev-v{n}"));
    }
    let names = hub.kubectl_ok(&[
        "get",
        "applicationrevisions",
        "-n",
        "default",
        "-l",
        "app.oam.dev/name=rev",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    let mut names: Vec<&str> = names.split_whitespace().collect();
    names.sort();
    assert_eq!(names, ["rev-v3", "rev-v4", "rev-v5"]);
}

const FLEET_V1: &str = r#"apiVersion: core.oam.dev/v1alpha1
kind: Policy
metadata: {name: where, namespace: default}
type: topology
properties: {clusters: ["m1", "m2"]}
---
apiVersion: core.oam.dev/v1alpha1
kind: Workflow
metadata: {name: flow, namespace: default}
steps:
  - {name: ship, type: deploy, properties: {policies: ["where"]}}
---
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: roll
  namespace: default
  annotations: {app.oam.dev/publishVersion: "1"}
spec:
  components:
    - name: cfg
      type: k8s-objects
      properties:
        objects: [{apiVersion: v1, kind: ConfigMap, data: {v: "1"}}]
  workflow: {ref: flow}
"#;

fn fleet_v2() -> String {
    FLEET_V1
        .replace(r#"["m1", "m2"]"#, r#"["m2"]"#)
        .replace("name: ship,", "name: ship-v2,")
        .replace(r#"{v: "1"}"#, r#"{v: "2"}"#)
        .replace(r#"publishVersion: "1""#, r#"publishVersion: "2""#)
}

#[test]
fn rollback_restores_members_policies_and_workflow() {
    let dir = TestDir::new("lifecycle-rollback");
    let hub = Server::hub(&dir.0.join("hub"));
    let m1 = Server::member("m1", &dir.0.join("m1"));
    let m2 = Server::member("m2", &dir.0.join("m2"));
    hub.join("m1", &m1);
    hub.join("m2", &m2);
    apply(&hub, &dir, "fleet-v1", FLEET_V1);
    wait_running(&hub, "roll", "roll-v1");
    assert_eq!(
        (data(&m1, "cfg", "v"), data(&m2, "cfg", "v")),
        ("1".into(), "1".into())
    );

    apply(&hub, &dir, "fleet-v2", &fleet_v2());
    wait_running(&hub, "roll", "roll-v2");
    wait_gone(&m1, "cm", "cfg");
    assert_eq!(data(&m2, "cfg", "v"), "2");
    assert_eq!(
        field(&hub, "roll", "{.status.workflow.steps[0].name}"),
        "ship-v2"
    );

    let out = flotilla(
        &hub.kubeconfig,
        &["workflow", "rollback", "roll", "-n", "default"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "Successfully rollback workflow: roll");
    wait_running(&hub, "roll", "roll-v3");
    for member in [&m1, &m2] {
        wait_for("the member is back at v1", WAIT, || {
            (data(member, "cfg", "v") == "1").then_some(())
        });
    }
    assert_eq!(
        hub.jsonpath("policy", "where", "default", "{.properties.clusters}"),
        r#"["m1","m2"]"#
    );
    assert_eq!(
        hub.jsonpath("workflow", "flow", "default", "{.steps[0].name}"),
        "ship"
    );
    assert_eq!(
        field(&hub, "roll", "{.status.workflow.steps[0].name}"),
        "ship"
    );
    assert_eq!(
        field(
            &hub,
            "roll",
            r"{.metadata.annotations.app\.oam\.dev/publishVersion}"
        ),
        "1"
    );
}
