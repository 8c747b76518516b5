//! `flotilla cluster join` with a member's administrator kubeconfig stores only the hub's own
//! impersonate-only identity (issue 15, item 4): the stored Secret's certificate names
//! `system:flotilla:hub`, cannot list Secrets (or read anything) on the member, but may
//! impersonate; with it the hub still probes the member, dispatches as the user (the member's
//! audit log names the hub identity and the user), reaches the member through the cluster
//! gateway and scrapes its metrics. A credential that is already limited is stored as given.
//! A user with `view` everywhere and `edit` in `default` cannot read the stored credential.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use support::{Server, TestDir, flotilla, kubectl, stderr, stdout, wait_for};

const WAIT: Duration = Duration::from_secs(60);

const APP: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: {name: joined, namespace: default}
spec:
  components:
    - name: joined
      type: k8s-objects
      properties:
        objects:
          - {apiVersion: v1, kind: ConfigMap, metadata: {name: joined}, data: {k: v}}
  policies:
    - {type: topology, name: m1, properties: {clusters: ["m1"]}}
"#;

/// A kubeconfig holding exactly what the hub stored in Secret `vela-system/<cluster>`.
fn stored_kubeconfig(hub: &Server, cluster: &str, dir: &Path) -> (PathBuf, Value) {
    let secret: Value = serde_json::from_str(&hub.kubectl_ok(&[
        "get",
        "secret",
        cluster,
        "-n",
        "vela-system",
        "-o",
        "json",
    ]))
    .unwrap();
    let data = &secret["data"];
    let text = |k: &str| {
        data[k]
            .as_str()
            .unwrap_or_else(|| panic!("no {k}: {secret}"))
    };
    let endpoint = base64::engine::general_purpose::STANDARD
        .decode(text("endpoint"))
        .unwrap();
    let path = dir.join(format!("{cluster}-stored.kubeconfig"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: m\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: hub\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: m\n  context:\n    cluster: m\n    user: hub\ncurrent-context: m\n",
            String::from_utf8(endpoint).unwrap(),
            text("ca.crt"),
            text("tls.crt"),
            text("tls.key"),
        ),
    )
    .unwrap();
    (path, secret)
}

/// The member's admin client certificate data, as in its kubeconfig.
fn admin_certificate(member: &Server) -> String {
    std::fs::read_to_string(&member.kubeconfig)
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-certificate-data:"))
        .map(|s| s.trim().to_string())
        .expect("the member's admin kubeconfig holds its certificate inline")
}

#[test]
fn join_stores_an_impersonate_only_identity_that_still_serves_the_hub() {
    let dir = TestDir::new("access-join-credential");
    let hub = Server::hub_probing_every_second(&dir.0.join("hub"));
    let m1 = Server::member("m1", &dir.0.join("m1"));
    let m1_admin = m1.kubeconfig.to_string_lossy().into_owned();
    let out = flotilla(
        &hub.kubeconfig,
        &["cluster", "join", &m1_admin, "--name", "m1"],
    );
    assert!(out.status.success(), "join: {}", stderr(&out));
    assert!(
        stdout(&out).contains("the given credential was not stored"),
        "{}",
        stdout(&out)
    );

    // The bootstrap policy keeps the stored credential to administrators: a user who may view
    // everything and edit `default` (the issue's vic) cannot read it.
    hub.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "vic-view",
        "--clusterrole=view",
        "--user=vic",
    ]);
    hub.kubectl_ok(&[
        "create",
        "rolebinding",
        "vic-edit",
        "--clusterrole=edit",
        "--user=vic",
        "-n",
        "default",
    ]);
    let out = hub.kubectl(&["get", "secret", "m1", "-n", "vela-system", "--as=vic"]);
    assert!(
        stderr(&out).contains(r#"User "vic" cannot get resource "secrets""#),
        "{}",
        stderr(&out)
    );

    // What the hub stored is not the admin's certificate but its own identity...
    let (stored, secret) = stored_kubeconfig(&hub, "m1", &dir.0);
    assert_ne!(secret["data"]["tls.crt"], admin_certificate(&m1).as_str());
    let out = kubectl(
        &stored,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!(stdout(&out), "system:flotilla:hub", "{}", stderr(&out));
    // ...which may read nothing on the member by itself...
    let out = kubectl(&stored, &["get", "secrets", "-A"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"User "system:flotilla:hub" cannot list resource "secrets""#),
        "{}",
        stderr(&out)
    );
    let out = kubectl(&stored, &["get", "--raw", "/metrics"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    // ...but may impersonate, and then has exactly the impersonated identity's rights.
    let out = kubectl(
        &stored,
        &[
            "get",
            "secrets",
            "-A",
            "--as=admin",
            "--as-group=system:masters",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = kubectl(&stored, &["get", "secrets", "-A", "--as=vic"]);
    assert!(
        stderr(&out).contains(r#"User "vic" cannot list resource "secrets""#),
        "{}",
        stderr(&out)
    );
    // The request used to sign the certificate is gone.
    assert!(
        !m1.kubectl_ok(&["get", "csr", "-o", "name"])
            .contains("flotilla-hub"),
        "a CertificateSigningRequest was left behind"
    );

    // Health probes (/readyz) pass with it.
    wait_for("m1 available", WAIT, || {
        (hub.jsonpath(
            "managedcluster",
            "m1",
            "",
            "{.status.conditions[?(@.type==\"ManagedClusterConditionAvailable\")].status}",
        ) == "True")
            .then_some(())
    });
    // Dispatch as the user: the member's audit log names the hub identity and the user.
    support::fleet::apply(&hub.kubeconfig, APP);
    wait_for("the ConfigMap on m1", WAIT, || {
        m1.exists("configmap", "joined", "default").then_some(())
    });
    let audit = std::fs::read_to_string(m1.data_dir.join("audit.log")).unwrap();
    let created: Value = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["verb"] == "patch" && e["objectRef"]["name"] == "joined")
        .unwrap_or_else(|| panic!("no audit event for the apply:\n{audit}"));
    assert_eq!(
        created["user"]["username"], "system:flotilla:hub",
        "{created}"
    );
    assert_eq!(
        created["impersonatedUser"]["username"], "admin",
        "{created}"
    );
    // The cluster gateway and fleet metrics work through it.
    let out = hub.kubectl(&[
        "get",
        "--raw",
        "/apis/cluster.core.oam.dev/v1alpha1/clustergateways/m1/proxy/api/v1/namespaces/default/configmaps/joined",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("m1's metrics on the hub", WAIT, || {
        let out = hub.kubectl(&["get", "--raw", "/metrics/clusters"]);
        stdout(&out).contains("cluster=\"m1\"").then_some(())
    });

    // Re-joining with the limited credential stores it as given.
    let stored_arg = stored.to_string_lossy().into_owned();
    let out = flotilla(
        &hub.kubeconfig,
        &["cluster", "join", &stored_arg, "--name", "m1"],
    );
    assert!(out.status.success(), "re-join: {}", stderr(&out));
    assert!(
        stdout(&out).contains("Stored the given credential as is"),
        "{}",
        stdout(&out)
    );
    let (_, again) = stored_kubeconfig(&hub, "m1", &dir.0);
    assert_eq!(again["data"]["tls.crt"], secret["data"]["tls.crt"]);
}
