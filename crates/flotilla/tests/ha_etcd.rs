//! Several hubs over one etcd cluster (SPEC §3 and §8, issue 9), end to end: real `etcd`
//! processes (Debian's `etcd-server`) on free loopback ports, real `flotilla hub --storage etcd`
//! processes, real kubectl.
//!
//! - a write through one hub is read, watched and authorized through another;
//! - `kill -9` of the leading hub mid-rollout: another hub takes the Lease and the
//!   Application converges with one revision per publish and nothing orphaned;
//! - `kill -9` of one of three etcd members under write load loses no acknowledged write;
//! - etcd stopped entirely: 5xx Status naming the cause, watches end, `/readyz` fails; once
//!   etcd is back the hubs recover without a restart and the Application converges.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use support::etcd::{EtcdCluster, WAIT, etcd_hub, lease_holder};
use support::sturdy::{labelled, sturdy_app};
use support::{Server, TestDir, kubectl, wait_for};

/// Writes `text` to `DIR/name` and returns the path.
fn file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn hubs_over_one_etcd_are_one_api() {
    let dir = TestDir::new("ha-one-api");
    let etcd = EtcdCluster::start(1, dir.path()).expect("etcd");
    let a = etcd_hub("hub-a", &etcd, dir.path());
    let b = etcd_hub("hub-b", &etcd, dir.path());

    // A watch on B sees what is written through A.
    let watch_out = dir.path().join("watch.out");
    let mut watch = Command::new("kubectl")
        .env("KUBECONFIG", &b.kubeconfig)
        .args(["get", "configmaps", "-n", "default", "-w", "-o", "name"])
        .stdout(Stdio::from(std::fs::File::create(&watch_out).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    a.kubectl_ok(&[
        "create",
        "configmap",
        "shared",
        "-n",
        "default",
        "--from-literal=k=1",
    ]);
    let rv_a = a.jsonpath("cm", "shared", "default", "{.metadata.resourceVersion}");
    let rv_b = b.jsonpath("cm", "shared", "default", "{.metadata.resourceVersion}");
    assert_eq!(
        rv_a, rv_b,
        "one resourceVersion (the etcd revision) on both hubs"
    );
    wait_for("B's watch to see A's create", WAIT, || {
        let seen = std::fs::read_to_string(&watch_out).unwrap_or_default();
        seen.contains("configmap/shared").then_some(())
    });
    let _ = watch.kill();
    let _ = watch.wait();

    // Optimistic concurrency spans hubs: B updates, A's stale resourceVersion conflicts.
    b.kubectl_ok(&[
        "patch",
        "cm",
        "shared",
        "-n",
        "default",
        "-p",
        r#"{"data":{"k":"2"}}"#,
    ]);
    assert_eq!(a.jsonpath("cm", "shared", "default", "{.data.k}"), "2");
    let stale = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"shared","namespace":"default","resourceVersion":"{rv_a}"}},"data":{{"k":"3"}}}}"#
    );
    let out = a.kubectl(&["replace", "-f", &file(dir.path(), "stale.json", &stale)]);
    assert!(!out.status.success());
    assert!(support::stderr(&out).contains("the object has been modified"));

    // RBAC granted through A is enforced by B (its cache follows etcd); the CA is shared.
    let alice = support::user_kubeconfig(&a, "alice", &[]);
    assert!(
        !kubectl(&alice, &["get", "cm", "-n", "default"])
            .status
            .success()
    );
    a.kubectl_ok(&[
        "create",
        "rolebinding",
        "alice-view",
        "-n",
        "default",
        "--clusterrole=view",
        "--user=alice",
    ]);
    let alice_b = dir.path().join("alice-b.kubeconfig");
    let text = std::fs::read_to_string(&alice)
        .unwrap()
        .replace(&a.url(), &b.url());
    std::fs::write(&alice_b, text).unwrap();
    wait_for("B to authorize alice", WAIT, || {
        kubectl(&alice_b, &["get", "cm", "shared", "-n", "default"])
            .status
            .success()
            .then_some(())
    });

    namespace_lifecycle_spans_hubs(&a, &b, dir.path());

    // One hub holds the controllers' Lease, and both hubs show the same holder.
    let holder = wait_for("a Lease holder", WAIT, || {
        Some(lease_holder(&a)).filter(|h| !h.is_empty())
    });
    assert!(holder == "hub-a" || holder == "hub-b", "{holder}");
    assert_eq!(lease_holder(&b), holder);
    let table = b.kubectl_ok(&["get", "lease", "-n", "kube-system"]);
    assert!(
        table.contains("flotilla-controllers") && table.contains(&holder),
        "{table}"
    );
}

/// Each hub answers "may content be created in this namespace?" from its namespace cache:
/// a namespace made through one hub is usable through the other at once, one marked
/// Terminating refuses new content at once through the hub that deleted it and, once its
/// watch delivers it, through the other; a namespace gone is NotFound on both.
fn namespace_lifecycle_spans_hubs(a: &Server, b: &Server, dir: &Path) {
    b.kubectl_ok(&["create", "namespace", "spanning"]);
    // A finalizer keeps the namespace Terminating until the test releases it.
    let held = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"held","namespace":"spanning","finalizers":["example.com/hold"]}}"#;
    a.kubectl_ok(&["create", "-f", &file(dir, "held.json", held)]);
    b.kubectl_ok(&["delete", "namespace", "spanning", "--wait=false"]);
    let refused = |hub: &Server, name: &str| {
        let out = hub.kubectl(&["create", "configmap", name, "-n", "spanning"]);
        !out.status.success() && support::stderr(&out).contains("being terminated")
    };
    assert!(refused(b, "late-b"), "the deleting hub refuses at once");
    let mut n = 0;
    wait_for(
        "A to refuse content in the terminating namespace",
        WAIT,
        || {
            n += 1;
            refused(a, &format!("late-a-{n}")).then_some(())
        },
    );
    a.kubectl_ok(&[
        "patch",
        "cm",
        "held",
        "-n",
        "spanning",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    for hub in [a, b] {
        wait_for("the namespace to be gone", WAIT, || {
            let out = hub.kubectl(&["create", "configmap", "after", "-n", "spanning"]);
            support::stderr(&out)
                .contains("namespaces \"spanning\" not found")
                .then_some(())
        });
    }
}

fn app(replicas: u32) -> String {
    sturdy_app(replicas, &["m1", "m2", "m3"])
}

fn replicas_on(member: &Server) -> String {
    member.jsonpath("deployment", "sturdy", "default", "{.spec.replicas}")
}

fn converged(hub: &Server, members: &[Server], replicas: u32) -> bool {
    hub.jsonpath("app", "sturdy", "default", "{.status.status}") == "running"
        && members
            .iter()
            .all(|m| replicas_on(m) == replicas.to_string())
}

fn members(dir: &Path, names: &[&str]) -> Vec<Server> {
    names
        .iter()
        .map(|n| {
            Server::start(
                &[
                    "member",
                    "--name",
                    n,
                    "--listen",
                    "127.0.0.1:0",
                    "--ready-delay",
                    "2s",
                ],
                &dir.join(n),
            )
        })
        .collect()
}

#[test]
fn leading_hub_killed_mid_rollout_another_takes_over() {
    let dir = TestDir::new("ha-takeover");
    let etcd = EtcdCluster::start(3, dir.path()).expect("etcd");
    let mut hubs: Vec<Option<Server>> = ["hub-a", "hub-b", "hub-c"]
        .iter()
        .map(|n| Some(etcd_hub(n, &etcd, dir.path())))
        .collect();
    let first = hubs[0].as_ref().unwrap();
    let members = members(dir.path(), &["m1", "m2", "m3"]);
    for (name, member) in ["m1", "m2", "m3"].iter().zip(&members) {
        first.join(name, member);
    }
    let leader = wait_for("a Lease holder", WAIT, || {
        Some(lease_holder(first)).filter(|h| !h.is_empty())
    });
    first.kubectl_ok(&["create", "namespace", "takeover"]);
    first.kubectl_ok(&["apply", "-f", &file(dir.path(), "app.yaml", &app(2))]);
    wait_for("the rollout to start", WAIT, || {
        members
            .iter()
            .any(|m| !labelled(m, "deployments").is_empty())
            .then_some(())
    });

    // kill -9 the leader; the others elect a new one.
    let index = ["hub-a", "hub-b", "hub-c"]
        .iter()
        .position(|n| *n == leader)
        .unwrap();
    let mut dead = hubs[index].take().unwrap();
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let killed_at = Instant::now();
    let killed_on_clock = Timestamp::now();
    let survivor = hubs.iter().flatten().next().unwrap();
    // Published after the kill, so only the next leader can reconcile it: its first
    // ApplicationRevision marks that leader's first reconcile.
    let marker = app(1)
        .replace("sturdy", "marker")
        .replace("namespace: default", "namespace: takeover");
    survivor.kubectl_ok(&["apply", "-f", &file(dir.path(), "marker.yaml", &marker)]);
    let new_leader = wait_for("another hub to take the Lease", WAIT, || {
        Some(lease_holder(survivor)).filter(|h| !h.is_empty() && *h != leader)
    });
    let lease_taken = killed_at.elapsed();
    wait_for("the new leader's first reconcile", WAIT, || {
        survivor
            .exists("applicationrevision", "marker-v1", "takeover")
            .then_some(())
    });
    let polled = killed_at.elapsed();
    // The hubs' audit logs date the writes to the millisecond (polling through kubectl sees
    // them up to a poll later): the old leader's last renewal, the new leader's acquisition
    // and its first ApplicationRevision.
    let lease = "/leases/flotilla-controllers";
    let new_hub = hubs
        .iter()
        .flatten()
        .find(|h| h.data_dir.ends_with(&new_leader));
    let after_kill = |uri: &str| {
        let first = new_hub.and_then(|h| {
            audited_writes(h, uri)
                .into_iter()
                .find(|t| *t > killed_on_clock)
        });
        first.map_or(f64::NAN, |t| seconds_between(killed_on_clock, t))
    };
    let renewed_before_kill = audited_writes(&dead, lease)
        .into_iter()
        .rfind(|t| *t < killed_on_clock)
        .map_or(f64::NAN, |t| seconds_between(t, killed_on_clock));
    eprintln!(
        "takeover: {leader} killed {renewed_before_kill:.2}s after its last renewal; \
         {new_leader} holds the Lease after {:.2}s, first reconcile after {:.2}s \
         (audit logs; polled: {:.1}s, {:.1}s)",
        after_kill(lease),
        after_kill("/applicationrevisions/marker-v1"),
        lease_taken.as_secs_f64(),
        polled.as_secs_f64()
    );

    wait_for("convergence after takeover", WAIT, || {
        converged(survivor, &members, 2).then_some(())
    });
    // A second publish after the takeover: exactly one more revision.
    survivor.kubectl_ok(&["apply", "-f", &file(dir.path(), "app2.yaml", &app(3))]);
    wait_for("the second publish to converge", WAIT, || {
        converged(survivor, &members, 3).then_some(())
    });
    let revisions = survivor.kubectl_ok(&["get", "apprev", "-n", "default", "-o", "name"]);
    assert_eq!(
        revisions.split_whitespace().collect::<Vec<_>>(),
        [
            "applicationrevision.core.oam.dev/sturdy-v1",
            "applicationrevision.core.oam.dev/sturdy-v2"
        ]
    );
    for member in &members {
        assert_eq!(labelled(member, "deployments"), ["deployment.apps/sturdy"]);
        assert_eq!(labelled(member, "services"), ["service/sturdy"]);
        // Applied once per publish: the spec changed exactly once after creation.
        assert_eq!(
            member.jsonpath("deployment", "sturdy", "default", "{.metadata.generation}"),
            "2"
        );
    }
    let tracked = survivor.kubectl_ok(&[
        "get",
        "rt",
        "sturdy-default",
        "-o",
        "jsonpath={range .spec.managedResources[*]}{.cluster}/{.kind} {end}",
    ]);
    assert_eq!(
        tracked.split_whitespace().count(),
        6,
        "three members × (Deployment, Service): {tracked}"
    );
}

/// When `hub`'s audit log says the successful writes whose URI contains `uri` completed.
fn audited_writes(hub: &Server, uri: &str) -> Vec<Timestamp> {
    let log = std::fs::read_to_string(hub.data_dir.join("audit.log")).unwrap_or_default();
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|e| e["requestURI"].as_str().is_some_and(|u| u.contains(uri)))
        .filter(|e| {
            e["responseStatus"]["code"]
                .as_u64()
                .is_some_and(|c| c < 300)
        })
        .filter_map(|e| e["stageTimestamp"].as_str()?.parse::<Timestamp>().ok())
        .collect()
}

/// Seconds from `earlier` to `later`.
fn seconds_between(earlier: Timestamp, later: Timestamp) -> f64 {
    (later.as_nanosecond() - earlier.as_nanosecond()) as f64 / 1e9
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_member_killed_under_write_load_keeps_acknowledged_writes() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, ListParams, PostParams};

    let dir = TestDir::new("ha-etcd-kill");
    let mut etcd = EtcdCluster::start(3, dir.path()).expect("etcd");
    let a = etcd_hub("hub-a", &etcd, dir.path());
    let b = etcd_hub("hub-b", &etcd, dir.path());
    let clients = [a.kube_client().await, b.kube_client().await];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let api: Api<ConfigMap> = Api::namespaced(clients[w % 2].clone(), "default");
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("load-{w}-{i}");
                i += 1;
                let cm: ConfigMap = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": name},
                    "data": {"writer": w.to_string()}
                }))
                .unwrap();
                if api.create(&PostParams::default(), &cm).await.is_ok() {
                    acknowledged.push(name);
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    etcd.kill(0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    let api: Api<ConfigMap> = Api::namespaced(clients[1].clone(), "default");
    let stored: std::collections::HashSet<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .collect();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !stored.contains(*n))
        .collect();
    eprintln!(
        "{} writes acknowledged, {} objects stored, {} missing",
        acknowledged.len(),
        stored.iter().filter(|n| n.starts_with("load-")).count(),
        missing.len()
    );
    assert!(
        acknowledged.len() > 20,
        "the load ran: {}",
        acknowledged.len()
    );
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
}

#[test]
fn etcd_stopped_then_started_hubs_recover() {
    let dir = TestDir::new("ha-etcd-down");
    let mut etcd = EtcdCluster::start(3, dir.path()).expect("etcd");
    let a = etcd_hub("hub-a", &etcd, dir.path());
    let b = etcd_hub("hub-b", &etcd, dir.path());
    let members = members(dir.path(), &["m1", "m2", "m3"]);
    for (name, member) in ["m1", "m2", "m3"].iter().zip(&members) {
        a.join(name, member);
    }
    a.kubectl_ok(&["apply", "-f", &file(dir.path(), "app.yaml", &app(2))]);
    wait_for("the first rollout", WAIT, || {
        converged(&b, &members, 2).then_some(())
    });

    let mut watch = Command::new("kubectl")
        .env("KUBECONFIG", &b.kubeconfig)
        .args(["get", "configmaps", "-n", "default", "-w"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for i in 0..3 {
        etcd.kill(i);
    }
    // Requests fail with a 5xx Status that names the cause; /readyz says not ready.
    let out = wait_for("a storage error", WAIT, || {
        let out = a.kubectl(&[
            "get",
            "configmaps",
            "-n",
            "default",
            "--request-timeout=20s",
        ]);
        (!out.status.success()).then_some(out)
    });
    let message = support::stderr(&out);
    assert!(message.contains("storage is unavailable"), "{message}");
    assert!(!a.kubectl(&["get", "--raw", "/readyz"]).status.success());
    // The watch on B ends (the client would re-list) instead of hanging.
    wait_for("B's watch to end", WAIT, || {
        watch.try_wait().unwrap().map(|_| ())
    });

    for i in 0..3 {
        etcd.start_member(i).expect("etcd");
    }
    etcd.wait_healthy().expect("etcd");
    for hub in [&a, &b] {
        wait_for("the hub to be ready again", WAIT, || {
            hub.kubectl(&["get", "--raw", "/readyz"])
                .status
                .success()
                .then_some(())
        });
    }
    // No restart: the same processes serve, and the controllers pick up a new publish.
    b.kubectl_ok(&["apply", "-f", &file(dir.path(), "app2.yaml", &app(3))]);
    wait_for("convergence after etcd came back", WAIT, || {
        converged(&a, &members, 3).then_some(())
    });
}
