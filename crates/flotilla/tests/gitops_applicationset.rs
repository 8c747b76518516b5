//! ApplicationSets end to end: the clusters generator makes one Argo CD Application per joined
//! cluster carrying a label, and follows label changes (a cluster that loses the label loses
//! its Application and, through the resources finalizer, what it synced); the list generator
//! makes one per element.

mod support;

use std::time::Duration;

use support::git::{GitDaemon, GitRepo};
use support::{Server, TestDir, flotilla, stderr, wait_for};

const WAIT: Duration = Duration::from_secs(60);

/// `flotilla cluster labels add|del CLUSTER ARG`.
fn label(hub: &Server, verb: &str, cluster: &str, arg: &str) {
    let out = flotilla(&hub.kubeconfig, &["cluster", "labels", verb, cluster, arg]);
    assert!(out.status.success(), "labels: {}", stderr(&out));
}

fn argo_apps(hub: &Server) -> Vec<String> {
    let out = hub.kubectl_ok(&[
        "get",
        "applications.argoproj.io",
        "-n",
        "argocd",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    let mut names: Vec<String> = out.split_whitespace().map(str::to_string).collect();
    names.sort();
    names
}

#[test]
fn clusters_generator_follows_labels() {
    let dir = TestDir::new("gitops-appset");
    let hub = Server::start(
        &[
            "hub",
            "--listen",
            "127.0.0.1:0",
            "--gitops-poll-interval",
            "2s",
        ],
        &dir.path().join("hub"),
    );
    let m1 = Server::member("m1", &dir.path().join("m1"));
    let m2 = Server::member("m2", &dir.path().join("m2"));
    hub.join("m1", &m1);
    hub.join("m2", &m2);
    label(&hub, "add", "m1", "env=prod");

    let repos = dir.path().join("repos");
    let repo = GitRepo::init(&repos.join("apps"));
    repo.write(
        "guestbook/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: guestbook}\ndata: {a: b}\n",
    );
    repo.commit("guestbook");
    let daemon = GitDaemon::serve(&repos);

    hub.kubectl_ok(&["create", "namespace", "argocd"]);
    let set = format!(
        "apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {{name: guestbook, namespace: argocd}}
spec:
  generators:
  - clusters:
      selector: {{matchLabels: {{env: prod}}}}
  template:
    metadata:
      name: 'guestbook-{{{{name}}}}'
      labels: {{env: '{{{{metadata.labels.env}}}}'}}
      finalizers: [resources-finalizer.argocd.argoproj.io]
    spec:
      project: default
      source: {{repoURL: '{}', path: guestbook}}
      destination: {{name: '{{{{name}}}}', namespace: guestbook}}
      syncPolicy:
        automated: {{prune: true}}
        syncOptions: [CreateNamespace=true]
---
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {{name: listed, namespace: argocd}}
spec:
  generators:
  - list:
      elements:
      - {{cluster: m2, ns: listed}}
  template:
    metadata: {{name: 'listed-{{{{cluster}}}}'}}
    spec:
      project: default
      source: {{repoURL: '{}', path: guestbook}}
      destination: {{name: '{{{{cluster}}}}', namespace: '{{{{ns}}}}'}}
      syncPolicy:
        syncOptions: [CreateNamespace=true]
        automated: {{}}
",
        daemon.url("apps"),
        repo.file_url()
    );
    let path = dir.path().join("sets.yaml");
    std::fs::write(&path, set).unwrap();
    hub.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);

    // One Application per labelled cluster (plus the listed one), each synced there.
    wait_for("guestbook-m1 and listed-m2", WAIT, || {
        (argo_apps(&hub) == ["guestbook-m1", "listed-m2"]).then_some(())
    });
    assert_eq!(
        hub.jsonpath(
            "applications.argoproj.io",
            "guestbook-m1",
            "argocd",
            "{.metadata.labels.env}"
        ),
        "prod"
    );
    assert_eq!(
        hub.jsonpath(
            "applications.argoproj.io",
            "guestbook-m1",
            "argocd",
            "{.metadata.ownerReferences[0].name}"
        ),
        "guestbook"
    );
    wait_for("guestbook on m1", WAIT, || {
        m1.exists("configmap", "guestbook", "guestbook")
            .then_some(())
    });
    wait_for("listed on m2", WAIT, || {
        m2.exists("configmap", "guestbook", "listed").then_some(())
    });
    assert!(!m2.exists("configmap", "guestbook", "guestbook"));

    // m2 gains the label: a second Application; m1 loses it: its Application and objects go.
    label(&hub, "add", "m2", "env=prod");
    wait_for("guestbook-m2", WAIT, || {
        argo_apps(&hub)
            .contains(&"guestbook-m2".to_string())
            .then_some(())
    });
    wait_for("guestbook on m2", WAIT, || {
        m2.exists("configmap", "guestbook", "guestbook")
            .then_some(())
    });
    label(&hub, "del", "m1", "env");
    wait_for("guestbook-m1 gone", WAIT, || {
        (argo_apps(&hub) == ["guestbook-m2", "listed-m2"]).then_some(())
    });
    wait_for("guestbook off m1", WAIT, || {
        (!m1.exists("configmap", "guestbook", "guestbook")).then_some(())
    });
    let status = hub.jsonpath(
        "applicationset",
        "guestbook",
        "argocd",
        "{.status.conditions[0].type}",
    );
    assert_eq!(status, "ResourcesUpToDate");
}
