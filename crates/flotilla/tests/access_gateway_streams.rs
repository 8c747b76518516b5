//! The cluster gateway streams request bodies to the member instead of reading them on the hub
//! (no hub-side size limit: a body over the hub's 3 MiB object limit reaches the member, whose
//! own limit answers), and forwards the caller's uid (`Impersonate-Uid`) with the user, so the
//! member's `whoami` and audit log see it. The member is joined with its admin kubeconfig, so
//! the hub works with the impersonate-only identity join creates.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Server, TestDir, kubectl, stderr, stdout, wait_for};

const GW: &str = "/apis/cluster.core.oam.dev/v1alpha1/clustergateways/m1/proxy";

/// A ConfigMap named `name` whose one value is `bytes` long, written to `path` as JSON.
fn config_map_file(path: &Path, name: &str, bytes: usize) {
    let object = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"blob": "x".repeat(bytes)},
    });
    std::fs::write(path, serde_json::to_vec(&object).unwrap()).unwrap();
}

/// The member's audit events (parsed), once one matches `pred`.
fn audit_event(member: &Server, pred: impl Fn(&Value) -> bool) -> Value {
    wait_for("the member's audit event", Duration::from_secs(30), || {
        std::fs::read_to_string(member.data_dir.join("audit.log"))
            .ok()?
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| pred(e))
    })
}

#[test]
fn large_bodies_stream_to_the_member() {
    let dir = TestDir::new("access-gateway-streams");
    let hub = Server::hub(&dir.0.join("hub"));
    let m1 = Server::member("m1", &dir.0.join("m1"));
    hub.join("m1", &m1);
    let configmaps = format!("{GW}/api/v1/namespaces/default/configmaps");

    // 2.5 MiB arrives whole.
    let file = dir.0.join("big.json");
    config_map_file(&file, "big", 5 << 19);
    let out = hub.kubectl(&["create", "--raw", &configmaps, "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stored = m1.jsonpath("configmap", "big", "default", "{.data.blob}");
    assert_eq!(stored.len(), 5 << 19);

    // 4 MiB is over the hub's own limit, yet the hub no longer reads it: the member does and
    // refuses it with its 413 (its audit log records the create as the caller).
    config_map_file(&file, "huge", 4 << 20);
    let out = hub.kubectl(&["create", "--raw", &configmaps, "-f", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("too large"), "{}", stderr(&out));
    let refused = audit_event(&m1, |e| {
        e["verb"] == "create"
            && e["objectRef"]["resource"] == "configmaps"
            && e["responseStatus"]["code"] == 413
    });
    assert_eq!(
        refused["impersonatedUser"]["username"], "admin",
        "{refused}"
    );
}

#[test]
fn the_callers_uid_reaches_the_member() {
    let dir = TestDir::new("access-gateway-uid");
    let hub = Server::hub(&dir.0.join("hub"));
    let m1 = Server::member("m1", &dir.0.join("m1"));
    hub.join("m1", &m1);
    // A hub ServiceAccount (its user has a uid) allowed through the gateway to m1.
    hub.kubectl_ok(&["create", "serviceaccount", "robot", "-n", "default"]);
    hub.kubectl_ok(&[
        "create",
        "clusterrole",
        "gateway-m1",
        "--verb=get,create",
        "--resource=clustergateways.cluster.core.oam.dev/proxy",
        "--resource-name=m1",
    ]);
    hub.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "gateway-m1",
        "--clusterrole=gateway-m1",
        "--serviceaccount=default:robot",
    ]);
    let uid = hub.jsonpath("serviceaccount", "robot", "default", "{.metadata.uid}");
    assert!(!uid.is_empty());
    let token = hub.kubectl_ok(&["create", "token", "robot", "-n", "default"]);
    let robot = dir.0.join("robot.kubeconfig");
    hub.write_token_kubeconfig(&robot, "robot", &token);

    let server = format!("{}{GW}", hub.url());
    let out = kubectl(
        &robot,
        &["--server", &server, "auth", "whoami", "-o", "json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let review: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let user = &review["status"]["userInfo"];
    assert_eq!(
        user["username"], "system:serviceaccount:default:robot",
        "{review}"
    );
    assert_eq!(user["uid"], uid.as_str(), "{review}");

    // The member's audit log names the uid too (a denied list is audited).
    let out = kubectl(
        &robot,
        &["--server", &server, "get", "secrets", "-n", "default"],
    );
    assert!(!out.status.success());
    let denied = audit_event(&m1, |e| {
        e["objectRef"]["resource"] == "secrets" && e["responseStatus"]["code"] == 403
    });
    assert_eq!(
        denied["user"]["username"], "system:flotilla:hub",
        "{denied}"
    );
    assert_eq!(denied["impersonatedUser"]["uid"], uid.as_str(), "{denied}");
}
