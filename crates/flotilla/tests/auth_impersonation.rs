//! Impersonation, the audit log and ServiceAccount tokens on a real hub, with real kubectl.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{Server, TestDir, custom_kubeconfig, kubectl, stderr, stdout, user_kubeconfig};

fn run(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    // kubectl's discovery cache lives beside the kubeconfig, not in $HOME: the impersonation
    // checks below rely on it.
    let cache = kubeconfig
        .parent()
        .unwrap_or(Path::new("."))
        .join("kube-cache");
    let mut all = vec!["--cache-dir", cache.to_str().unwrap_or(".")];
    all.extend_from_slice(args);
    let out = kubectl(kubeconfig, &all);
    (out.status.success(), stdout(&out), stderr(&out))
}

fn audit_events(hub: &Server) -> Vec<serde_json::Value> {
    std::fs::read_to_string(hub.data_dir.join("audit.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn impersonation_is_authorized_per_user_and_audited() {
    let dir = TestDir::new("auth-hub");
    let hub = Server::hub(dir.path());
    let alice = user_kubeconfig(&hub, "alice", &[]);
    hub.kubectl_ok(&["create", "namespace", "team"]);
    hub.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "rolebinding",
        "bob-edit",
        "--clusterrole=edit",
        "--user=bob",
    ]);

    // kubectl caches discovery (which alice may read); with --as and no right to
    // impersonate, discovery itself is refused and kubectl can only print "unknown", as
    // against any Kubernetes API server.
    let (ok, _, err) = run(&alice, &["api-resources"]);
    assert!(ok, "{err}");

    // Without the impersonate right.
    let (ok, _, err) = run(&alice, &["get", "configmaps", "-n", "team", "--as", "bob"]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "Error from server (Forbidden): users \"bob\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
    );

    // Allowed to impersonate bob, and only bob.
    hub.kubectl_ok(&[
        "create",
        "clusterrole",
        "impersonate-bob",
        "--verb=impersonate",
        "--resource=users",
        "--resource-name=bob",
    ]);
    hub.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "alice-as-bob",
        "--clusterrole=impersonate-bob",
        "--user=alice",
    ]);
    let (ok, out, err) = run(&alice, &["auth", "whoami", "--as", "bob"]);
    assert!(ok, "{err}");
    assert!(out.contains("bob") && !out.contains("alice"), "{out}");
    let (_, out, _) = run(
        &alice,
        &[
            "auth",
            "can-i",
            "create",
            "configmaps",
            "-n",
            "team",
            "--as",
            "bob",
        ],
    );
    assert_eq!(out.trim(), "yes");
    let (_, out, _) = run(
        &alice,
        &["auth", "can-i", "create", "configmaps", "-n", "team"],
    );
    assert_eq!(out.trim(), "no", "alice herself may not");
    let (ok, _, err) = run(
        &alice,
        &[
            "create",
            "configmap",
            "made-as-bob",
            "-n",
            "team",
            "--from-literal=password=hunter2",
            "--as",
            "bob",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = run(
        &alice,
        &["get", "configmaps", "-n", "team", "--as", "carol"],
    );
    assert!(!ok);
    assert!(
        err.contains(
            "users \"carol\" is forbidden: User \"alice\" cannot impersonate resource \"users\""
        ),
        "{err}"
    );
    let (ok, _, err) = run(
        &alice,
        &[
            "get",
            "configmaps",
            "-n",
            "team",
            "--as",
            "bob",
            "--as-group",
            "system:masters",
        ],
    );
    assert!(!ok, "impersonating a group needs its own right");
    assert!(
        err.contains("groups \"system:masters\" is forbidden"),
        "{err}"
    );

    // The audit log names both, and never the data.
    let event = support::wait_for(
        "the create in the audit log",
        Duration::from_secs(10),
        || {
            audit_events(&hub)
                .into_iter()
                .find(|e| e["verb"] == "create" && e["objectRef"]["name"] == "made-as-bob")
        },
    );
    assert_eq!(event["user"]["username"], "alice");
    assert_eq!(event["impersonatedUser"]["username"], "bob");
    assert_eq!(event["objectRef"]["resource"], "configmaps");
    assert_eq!(event["objectRef"]["namespace"], "team");
    assert_eq!(event["responseStatus"]["code"], 201);
    assert_eq!(event["sourceIPs"], serde_json::json!(["127.0.0.1"]));
    assert!(
        event["userAgent"]
            .as_str()
            .unwrap_or("")
            .starts_with("kubectl/"),
        "{event}"
    );
    assert_eq!(event["apiVersion"], "audit.k8s.io/v1");
    assert!(event["requestReceivedTimestamp"].is_string());
    let denied = support::wait_for("the denied impersonation", Duration::from_secs(10), || {
        audit_events(&hub)
            .into_iter()
            .find(|e| e["responseStatus"]["code"] == 403 && e["user"]["username"] == "alice")
    });
    assert_eq!(denied["verb"], "list");
    let log = std::fs::read_to_string(hub.data_dir.join("audit.log")).unwrap();
    assert!(
        !log.contains("hunter2"),
        "request bodies never reach the audit log"
    );
}

#[test]
fn service_account_tokens_authenticate_as_the_service_account() {
    let dir = TestDir::new("auth-hub");
    let hub = Server::hub(dir.path());
    hub.kubectl_ok(&["create", "namespace", "ci"]);
    hub.kubectl_ok(&["-n", "ci", "create", "serviceaccount", "builder"]);
    hub.kubectl_ok(&["-n", "ci", "create", "configmap", "settings"]);
    hub.kubectl_ok(&[
        "-n",
        "ci",
        "create",
        "rolebinding",
        "builder-view",
        "--clusterrole=view",
        "--serviceaccount=ci:builder",
    ]);
    let token = hub.kubectl_ok(&["-n", "ci", "create", "token", "builder"]);
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let sa = custom_kubeconfig(&hub, "builder", &format!("{{token: {token}}}"));

    let (ok, out, err) = run(&sa, &["auth", "whoami"]);
    assert!(ok, "{err}");
    assert!(out.contains("system:serviceaccount:ci:builder"), "{out}");
    assert!(out.contains("system:serviceaccounts:ci"), "{out}");
    let (ok, out, err) = run(&sa, &["get", "configmaps", "-n", "ci"]);
    assert!(ok, "{err}");
    assert!(out.contains("settings"), "{out}");
    let (ok, _, err) = run(&sa, &["delete", "configmap", "settings", "-n", "ci"]);
    assert!(!ok);
    assert!(
        err.contains(
            "User \"system:serviceaccount:ci:builder\" cannot delete resource \"configmaps\""
        ),
        "{err}"
    );

    // Every namespace gets its `default` ServiceAccount, which can have tokens too.
    support::wait_for(
        "the default ServiceAccount",
        Duration::from_secs(10),
        || {
            hub.kubectl(&["-n", "ci", "get", "serviceaccount", "default"])
                .status
                .success()
                .then_some(())
        },
    );
    let default_token = hub.kubectl_ok(&["-n", "ci", "create", "token", "default"]);
    let default_sa = custom_kubeconfig(
        &hub,
        "default-sa",
        &format!("{{token: {}}}", default_token.trim()),
    );
    let (ok, out, err) = run(&default_sa, &["auth", "whoami"]);
    assert!(ok, "{err}");
    assert!(out.contains("system:serviceaccount:ci:default"), "{out}");

    // Deleting the ServiceAccount revokes its tokens.
    hub.kubectl_ok(&["-n", "ci", "delete", "serviceaccount", "builder"]);
    let (ok, _, err) = run(&sa, &["get", "configmaps", "-n", "ci"]);
    assert!(!ok);
    assert!(err.contains("You must be logged in to the server"), "{err}");
    let (ok, _, err) = run(&hub.kubeconfig, &["-n", "ci", "create", "token", "builder"]);
    assert!(!ok);
    assert!(
        err.contains("serviceaccounts \"builder\" not found"),
        "{err}"
    );
}
