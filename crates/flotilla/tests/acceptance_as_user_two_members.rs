//! Acceptance (issue 5): a user allowed on one member and not on another. Both members are
//! joined with a least-privileged ServiceAccount token whose only right is `impersonate` (so the
//! hub's own credential on a member needs nothing else). alice's Application lands on the member
//! that grants her ConfigMaps and not on the other; the step names the refusing member with
//! Forbidden; the first member's audit log shows the hub's ServiceAccount as the user and alice
//! as the impersonated user.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{Server, TestDir, create_user_kubeconfig, kubectl, stderr, wait_for};

const WAIT: Duration = Duration::from_secs(60);

const APP: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: split
  namespace: default
  annotations:
    app.oam.dev/username: admin
    app.oam.dev/group: system:masters
spec:
  components:
    - name: split
      type: k8s-objects
      properties:
        objects:
          - apiVersion: v1
            kind: ConfigMap
            metadata:
              name: split
            data:
              k: v
  policies:
    - type: topology
      name: both
      properties:
        clusters: ["granting", "refusing"]
"#;

/// Gives `member` a ServiceAccount `default:hub` that may only impersonate, and returns a
/// kubeconfig holding its token and the member's CA.
fn impersonate_only_kubeconfig(member: &Server, dir: &Path, name: &str) -> PathBuf {
    member.kubectl_ok(&["create", "serviceaccount", "hub", "-n", "default"]);
    member.kubectl_ok(&[
        "create",
        "clusterrole",
        "hub-impersonator",
        "--verb=impersonate",
        "--resource=users,groups,serviceaccounts",
    ]);
    member.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "hub-impersonator",
        "--clusterrole=hub-impersonator",
        "--serviceaccount=default:hub",
    ]);
    let token = member.kubectl_ok(&["create", "token", "hub", "-n", "default"]);
    let path = dir.join(format!("{name}-hub.kubeconfig"));
    member.write_token_kubeconfig(&path, "hub", &token);
    path
}

#[test]
fn allowed_on_one_member_forbidden_on_the_other() {
    let dir = TestDir::new("acceptance-two-members");
    let hub = Server::hub(&dir.0.join("hub"));
    let granting = Server::member("granting", &dir.0.join("granting"));
    let refusing = Server::member("refusing", &dir.0.join("refusing"));
    for (name, member) in [("granting", &granting), ("refusing", &refusing)] {
        let kubeconfig = impersonate_only_kubeconfig(member, &dir.0, name);
        hub.join_kubeconfig(name, &kubeconfig);
    }
    // alice may edit ConfigMaps in `default` on the granting member only.
    granting.kubectl_ok(&[
        "create",
        "rolebinding",
        "alice-edit",
        "-n",
        "default",
        "--clusterrole=edit",
        "--user=alice",
    ]);

    // alice may manage Applications on the hub.
    let alice = dir.0.join("alice.kubeconfig");
    create_user_kubeconfig(&hub, "alice", &[], &alice);
    hub.kubectl_ok(&[
        "create",
        "rolebinding",
        "alice-apps",
        "-n",
        "default",
        "--clusterrole=edit",
        "--user=alice",
    ]);
    let file = dir.0.join("app.yaml");
    std::fs::write(&file, APP).unwrap();
    let out = kubectl(&alice, &["apply", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "alice applies: {}", stderr(&out));

    wait_for("the granting member got the ConfigMap", WAIT, || {
        granting
            .exists("configmap", "split", "default")
            .then_some(())
    });
    let message = wait_for("the step names the refusing member", WAIT, || {
        let m = hub.jsonpath(
            "app",
            "split",
            "default",
            "{.status.workflow.steps[0].message}",
        );
        (m.contains("refusing") && m.contains("forbidden")).then_some(m)
    });
    assert!(message.contains("User \"alice\""), "{message}");
    assert!(
        !message.contains("granting"),
        "only the refusing member is named: {message}"
    );
    assert!(
        !refusing.exists("configmap", "split", "default"),
        "written despite the member's RBAC"
    );

    // The granting member audited the write: the hub's ServiceAccount acting as alice.
    let audit = std::fs::read_to_string(granting.data_dir.join("audit.log")).unwrap();
    let created = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| {
            e["objectRef"]["resource"] == "configmaps"
                && e["objectRef"]["name"] == "split"
                && e["responseStatus"]["code"]
                    .as_u64()
                    .is_some_and(|c| c < 300)
        })
        .expect("the member audited the write");
    assert_eq!(
        created["user"]["username"], "system:serviceaccount:default:hub",
        "{created}"
    );
    assert_eq!(
        created["impersonatedUser"]["username"], "alice",
        "{created}"
    );
    let groups = created["impersonatedUser"]["groups"].to_string();
    assert!(!groups.contains("system:masters"), "{groups}");
}
