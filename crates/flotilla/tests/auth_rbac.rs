//! Authentication and RBAC on a real hub, driven with real kubectl and kubeconfigs minted by
//! `flotilla kubeconfig create`.

mod support;

use std::path::Path;
use std::process::Command;

use support::{Server, TestDir, custom_kubeconfig, kubectl, stderr, stdout, user_kubeconfig};

/// GET `path` without credentials, verifying the serving certificate against the hub's CA;
/// returns (HTTP status, body).
fn curl(hub: &Server, path: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(hub.data_dir.join("ca.crt"))
        .args(["-w", "\n%{http_code}"])
        .arg(format!("{}{path}", hub.url()))
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl: {}", stderr(&out));
    let text = stdout(&out);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (code.trim().to_string(), body.trim().to_string())
}

fn run(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let out = kubectl(kubeconfig, args);
    (out.status.success(), stdout(&out), stderr(&out))
}

#[test]
fn anonymous_bad_token_and_foreign_certificates_are_refused() {
    let dir = TestDir::new("auth-hub");
    let hub = Server::hub(dir.path());

    // No credentials at all (kubectl would prompt for a password, so curl asks).
    let (code, body) = curl(&hub, "/api/v1/namespaces");
    assert_eq!(code, "401", "{body}");
    assert!(body.contains("\"reason\":\"Unauthorized\""), "{body}");
    // Health and version stay open.
    assert_eq!(curl(&hub, "/readyz"), ("200".to_string(), "ok".to_string()));
    assert_eq!(curl(&hub, "/version").0, "200");
    assert_eq!(curl(&hub, "/apis").0, "401");

    let bad_token = custom_kubeconfig(&hub, "badtoken", "{token: not-a-real-token}");
    let (ok, _, err) = run(&bad_token, &["get", "namespaces"]);
    assert!(!ok);
    assert!(err.contains("You must be logged in to the server"), "{err}");

    // A client certificate signed by another CA is refused at the TLS handshake.
    let other = TestDir::new("auth-other-ca");
    let other_pki = flotilla_apiserver::pki::ClusterPki::load_or_create(other.path()).unwrap();
    let (cert, key) = other_pki
        .issue_client("mallory", &["system:masters".to_string()])
        .unwrap();
    let cert_path = other.path().join("mallory.crt");
    let key_path = other.path().join("mallory.key");
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let foreign = custom_kubeconfig(
        &hub,
        "foreign",
        &format!(
            "{{client-certificate: {}, client-key: {}}}",
            cert_path.display(),
            key_path.display()
        ),
    );
    let (ok, out, err) = run(&foreign, &["get", "namespaces"]);
    assert!(!ok, "a foreign certificate must not work: {out}");
    assert!(!out.contains("default"), "{out}");
    // The TLS layer refuses the certificate. Under TLS 1.3 the client verifies the server
    // and starts writing before the server has judged the client's certificate, so kubectl
    // reports the server's alert either as a TLS/certificate error or, when the alert and
    // close race its write, as a broken pipe or reset connection.
    assert!(
        err.contains("certificate")
            || err.contains("tls")
            || err.contains("Unauthorized")
            || err.contains("broken pipe")
            || err.contains("connection reset"),
        "{err}"
    );

    // Denied requests are audited.
    support::wait_for(
        "401s in the audit log",
        std::time::Duration::from_secs(10),
        || {
            let audit = std::fs::read_to_string(hub.data_dir.join("audit.log")).ok()?;
            audit.contains("\"code\":401").then_some(())
        },
    );
}

#[test]
fn bindings_grant_exactly_what_they_say() {
    let dir = TestDir::new("auth-hub");
    let hub = Server::hub(dir.path());
    let alice = user_kubeconfig(&hub, "alice", &[]);

    // No bindings: discovery and self-reviews work, resources are Forbidden, word for word.
    let (ok, _, err) = run(&alice, &["get", "configmaps", "-n", "default"]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "Error from server (Forbidden): configmaps is forbidden: User \"alice\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );
    let (ok, _, err) = run(&alice, &["get", "deployments.apps", "web", "-n", "x"]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "Error from server (Forbidden): deployments.apps \"web\" is forbidden: User \"alice\" cannot get resource \"deployments\" in API group \"apps\" in the namespace \"x\""
    );
    let (ok, _, err) = run(&alice, &["get", "namespaces"]);
    assert!(!ok);
    assert!(err.contains("at the cluster scope"), "{err}");
    let (ok, out, err) = run(&alice, &["auth", "whoami"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("alice") && out.contains("system:authenticated"),
        "{out}"
    );
    let (_, out, _) = run(
        &alice,
        &["auth", "can-i", "list", "configmaps", "-n", "team"],
    );
    assert_eq!(out.trim(), "no");
    // Every supported kubectl (1.27 asks authentication.k8s.io/v1beta1).
    for (version, bin) in support::kubectl_versions() {
        let out = support::kubectl_with(&bin, &alice, &["auth", "whoami"]);
        assert!(out.status.success(), "kubectl {version}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("alice"),
            "kubectl {version}: {}",
            stdout(&out)
        );
    }

    // A Role + RoleBinding in one namespace.
    hub.kubectl_ok(&["create", "namespace", "team"]);
    hub.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "role",
        "cm-read",
        "--verb=get,list",
        "--resource=configmaps",
    ]);
    hub.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "rolebinding",
        "alice-cm",
        "--role=cm-read",
        "--user=alice",
    ]);
    hub.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "configmap",
        "settings",
        "--from-literal=a=1",
    ]);
    let (ok, out, err) = run(&alice, &["get", "configmaps", "-n", "team"]);
    assert!(ok, "{err}");
    assert!(out.contains("settings"), "{out}");
    let (_, out, _) = run(
        &alice,
        &["auth", "can-i", "list", "configmaps", "-n", "team"],
    );
    assert_eq!(out.trim(), "yes");
    let (ok, _, err) = run(&alice, &["create", "configmap", "x", "-n", "team"]);
    assert!(!ok);
    assert!(
        err.contains("configmaps is forbidden: User \"alice\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"team\""),
        "{err}"
    );
    let (ok, _, _) = run(&alice, &["get", "configmaps", "-n", "default"]);
    assert!(!ok, "the Role is for team only");
    let (_, out, _) = run(
        &alice,
        &["auth", "can-i", "create", "configmaps", "-n", "team"],
    );
    assert_eq!(out.trim(), "no");
    let (ok, out, err) = run(&alice, &["auth", "can-i", "--list", "-n", "team"]);
    assert!(ok, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("configmaps") && l.contains("[get list]")),
        "{out}"
    );

    // A group binding to the aggregated view role.
    let dave = user_kubeconfig(&hub, "dave", &["devs"]);
    let (ok, _, _) = run(&dave, &["get", "configmaps", "-n", "team"]);
    assert!(!ok);
    hub.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "rolebinding",
        "devs-view",
        "--clusterrole=view",
        "--group=devs",
    ]);
    let (ok, out, err) = run(&dave, &["get", "configmaps,deployments", "-n", "team"]);
    assert!(ok, "{err}");
    assert!(out.contains("settings"), "{out}");
    let (ok, _, _) = run(&dave, &["get", "secrets", "-n", "team"]);
    assert!(!ok, "view does not include secrets");
    let (ok, out, _) = run(
        &dave,
        &["auth", "whoami", "-o", "jsonpath={.status.userInfo.groups}"],
    );
    assert!(ok);
    assert!(out.contains("devs"), "{out}");

    // The admin (system:masters) can check others' rights with --as.
    let admin = hub.kubeconfig.clone();
    let (_, out, _) = run(
        &admin,
        &[
            "auth",
            "can-i",
            "get",
            "configmaps",
            "-n",
            "team",
            "--as",
            "dave",
            "--as-group",
            "devs",
        ],
    );
    assert_eq!(out.trim(), "yes");
    let (_, out, _) = run(
        &admin,
        &[
            "auth",
            "can-i",
            "get",
            "configmaps",
            "-n",
            "team",
            "--as",
            "erin",
        ],
    );
    assert_eq!(out.trim(), "no");

    // A namespace admin may hand out what they hold, and nothing more.
    hub.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "rolebinding",
        "alice-admin",
        "--clusterrole=admin",
        "--user=alice",
    ]);
    let (ok, _, err) = run(
        &alice,
        &[
            "-n",
            "team",
            "create",
            "rolebinding",
            "dave-edit",
            "--clusterrole=edit",
            "--user=dave",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = run(
        &alice,
        &[
            "-n",
            "team",
            "create",
            "rolebinding",
            "me-root",
            "--clusterrole=cluster-admin",
            "--user=alice",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("rolebindings.rbac.authorization.k8s.io \"me-root\" is forbidden: user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held"),
        "{err}"
    );

    // The audit log says why, as kube-apiserver's does: a request RBAC refused is `forbid`
    // with the refusal in its responseStatus; the escalation was authorized (`allow`, with
    // the binding that allowed it) and refused after, its Status in the responseStatus.
    let denied = audit_event(&hub, |e| {
        e["verb"] == "list" && e["objectRef"]["resource"] == "configmaps"
    });
    assert_eq!(
        denied["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
    assert_eq!(denied["responseStatus"]["reason"], "Forbidden");
    assert!(
        denied["responseStatus"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("User \"alice\" cannot list resource \"configmaps\""),
        "{denied}"
    );
    let escalation = audit_event(&hub, |e| {
        e["verb"] == "create" && e["objectRef"]["name"] == "me-root"
    });
    assert_eq!(escalation["responseStatus"]["code"], 403, "{escalation}");
    assert_eq!(
        escalation["responseStatus"]["status"], "Failure",
        "{escalation}"
    );
    assert_eq!(
        escalation["responseStatus"]["reason"], "Forbidden",
        "{escalation}"
    );
    assert!(
        escalation["responseStatus"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("is attempting to grant RBAC permissions not currently held"),
        "{escalation}"
    );
    assert_eq!(
        escalation["responseStatus"]["details"],
        serde_json::json!({"name": "me-root", "group": "rbac.authorization.k8s.io", "kind": "rolebindings"}),
        "{escalation}"
    );
    let annotations = &escalation["annotations"];
    assert_eq!(annotations["authorization.k8s.io/decision"], "allow");
    assert_eq!(
        annotations["authorization.k8s.io/reason"],
        "RBAC: allowed by RoleBinding \"alice-admin/team\" of ClusterRole \"admin\" to User \"alice\"",
        "{escalation}"
    );
}

/// The first event of `DIR/audit.log` that `matches` (waiting for the writer thread).
fn audit_event(hub: &Server, matches: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    support::wait_for(
        "the audit event",
        std::time::Duration::from_secs(10),
        || {
            let audit = std::fs::read_to_string(hub.data_dir.join("audit.log")).ok()?;
            audit
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|e| matches(e))
        },
    )
}
