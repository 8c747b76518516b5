//! `flotilla auth grant-privileges` / `list-privileges` end to end, with members joined through
//! impersonate-only credentials: a `--readonly` grant on m1 lets the user read m1 (CLI and the
//! gateway) while m2 stays Forbidden, and m1's audit log names the user; a grant by label
//! reaches a member that gains the label later, a binding deleted there by hand comes back at
//! once, and its bindings go when the grant is deleted.

mod support;

use std::time::Duration;

use support::access::{hub_and_two_members, web_deployments};
use support::{
    Server, TestDir, flotilla, join_impersonate_only, kubectl, stderr, stdout, user_kubeconfig,
    wait_for,
};

const GW: &str = "/apis/cluster.core.oam.dev/v1alpha1/clustergateways";

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn readonly_grant_on_one_cluster() {
    let dir = TestDir::new("access-grants");
    let (hub, m1, m2) = hub_and_two_members(&dir);
    web_deployments(&[("m1", &m1), ("m2", &m2)]);
    hub.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "vic-view",
        "--clusterrole=view",
        "--user=vic",
    ]);
    let vic = user_kubeconfig(&hub, "vic", &[]);

    let granted = ok(
        flotilla(
            &hub.kubeconfig,
            &[
                "auth",
                "grant-privileges",
                "--user",
                "vic",
                "--for-cluster",
                "m1",
                "--readonly",
            ],
        ),
        "grant",
    );
    assert!(
        granted.contains("granted: ClusterRole view to User vic"),
        "{granted}"
    );
    let listed = hub.kubectl_ok(&["get", "fleetrolebindings"]);
    assert!(listed.contains("user-vic-view-all-m1"), "{listed}");

    // The controller binds view on m1 (not m2) and opens the hub's gateway to m1.
    let out = wait_for(
        "vic may read m1 through the CLI",
        Duration::from_secs(30),
        || {
            let out = flotilla(&vic, &["get", "deployments", "-M", "-n", "default"]);
            stdout(&out).contains("web-m1").then_some(out)
        },
    );
    assert!(!stdout(&out).contains("web-m2"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(r#"Error from server (Forbidden): clustergateways.cluster.core.oam.dev "m2" is forbidden"#),
        "{}",
        stderr(&out)
    );
    assert!(!m2.exists(
        "clusterrolebinding",
        "flotilla-grant:user-vic-view-all-m1",
        ""
    ));
    let pods = kubectl(
        &vic,
        &[
            "get",
            "--raw",
            &format!("{GW}/m1/proxy/api/v1/namespaces/default/pods"),
        ],
    );
    assert!(pods.status.success(), "{}", stderr(&pods));
    let pods = kubectl(
        &vic,
        &[
            "get",
            "--raw",
            &format!("{GW}/m2/proxy/api/v1/namespaces/default/pods"),
        ],
    );
    assert!(stderr(&pods).contains("(Forbidden)"), "{}", stderr(&pods));

    // Read-only on the member: a write is refused by m1 itself, and its audit log names vic.
    let server = format!("{}{GW}/m1/proxy", hub.url());
    let out = kubectl(
        &vic,
        &[
            "--server",
            &server,
            "create",
            "configmap",
            "nope",
            "-n",
            "default",
        ],
    );
    assert!(
        stderr(&out).contains(r#"User "vic" cannot create resource "configmaps""#),
        "{}",
        stderr(&out)
    );
    let audit = std::fs::read_to_string(m1.data_dir.join("audit.log")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains(r#""impersonatedUser":{"username":"vic""#)
                && l.contains("\"create\"")),
        "{audit}"
    );

    // list-privileges: m1's own rules for vic; m2 refuses.
    let out = flotilla(
        &hub.kubeconfig,
        &["auth", "list-privileges", "--user", "vic"],
    );
    let text = stdout(&out);
    assert!(
        text.lines().any(|l| l.starts_with("m1")
            && l.contains("deployments")
            && l.contains("get,list,watch")),
        "{text}\n{}",
        stderr(&out)
    );
    assert!(!text.lines().any(|l| l.starts_with("m2")), "{text}");
    assert!(stderr(&out).contains("(cluster m2)"), "{}", stderr(&out));
}

#[test]
fn grant_by_label_follows_the_label_and_the_grant() {
    let dir = TestDir::new("access-grants-label");
    let hub = Server::hub(&dir.0.join("hub"));
    let m2 = Server::member("m2", &dir.0.join("m2"));
    join_impersonate_only(&hub, "m2", &m2, &dir.0);
    ok(
        flotilla(
            &hub.kubeconfig,
            &[
                "auth",
                "grant-privileges",
                "--group",
                "devs",
                "--for-cluster-selector",
                "env=prod",
                "--for-namespace",
                "default",
                "--clusterrole",
                "edit",
            ],
        ),
        "grant",
    );
    let name = "group-devs-edit-default-env-prod";
    let binding = format!("flotilla-grant:{name}");
    // No member has the label yet: nothing is bound (give the controller a few passes).
    std::thread::sleep(Duration::from_secs(5));
    assert!(!m2.exists("rolebinding", &binding, "default"));

    ok(
        flotilla(
            &hub.kubeconfig,
            &["cluster", "labels", "add", "m2", "env=prod"],
        ),
        "label",
    );
    wait_for("the binding on m2", Duration::from_secs(30), || {
        m2.exists("rolebinding", &binding, "default").then_some(())
    });
    assert_eq!(
        m2.jsonpath("rolebinding", &binding, "default", "{.subjects[0].name}"),
        "devs"
    );
    let rules = hub.kubectl_ok(&[
        "get",
        "clusterrole",
        &binding,
        "-o",
        "jsonpath={.rules[0].resourceNames}",
    ]);
    assert!(rules.contains("m2"), "{rules}");

    // Deleted by hand on m2: back at once (the members' grant bindings are watched), not at
    // the 5-minute resync.
    let uid = m2.jsonpath("rolebinding", &binding, "default", "{.metadata.uid}");
    m2.kubectl_ok(&["delete", "rolebinding", &binding, "-n", "default"]);
    wait_for("the binding back on m2", Duration::from_secs(30), || {
        let now = m2.jsonpath("rolebinding", &binding, "default", "{.metadata.uid}");
        (!now.is_empty() && now != uid).then_some(())
    });

    hub.kubectl_ok(&["delete", "fleetrolebinding", name]);
    wait_for(
        "the binding removed from m2",
        Duration::from_secs(30),
        || (!m2.exists("rolebinding", &binding, "default")).then_some(()),
    );
    wait_for(
        "the hub permission removed",
        Duration::from_secs(30),
        || (!hub.exists("clusterrole", &binding, "")).then_some(()),
    );
}
