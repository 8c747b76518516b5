//! GitOps bad input: an unknown revision, a missing path, a manifest that does not parse, an
//! unreachable repository, an unknown destination and an unknown project each give a clear
//! condition (or a refusal) and apply nothing; the last good state stays in the cluster. A
//! sync acts as the user who created the Application: what that user may not do fails.

mod support;

use std::time::Duration;

use support::git::GitRepo;
use support::{Server, TestDir, free_port, user_kubeconfig, wait_for};

const WAIT: Duration = Duration::from_secs(60);

fn config_map(value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{value: '{value}'}}\n"
    )
}

fn app_yaml(repo: &str, revision: &str, path: &str, destination: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: settings, namespace: argocd}}
spec:
  project: default
  source: {{repoURL: '{repo}', targetRevision: '{revision}', path: '{path}'}}
  destination: {{name: '{destination}', namespace: team}}
  syncPolicy:
    automated: {{prune: true, selfHeal: true}}
    syncOptions: [CreateNamespace=true]
"
    )
}

fn apply(hub: &Server, dir: &std::path::Path, yaml: &str) -> std::process::Output {
    let path = dir.join("app.yaml");
    std::fs::write(&path, yaml).unwrap();
    hub.kubectl(&["apply", "-f", path.to_str().unwrap()])
}

fn live_value(hub: &Server) -> String {
    hub.jsonpath("configmap", "settings", "team", "{.data.value}")
}

/// Waits until the Application shows condition `kind` with a message containing `needle`.
fn wait_condition(hub: &Server, kind: &str, needle: &str) -> String {
    let path = format!("{{.status.conditions[?(@.type==\"{kind}\")].message}}");
    let mut last = String::new();
    let found = (0..200).any(|_| {
        last = hub.jsonpath("applications.argoproj.io", "settings", "argocd", &path);
        if last.contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(300));
        false
    });
    assert!(found, "no {kind} containing {needle:?}; last: {last:?}");
    last
}

/// A hub polling Git every second, and a repository whose `main` holds the `one` settings.
fn hub_and_repo(dir: &TestDir) -> (Server, GitRepo) {
    let hub = Server::start(
        &[
            "hub",
            "--listen",
            "127.0.0.1:0",
            "--gitops-poll-interval",
            "1s",
        ],
        &dir.path().join("hub"),
    );
    let repo = GitRepo::init(&dir.path().join("repo"));
    repo.write("app/settings.yaml", &config_map("one"));
    repo.commit("one");
    (hub, repo)
}

#[test]
fn bad_input_applies_nothing_and_says_why() {
    let dir = TestDir::new("gitops-bad");
    let (hub, repo) = hub_and_repo(&dir);
    let url = repo.file_url();
    hub.kubectl_ok(&["create", "namespace", "argocd"]);
    let ok = apply(
        &hub,
        dir.path(),
        &app_yaml(&url, "main", "app", "in-cluster"),
    );
    assert!(ok.status.success());
    wait_for("settings=one", WAIT, || {
        (live_value(&hub) == "one").then_some(())
    });

    // Unknown revision.
    apply(
        &hub,
        dir.path(),
        &app_yaml(&url, "no-such-branch", "app", "in-cluster"),
    );
    let message = wait_condition(&hub, "ComparisonError", "no-such-branch");
    assert!(
        message.contains("unable to resolve 'no-such-branch' to a commit SHA"),
        "{message}"
    );
    assert_eq!(
        hub.jsonpath(
            "applications.argoproj.io",
            "settings",
            "argocd",
            "{.status.sync.status}"
        ),
        "Unknown"
    );

    // Missing path.
    apply(
        &hub,
        dir.path(),
        &app_yaml(&url, "main", "nowhere", "in-cluster"),
    );
    let message = wait_condition(&hub, "ComparisonError", "nowhere");
    assert!(message.contains("app path does not exist"), "{message}");

    // A revision whose manifests do not all parse: nothing of it is applied.
    apply(
        &hub,
        dir.path(),
        &app_yaml(&url, "main", "app", "in-cluster"),
    );
    wait_for("condition cleared", WAIT, || {
        hub.jsonpath(
            "applications.argoproj.io",
            "settings",
            "argocd",
            "{.status.conditions}",
        )
        .is_empty()
        .then_some(())
    });
    repo.write("app/settings.yaml", &config_map("two"));
    repo.write("app/broken.yaml", "kind: [unclosed\n");
    let bad = repo.commit("two, and a broken file");
    let message = wait_condition(&hub, "ComparisonError", "unable to parse app/broken.yaml");
    assert!(
        message.contains(&bad),
        "the message names the revision: {message}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        live_value(&hub),
        "one",
        "nothing from the broken revision is applied"
    );

    // Unreachable repository (nothing listens on the port).
    let unreachable = format!("git://127.0.0.1:{}/repo", free_port());
    apply(
        &hub,
        dir.path(),
        &app_yaml(&unreachable, "main", "app", "in-cluster"),
    );
    let message = wait_condition(&hub, "ComparisonError", "failed to fetch");
    assert!(message.contains(&unreachable), "{message}");
    assert_eq!(live_value(&hub), "one");

    // Unknown destination.
    repo.remove("app/broken.yaml");
    repo.commit("fixed");
    apply(
        &hub,
        dir.path(),
        &app_yaml(&url, "main", "app", "nowhere-cluster"),
    );
    let message = wait_condition(&hub, "InvalidSpecError", "nowhere-cluster");
    assert!(
        message.contains("there are no clusters with this name"),
        "{message}"
    );
    assert_eq!(live_value(&hub), "one");

    // Fixed: the good revision syncs.
    apply(
        &hub,
        dir.path(),
        &app_yaml(&url, "main", "app", "in-cluster"),
    );
    wait_for("settings=two", WAIT, || {
        (live_value(&hub) == "two").then_some(())
    });

    // Unknown project: refused by the API.
    let out = apply(
        &hub,
        dir.path(),
        &app_yaml(&url, "main", "app", "in-cluster").replace("project: default", "project: other"),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("spec.project: Unsupported value: \"other\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sync_acts_as_the_applications_creator() {
    let dir = TestDir::new("gitops-user");
    let (hub, repo) = hub_and_repo(&dir);
    hub.kubectl_ok(&["create", "namespace", "argocd"]);
    hub.kubectl_ok(&["create", "namespace", "team"]);
    // alice may manage Argo CD Applications in argocd, and nothing in team.
    hub.kubectl_ok(&[
        "create",
        "role",
        "argo-apps",
        "-n",
        "argocd",
        "--verb=*",
        "--resource=applications.argoproj.io",
    ]);
    hub.kubectl_ok(&[
        "create",
        "rolebinding",
        "alice-argo",
        "-n",
        "argocd",
        "--role=argo-apps",
        "--user=alice",
    ]);
    let alice = user_kubeconfig(&hub, "alice", &["dev"]);
    let path = dir.path().join("app.yaml");
    std::fs::write(
        &path,
        app_yaml(&repo.file_url(), "main", "app", "in-cluster")
            .replace("CreateNamespace=true", "Validate=true"),
    )
    .unwrap();
    let out = support::kubectl(&alice, &["apply", "-f", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        hub.jsonpath(
            "applications.argoproj.io",
            "settings",
            "argocd",
            "{.metadata.annotations.app\\.oam\\.dev/username}"
        ),
        "alice"
    );
    let message = wait_condition(&hub, "SyncError", "alice");
    assert!(message.contains("User \"alice\" cannot"), "{message}");
    assert!(
        !hub.exists("configmap", "settings", "team"),
        "nothing is written as the controller"
    );
    // Granted: the next self-heal pass syncs as alice.
    hub.kubectl_ok(&[
        "create",
        "rolebinding",
        "alice-edit",
        "-n",
        "team",
        "--clusterrole=edit",
        "--user=alice",
    ]);
    wait_for("settings as alice", WAIT, || {
        (live_value(&hub) == "one").then_some(())
    });
}
