//! GitOps end to end: a real Git repository (made with the git CLI, served by `git daemon` and
//! read via file://) drives a hub and two members through argoproj.io Applications: a
//! Deployment synced to one member, a core.oam.dev Application synced to the hub and then
//! distributed to both members; a push webhook makes members follow a new commit; a deleted
//! file is pruned; drift on a member is self-healed; `flotilla gitops status|diff|sync` work.

mod support;

use std::time::{Duration, Instant};

use support::git::{GitDaemon, GitRepo, push_webhook};
use support::{Server, TestDir, flotilla, stderr, stdout, table_header, wait_for};

const WAIT: Duration = Duration::from_secs(60);

fn deployment(replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
"
    )
}

const CONFIG_MAP: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: web-config}
data: {greeting: hello}
";

const OAM_APP: &str = "apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: {name: shop}
spec:
  components:
  - name: shop
    type: webservice
    properties: {image: nginx:1.27, port: 80}
  policies:
  - name: both
    type: topology
    properties: {clusters: [m1, m2], namespace: default}
";

fn argo_app(
    name: &str,
    repo: &str,
    path: &str,
    destination: &str,
    namespace: &str,
    self_heal: bool,
) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: {name}, namespace: argocd}}
spec:
  project: default
  source: {{repoURL: '{repo}', targetRevision: main, path: {path}}}
  destination: {{name: {destination}, namespace: {namespace}}}
  syncPolicy:
    automated: {{prune: true, selfHeal: {self_heal}}}
    syncOptions: [CreateNamespace=true]
"
    )
}

fn apply(hub: &Server, dir: &std::path::Path, name: &str, yaml: &str) {
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    hub.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
}

fn replicas(member: &Server, ns: &str, name: &str) -> Option<String> {
    let out = member.kubectl(&[
        "get",
        "deployment",
        name,
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    out.status.success().then(|| stdout(&out))
}

fn argo(hub: &Server, name: &str, path: &str) -> String {
    hub.jsonpath("applications.argoproj.io", name, "argocd", path)
}

/// `flotilla gitops diff NAME -n argocd` finds git and the live state the same (exit 0).
fn assert_no_diff(hub: &Server, name: &str) {
    let out = flotilla(&hub.kubeconfig, &["gitops", "diff", name, "-n", "argocd"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

fn wait_status(hub: &Server, name: &str, sync: &str, health: &str) {
    let mut last = String::new();
    let found = (0..(WAIT.as_millis() / 300)).any(|_| {
        last = argo(
            hub,
            name,
            "{.status.sync.status} {.status.health.status} {.status.conditions}",
        );
        if last.starts_with(&format!("{sync} {health}")) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(300));
        false
    });
    if !found {
        let log = std::fs::read_to_string(&hub.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        panic!(
            "{name} never {sync} {health}; last: {last}\nhub log (reversed):\n{}",
            tail.join("\n")
        );
    }
}

#[test]
fn git_drives_the_fleet() {
    let dir = TestDir::new("gitops-sync");
    // A poll interval far beyond the test: new commits arrive only through the webhook.
    let hub = Server::start(
        &[
            "hub",
            "--listen",
            "127.0.0.1:0",
            "--gitops-poll-interval",
            "1h",
        ],
        &dir.path().join("hub"),
    );
    let m1 = Server::member("m1", &dir.path().join("m1"));
    let m2 = Server::member("m2", &dir.path().join("m2"));
    hub.join("m1", &m1);
    hub.join("m2", &m2);

    let repos = dir.path().join("repos");
    let repo = GitRepo::init(&repos.join("fleet"));
    repo.write("member/deploy.yaml", &deployment(2));
    repo.write("member/config/web.yaml", CONFIG_MAP);
    repo.write("hub/shop.yaml", OAM_APP);
    repo.write("README.md", "not a manifest\n");
    let first = repo.commit("web at 2 replicas, shop on both members");
    let daemon = GitDaemon::serve(&repos);
    let git_url = daemon.url("fleet");

    hub.kubectl_ok(&["create", "namespace", "argocd"]);
    let mut web = argo_app("web", &git_url, "member", "m1", "web", true);
    web = web.replace("path: member}", "path: member, directory: {recurse: true}}");
    apply(&hub, dir.path(), "web.yaml", &web);
    apply(
        &hub,
        dir.path(),
        "shop.yaml",
        &argo_app(
            "shop",
            &repo.file_url(),
            "hub",
            "in-cluster",
            "default",
            false,
        ),
    );

    // 1. Both appear: the Deployment (and the ConfigMap from a sub-folder) on m1, in the
    // namespace CreateNamespace made; the KubeVela Application on the hub, then on both members.
    wait_for("web on m1", WAIT, || {
        (replicas(&m1, "web", "web")? == "2").then_some(())
    });
    assert!(
        m1.exists("configmap", "web-config", "web"),
        "recurse reads sub-folders"
    );
    assert!(replicas(&m2, "web", "web").is_none(), "web goes to m1 only");
    wait_status(&hub, "web", "Synced", "Healthy");
    assert_eq!(argo(&hub, "web", "{.status.sync.revision}"), first);
    wait_for("shop on both members", WAIT, || {
        (replicas(&m1, "default", "shop").is_some() && replicas(&m2, "default", "shop").is_some())
            .then_some(())
    });
    wait_status(&hub, "shop", "Synced", "Healthy");
    // The synced KubeVela Application carries the Argo Application's user (impersonation).
    let user = "{.metadata.annotations.app\\.oam\\.dev/username}";
    assert_eq!(
        hub.jsonpath("app.core.oam.dev", "shop", "default", user),
        argo(&hub, "shop", user)
    );

    // kubectl: Argo CD's columns; `app` still means KubeVela's Application.
    let table = hub.kubectl_ok(&["get", "applications.argoproj.io", "-n", "argocd"]);
    assert_eq!(
        table_header(&table),
        ["NAME", "SYNC", "STATUS", "HEALTH", "STATUS"],
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["web", "Synced", "Healthy"]),
        "{table}"
    );
    let apps = hub.kubectl_ok(&["get", "app", "-A"]);
    assert!(
        apps.contains("COMPONENT") && apps.contains("shop") && !apps.contains("SYNC STATUS"),
        "{apps}"
    );

    // 2. A new commit plus the webhook: m1 follows.
    repo.write("member/deploy.yaml", &deployment(3));
    let second = repo.commit("web at 3 replicas");
    let pushed = Instant::now();
    let (code, body) = push_webhook(&hub.url(), &git_url);
    assert_eq!(code, "200", "webhook: {body}");
    wait_for("m1 at 3 replicas", WAIT, || {
        (replicas(&m1, "web", "web")? == "3").then_some(())
    });
    eprintln!("webhook → member at 3 replicas: {:?}", pushed.elapsed());
    wait_for("revision", WAIT, || {
        (argo(&hub, "web", "{.status.sync.revision}") == second).then_some(())
    });

    // 3. A file leaves Git: pruned.
    repo.remove("member/config/web.yaml");
    let third = repo.commit("no more config");
    push_webhook(&hub.url(), &git_url);
    wait_for("web-config pruned", WAIT, || {
        (!m1.exists("configmap", "web-config", "web")).then_some(())
    });
    let results = argo(
        &hub,
        "web",
        "{.status.operationState.syncResult.resources[*].status}",
    );
    assert!(results.contains("Pruned"), "{results}");
    assert_eq!(
        argo(&hub, "web", "{.status.operationState.syncResult.revision}"),
        third
    );

    // 4. Drift on the member: self-healed.
    m1.kubectl_ok(&["scale", "deployment", "web", "-n", "web", "--replicas=7"]);
    wait_for("self-heal", WAIT, || {
        (replicas(&m1, "web", "web")? == "3").then_some(())
    });
    let history = argo(&hub, "web", "{.status.history[*].revision}");
    assert!(
        history.contains(&first) && history.contains(&third),
        "{history}"
    );

    // 5. The CLI: status, diff (exit 0 in sync, 1 with drift), sync.
    wait_status(&hub, "web", "Synced", "Healthy");
    let out = flotilla(
        &hub.kubeconfig,
        &["gitops", "status", "web", "-n", "argocd"],
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains("Sync Status:   Synced") && text.contains("Health Status: Healthy"),
        "{text}"
    );
    assert!(
        text.contains("Deployment") && text.contains("web"),
        "{text}"
    );
    assert_no_diff(&hub, "shop");
    // `shop` has no selfHeal: once its current revision is synced (a sync on request), drift
    // on the hub is reported, not corrected, until the next sync.
    let out = flotilla(&hub.kubeconfig, &["gitops", "sync", "shop", "-n", "argocd"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    hub.kubectl_ok(&[
        "patch",
        "app.core.oam.dev",
        "shop",
        "-n",
        "default",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/components/0/properties/image","value":"nginx:drift"}]"#,
    ]);
    std::thread::sleep(Duration::from_secs(6)); // a compare pass (every 5 s) does not heal it
    let out = flotilla(&hub.kubeconfig, &["gitops", "diff", "shop", "-n", "argocd"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}\n{}\n{}",
        stdout(&out),
        stderr(&out),
        hub.kubectl_ok(&[
            "get",
            "applications.argoproj.io",
            "shop",
            "-n",
            "argocd",
            "-o",
            "yaml"
        ]),
        hub.kubectl_ok(&[
            "get",
            "app.core.oam.dev",
            "shop",
            "-n",
            "default",
            "-o",
            "yaml"
        ])
    );
    assert!(
        stdout(&out).contains(
            "spec.components[0].properties.image: git \"nginx:1.27\" != live \"nginx:drift\""
        ),
        "{}",
        stdout(&out)
    );
    let out = flotilla(&hub.kubeconfig, &["gitops", "sync", "shop", "-n", "argocd"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("Sync Succeeded"), "{}", stdout(&out));
    assert_eq!(
        hub.jsonpath(
            "app.core.oam.dev",
            "shop",
            "default",
            "{.spec.components[0].properties.image}"
        ),
        "nginx:1.27"
    );
    assert_no_diff(&hub, "shop");
}
