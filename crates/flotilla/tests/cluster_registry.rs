//! The cluster registry end to end: join (and its refusals), list, labels, health, detach,
//! seen through the flotilla CLI and through kubectl on the hub.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{Server, TestDir, flotilla, stderr, stdout, table_header, wait_for};

fn join(hub: &Server, member: &Server, name: &str, extra: &[&str]) -> std::process::Output {
    let kubeconfig = member.kubeconfig.to_string_lossy().into_owned();
    let mut args = vec!["cluster", "join", kubeconfig.as_str(), "--name", name];
    args.extend_from_slice(extra);
    flotilla(&hub.kubeconfig, &args)
}

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed: {}", stderr(&out));
    stdout(&out)
}

/// The row of `name` in a table, split on runs of spaces.
fn row(table: &str, name: &str) -> Option<Vec<String>> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
}

fn available(hub: &Server, name: &str) -> String {
    hub.kubectl_ok(&[
        "get",
        "managedcluster",
        name,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"ManagedClusterConditionAvailable\")].status}",
    ])
}

/// A copy of a kubeconfig with its server URL replaced.
fn with_server(src: &Path, dst: &Path, url: &str) {
    let text = std::fs::read_to_string(src).unwrap();
    let out: String = text
        .lines()
        .map(|l| match l.trim_start().strip_prefix("server:") {
            Some(_) => format!("{}server: {url}", &l[..l.len() - l.trim_start().len()]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dst, out).unwrap();
}

#[test]
fn join_list_label_probe_and_detach() {
    let dir = TestDir::new("cluster-registry");
    let hub = Server::hub_probing_every_second(&dir.path().join("hub"));
    let names = ["beijing-1", "beijing-2", "us-west-1"];
    let mut members: Vec<Server> = names
        .iter()
        .map(|n| Server::member(n, &dir.path().join(n)))
        .collect();

    for (name, member) in names.iter().zip(&members) {
        let out = ok(join(&hub, member, name, &[]), "join");
        assert!(out.contains(name), "{out}");
    }

    // Refusals store nothing.
    let out = join(&hub, &members[0], "local", &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("reserved"), "{}", stderr(&out));

    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = dir.path().join("unreachable.kubeconfig");
    with_server(
        &members[0].kubeconfig,
        &unreachable,
        &format!("https://127.0.0.1:{closed_port}"),
    );
    let out = flotilla(
        &hub.kubeconfig,
        &[
            "cluster",
            "join",
            unreachable.to_str().unwrap(),
            "--name",
            "gone",
        ],
    );
    assert!(!out.status.success());
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot reach cluster"),
        "{}",
        stderr(&out)
    );
    assert!(
        !hub.kubectl(&["get", "secret", "-n", "vela-system", "gone"])
            .status
            .success()
    );
    assert!(
        !hub.kubectl(&["get", "managedcluster", "gone"])
            .status
            .success()
    );

    // Credentials of another server (the hub's own CA does not sign for the member): refused.
    let wrong = dir.path().join("wrong.kubeconfig");
    with_server(&hub.kubeconfig, &wrong, &members[1].url());
    let out = flotilla(
        &hub.kubeconfig,
        &[
            "cluster",
            "join",
            wrong.to_str().unwrap(),
            "--name",
            "wrong",
        ],
    );
    assert!(!out.status.success(), "a foreign credential was accepted");
    assert!(
        !hub.kubectl(&["get", "managedcluster", "wrong"])
            .status
            .success()
    );

    // flotilla cluster list.
    let list = ok(
        flotilla(&hub.kubeconfig, &["cluster", "list"]),
        "cluster list",
    );
    let header = table_header(&list);
    assert_eq!(
        header,
        ["CLUSTER", "TYPE", "ENDPOINT", "ACCEPTED", "LABELS"]
    );
    for (name, member) in names.iter().zip(&members) {
        let r = row(&list, name).unwrap_or_else(|| panic!("{name} missing:\n{list}"));
        assert_eq!(r[1], "X509Certificate");
        assert_eq!(r[2], member.url());
        assert_eq!(r[3], "true");
    }

    // kubectl get managedclusters.
    let table = hub.kubectl_ok(&["get", "managedclusters"]);
    assert!(
        table.lines().next().unwrap().starts_with("NAME")
            && table.contains("HUB ACCEPTED")
            && table.contains("MANAGED CLUSTER URLS")
            && table.contains("JOINED")
            && table.contains("AVAILABLE"),
        "{table}"
    );
    let r = row(&table, "beijing-1").unwrap();
    assert_eq!(&r[1..4], ["true", &members[0].url(), "True"]);
    wait_for("beijing-1 AVAILABLE True", Duration::from_secs(30), || {
        let table = hub.kubectl_ok(&["get", "managedclusters"]);
        (row(&table, "beijing-1").unwrap()[4] == "True").then_some(())
    });
    let secret_type = hub.kubectl_ok(&[
        "get",
        "secret",
        "-n",
        "vela-system",
        "beijing-1",
        "-o",
        "jsonpath={.metadata.labels.cluster\\.core\\.oam\\.dev/cluster-credential-type}",
    ]);
    assert_eq!(secret_type, "X509Certificate");

    // Labels.
    ok(
        flotilla(
            &hub.kubeconfig,
            &[
                "cluster",
                "labels",
                "add",
                "us-west-1",
                "provider=AWS,tier=prod",
            ],
        ),
        "labels add",
    );
    let list = ok(
        flotilla(&hub.kubeconfig, &["cluster", "list"]),
        "cluster list",
    );
    assert_eq!(
        row(&list, "us-west-1").unwrap()[4],
        "provider=AWS,tier=prod"
    );
    let selected = hub.kubectl_ok(&["get", "managedclusters", "-l", "provider=AWS", "-o", "name"]);
    assert_eq!(
        selected.trim(),
        "managedcluster.cluster.open-cluster-management.io/us-west-1"
    );
    ok(
        flotilla(
            &hub.kubeconfig,
            &["cluster", "labels", "del", "us-west-1", "tier"],
        ),
        "labels del",
    );
    let list = ok(
        flotilla(&hub.kubeconfig, &["cluster", "list"]),
        "cluster list",
    );
    assert_eq!(row(&list, "us-west-1").unwrap()[4], "provider=AWS");
    let labels = hub.kubectl_ok(&["get", "managedcluster", "us-west-1", "--show-labels"]);
    assert!(
        labels.contains("provider=AWS") && !labels.contains("tier"),
        "{labels}"
    );
    let out = flotilla(
        &hub.kubeconfig,
        &["cluster", "labels", "add", "nope", "a=b"],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));

    // Health: stop a member, it turns not available; restart it on the same port, available.
    let address = members[1].url().trim_start_matches("https://").to_string();
    let member_dir = members[1].data_dir.clone();
    let stopped = members.remove(1);
    drop(stopped);
    wait_for("beijing-2 not available", Duration::from_secs(60), || {
        let s = available(&hub, "beijing-2");
        (s == "Unknown" || s == "False").then_some(())
    });
    let restarted = Server::start(
        &["member", "--name", "beijing-2", "--listen", &address],
        &member_dir,
    );
    wait_for("beijing-2 available again", Duration::from_secs(60), || {
        (available(&hub, "beijing-2") == "True").then_some(())
    });
    wait_for("beijing-1 still available", Duration::from_secs(30), || {
        (available(&hub, "beijing-1") == "True").then_some(())
    });

    // Detach does not need the member.
    drop(restarted);
    ok(
        flotilla(&hub.kubeconfig, &["cluster", "detach", "beijing-2"]),
        "detach",
    );
    let list = ok(
        flotilla(&hub.kubeconfig, &["cluster", "list"]),
        "cluster list",
    );
    assert!(row(&list, "beijing-2").is_none(), "{list}");
    assert!(
        !hub.kubectl(&["get", "managedcluster", "beijing-2"])
            .status
            .success()
    );
    assert!(
        !hub.kubectl(&["get", "secret", "-n", "vela-system", "beijing-2"])
            .status
            .success()
    );
    let out = flotilla(&hub.kubeconfig, &["cluster", "detach", "beijing-2"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not found"));

    // A ServiceAccount token works as a credential too; one that may create
    // ClusterRoleBindings (here cluster-admin) is used once and replaced by the hub's own
    // impersonate-only certificate.
    let token_member = &members[0];
    token_member.kubectl_ok(&["create", "serviceaccount", "fleet", "-n", "default"]);
    token_member.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "fleet-admin",
        "--clusterrole=cluster-admin",
        "--serviceaccount=default:fleet",
    ]);
    let token = token_member.kubectl_ok(&["create", "token", "fleet", "-n", "default"]);
    let token_kubeconfig = dir.path().join("token.kubeconfig");
    token_member.write_token_kubeconfig(&token_kubeconfig, "fleet", &token);
    ok(
        flotilla(
            &hub.kubeconfig,
            &[
                "cluster",
                "join",
                token_kubeconfig.to_str().unwrap(),
                "--name",
                "by-token",
            ],
        ),
        "join with a token",
    );
    let list = ok(
        flotilla(&hub.kubeconfig, &["cluster", "list"]),
        "cluster list",
    );
    assert_eq!(row(&list, "by-token").unwrap()[1], "X509Certificate");
    wait_for("by-token available", Duration::from_secs(30), || {
        (available(&hub, "by-token") == "True").then_some(())
    });
    // A revoked token is refused at join and stores nothing.
    let bad = dir.path().join("bad-token.kubeconfig");
    let text = std::fs::read_to_string(&token_kubeconfig).unwrap();
    std::fs::write(&bad, text.replace(token.trim(), "not-a-token")).unwrap();
    let out = flotilla(
        &hub.kubeconfig,
        &[
            "cluster",
            "join",
            bad.to_str().unwrap(),
            "--name",
            "bad-token",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("refused the credentials"),
        "{}",
        stderr(&out)
    );
    assert!(
        !hub.kubectl(&["get", "managedcluster", "bad-token"])
            .status
            .success()
    );

    // Re-joining is idempotent and keeps labels.
    ok(join(&hub, &members[1], "us-west-1", &[]), "re-join");
    let list = ok(
        flotilla(&hub.kubeconfig, &["cluster", "list"]),
        "cluster list",
    );
    assert_eq!(row(&list, "us-west-1").unwrap()[4], "provider=AWS");
}
