//! Acceptance (issue 2, "Deliver" items without another end-to-end test): `dryRun=All` stores
//! nothing on create, update, patch and delete; the `/status` subresource writes status only
//! and the main resource ignores status; a watch with `allowWatchBookmarks` and
//! `sendInitialEvents` ends its initial events with a BOOKMARK; `/healthz`, `/livez`,
//! `/readyz`, `/version`, `/metrics`, `/openapi/v2` answer; `/openapi/v3` declares
//! `fieldValidation` on PATCH. All through real kubectl.

mod support;

use support::{Server, stderr, stdout, temp_dir};

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: nginx:1.25
"#;

fn jsonpath(hub: &Server, what: &[&str], path: &str) -> String {
    let mut args = vec!["get"];
    args.extend(what);
    let expr = format!("jsonpath={path}");
    args.extend(["-o", &expr]);
    hub.kubectl_ok(&args)
}

#[test]
fn dry_run_status_bookmarks_and_health_endpoints() {
    let dir = temp_dir("acceptance-hub-api");
    let hub = Server::hub(&dir.join("hub"));

    // dryRun=All on create: the object is returned, nothing is stored.
    let out = hub.kubectl(&[
        "create",
        "configmap",
        "dry",
        "--from-literal=a=b",
        "--dry-run=server",
        "-o",
        "yaml",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("name: dry"), "{}", stdout(&out));
    let out = hub.kubectl(&["get", "configmap", "dry"]);
    assert!(
        stderr(&out).contains("configmaps \"dry\" not found"),
        "a dry-run create stored the object: {}",
        stdout(&out)
    );
    // dryRun=All still validates.
    let out = hub.kubectl(&[
        "create",
        "deployment",
        "bad",
        "--image=nginx",
        "--replicas=-1",
        "--dry-run=server",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("spec.replicas"), "{}", stderr(&out));

    let file = dir.join("deployment.yaml");
    std::fs::write(&file, DEPLOYMENT).unwrap();
    let f = file.to_str().unwrap();
    hub.kubectl_ok(&["apply", "-f", f]);
    let rv = jsonpath(&hub, &["deployment", "web"], "{.metadata.resourceVersion}");

    // dryRun=All on patch, apply and delete: nothing changes.
    hub.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":5}}"#,
        "--dry-run=server",
    ]);
    std::fs::write(&file, DEPLOYMENT.replace("replicas: 2", "replicas: 6")).unwrap();
    let out = hub.kubectl_ok(&["apply", "-f", f, "--dry-run=server"]);
    assert!(out.contains("(server dry run)"), "{out}");
    let out = hub.kubectl_ok(&["apply", "--server-side", "-f", f, "--dry-run=server"]);
    assert!(out.contains("(server dry run)"), "{out}");
    let out = hub.kubectl_ok(&["delete", "deployment", "web", "--dry-run=server"]);
    assert!(out.contains("(server dry run)"), "{out}");
    assert_eq!(
        jsonpath(
            &hub,
            &["deployment", "web"],
            "{.spec.replicas} {.metadata.resourceVersion}"
        ),
        format!("2 {rv}"),
        "a dry run changed the stored object"
    );

    // /status writes status only; the main resource ignores status.
    hub.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":9},"status":{"replicas":7,"readyReplicas":7}}"#,
    ]);
    assert_eq!(
        jsonpath(
            &hub,
            &["deployment", "web"],
            "{.spec.replicas} {.status.readyReplicas}"
        ),
        "2 7"
    );
    hub.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":3},"status":{"readyReplicas":1}}"#,
    ]);
    assert_eq!(
        jsonpath(
            &hub,
            &["deployment", "web"],
            "{.spec.replicas} {.status.readyReplicas}"
        ),
        "3 7"
    );
    // /scale reads and writes spec.replicas.
    let scale = hub.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
    ]);
    let scale: serde_json::Value = serde_json::from_str(&scale).unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 3);

    // A watch with bookmarks and initial events ends the initial events with a BOOKMARK.
    let events = hub.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments?watch=1&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1",
    ]);
    let events: Vec<serde_json::Value> = events
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    assert_eq!(
        events.first().map(|e| e["type"].clone()),
        Some("ADDED".into())
    );
    let bookmark = events
        .iter()
        .find(|e| e["type"] == "BOOKMARK")
        .unwrap_or_else(|| panic!("no BOOKMARK in {events:?}"));
    assert_eq!(
        bookmark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert!(bookmark["object"]["metadata"]["resourceVersion"].is_string());

    // Health, version, metrics and OpenAPI.
    for path in ["/healthz", "/livez", "/readyz"] {
        assert_eq!(
            hub.kubectl_ok(&["get", "--raw", path]).trim(),
            "ok",
            "{path}"
        );
    }
    let version: serde_json::Value =
        serde_json::from_str(&hub.kubectl_ok(&["get", "--raw", "/version"])).unwrap();
    assert_eq!(version["major"], "1");
    assert!(version["gitVersion"].as_str().unwrap().starts_with("v1."));
    let metrics = hub.kubectl_ok(&["get", "--raw", "/metrics"]);
    assert!(metrics.contains("# TYPE"), "{metrics}");
    let v2: serde_json::Value =
        serde_json::from_str(&hub.kubectl_ok(&["get", "--raw", "/openapi/v2"])).unwrap();
    assert_eq!(v2["swagger"], "2.0");
    let v3: serde_json::Value =
        serde_json::from_str(&hub.kubectl_ok(&["get", "--raw", "/openapi/v3"])).unwrap();
    let apps = v3["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .expect("apps/v1 in /openapi/v3");
    let doc = hub.kubectl_ok(&["get", "--raw", apps]);
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert!(
        patch["parameters"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["name"] == "fieldValidation")),
        "PATCH declares fieldValidation: {patch}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
