//! A simulated member runs workloads as a cluster does: Nodes are Ready, a Deployment gets a
//! ReplicaSet (pod-template-hash, revision annotations, owner reference) and the ReplicaSet
//! gets Pods (owner reference, node, pod IP, Running and Ready after the delay); a rollout
//! makes a new ReplicaSet and scales the old one to zero; `kubectl rollout history` and
//! `kubectl rollout undo` (1.27 and 1.33) work; a bare Pod runs; deleting the Deployment
//! deletes its ReplicaSets and Pods; a Service gets EndpointSlices and Endpoints of its ready
//! Pods; a stuck Deployment's Pods never become ready. A kube-rs client reads the same
//! Deployment → ReplicaSet → Pods chain as typed objects.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use support::{Server, TestDir, kubectl_dir, kubectl_with, stderr, stdout, wait_for};

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default, annotations: {team: blue}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: stuck
  namespace: default
  annotations: {sim.flotilla.io/stuck: "true"}
spec:
  replicas: 2
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec: {containers: [{name: stuck, image: nginx}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: bare, namespace: default, labels: {app: bare}}
spec: {containers: [{name: bare, image: busybox}]}
"#;

fn apply(member: &Server, yaml: &str) {
    let path = member.data_dir.join("apply.yaml");
    std::fs::write(&path, yaml).unwrap();
    member.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
}

fn get(member: &Server, what: &str, path: &str) -> String {
    let query = format!("jsonpath={path}");
    stdout(&member.kubectl(&["get", what, "-o", &query]))
}

fn eventually(member: &Server, what: &str, path: &str, check: impl Fn(&str) -> bool) -> String {
    wait_for(&format!("{what} {path}"), Duration::from_secs(60), || {
        let v = get(member, what, path);
        check(&v).then_some(v)
    })
}

fn kubectl_ok(bin: &Path, member: &Server, args: &[&str]) -> String {
    let out = kubectl_with(bin, &member.kubeconfig, args);
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        bin.display(),
        stderr(&out)
    );
    stdout(&out)
}

/// The ReplicaSets of Deployment `web`: (name, spec.replicas, revision), one per line.
fn web_replicasets(member: &Server) -> Vec<(String, String, String)> {
    let lines = get(
        member,
        "rs",
        r#"{range .items[?(@.metadata.ownerReferences[0].name=="web")]}{.metadata.name} {.spec.replicas} {.metadata.annotations.deployment\.kubernetes\.io/revision}{"\n"}{end}"#,
    );
    let mut out: Vec<_> = lines
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect();
    out.sort_by(|a, b| a.2.cmp(&b.2));
    out
}

/// A kube-rs client decodes the same chain into k8s-openapi types: the ReplicaSet owned by
/// the Deployment `web`, three Running Pods owned by the ReplicaSet.
fn kube_rs_sees_the_chain(member: &Server, rs_name: &str) {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = member.kube_client().await;
        let rs = Api::<ReplicaSet>::namespaced(client.clone(), "default")
            .get(rs_name)
            .await
            .unwrap();
        let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("Deployment", "web")
        );
        assert_eq!(owner.controller, Some(true));
        let pods = Api::<Pod>::namespaced(client, "default")
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap();
        let owned: Vec<&Pod> = pods
            .items
            .iter()
            .filter(|p| {
                p.metadata.owner_references.as_ref().is_some_and(|o| {
                    o[0].name == rs_name && o[0].uid == rs.metadata.uid.clone().unwrap()
                })
            })
            .collect();
        assert_eq!(owned.len(), 3, "{:?}", pods.items);
        for pod in owned {
            let status = pod.status.as_ref().unwrap();
            assert_eq!(status.phase.as_deref(), Some("Running"));
            assert!(
                status
                    .pod_ip
                    .as_deref()
                    .is_some_and(|ip| ip.starts_with("10."))
            );
        }
    });
}

#[test]
fn member_runs_deployments_through_replicasets_and_pods() {
    let dir = TestDir::new("member-workloads");
    let member = Server::start(
        &[
            "member",
            "--name",
            "east",
            "--listen",
            "127.0.0.1:0",
            "--ready-delay",
            "300ms",
        ],
        &dir.path().join("east"),
    );
    // The member's Node is Ready.
    let nodes = member.kubectl_ok(&["get", "nodes"]);
    assert!(
        nodes.contains("east-node-1") && nodes.contains("Ready"),
        "{nodes}"
    );

    apply(&member, WEB);
    eventually(&member, "deployment/web", "{.status.readyReplicas}", |v| {
        v == "3"
    });

    // One ReplicaSet named after the template hash, labelled, annotated, owned.
    let rs = web_replicasets(&member);
    assert_eq!(rs.len(), 1, "{rs:?}");
    let (rs_name, replicas, revision) = rs[0].clone();
    assert_eq!((replicas.as_str(), revision.as_str()), ("3", "1"));
    let rs_path = format!("rs/{rs_name}");
    let hash = get(&member, &rs_path, "{.metadata.labels.pod-template-hash}");
    assert_eq!(rs_name, format!("web-{hash}"));
    assert_eq!(
        get(
            &member,
            &rs_path,
            r#"{.metadata.annotations.deployment\.kubernetes\.io/desired-replicas}/{.metadata.annotations.deployment\.kubernetes\.io/max-replicas}/{.metadata.annotations.team}"#
        ),
        "3/4/blue"
    );
    assert_eq!(
        get(
            &member,
            &rs_path,
            "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].controller}"
        ),
        "Deployment/true"
    );
    assert_eq!(
        get(
            &member,
            "deployment/web",
            r#"{.metadata.annotations.deployment\.kubernetes\.io/revision}"#
        ),
        "1"
    );

    // Three Pods of it: owned, on the Node, Running, Ready, with distinct pod IPs.
    let pods = get(
        &member,
        "pods",
        &format!(
            r#"{{range .items[?(@.metadata.labels.pod-template-hash=="{hash}")]}}{{.metadata.name}} {{.metadata.ownerReferences[0].name}} {{.spec.nodeName}} {{.status.phase}} {{.status.podIP}} {{.status.hostIP}} {{.status.conditions[?(@.type=="Ready")].status}} {{.status.containerStatuses[0].ready}} {{.status.containerStatuses[0].restartCount}}{{"\n"}}{{end}}"#
        ),
    );
    let mut ips = HashSet::new();
    for line in pods.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert!(
            f[0].starts_with(&format!("{rs_name}-")) && f[0].len() == rs_name.len() + 6,
            "{line}"
        );
        assert_eq!(
            &f[1..4],
            &[rs_name.as_str(), "east-node-1", "Running"],
            "{line}"
        );
        assert!(
            f[4].starts_with("10.") && ips.insert(f[4].to_string()),
            "{line}"
        );
        assert!(f[5].starts_with("100.64."), "{line}");
        assert_eq!(&f[6..], &["True", "true", "0"], "{line}");
    }
    assert_eq!(ips.len(), 3, "{pods}");
    kube_rs_sees_the_chain(&member, &rs_name);

    // The Service's EndpointSlice and Endpoints list the ready Pods' addresses.
    let slice_path = r#"{range .items[*]}{.metadata.labels.endpointslice\.kubernetes\.io/managed-by} {.ports[0].port} {range .endpoints[*]}{.addresses[0]}={.conditions.ready} {end}{end}"#;
    let slice = wait_for("web's EndpointSlice", Duration::from_secs(60), || {
        let out = stdout(&member.kubectl(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            &format!("jsonpath={slice_path}"),
        ]));
        (out.matches("=true").count() == 3).then_some(out)
    });
    assert!(
        slice.starts_with("endpointslice-controller.k8s.io 8080 "),
        "{slice}"
    );
    for ip in &ips {
        assert!(
            slice.contains(&format!("{ip}=true")),
            "{ip} missing in {slice}"
        );
    }
    let addresses = get(&member, "endpoints/web", "{.subsets[0].addresses[*].ip}");
    let listed: HashSet<String> = addresses.split(' ').map(str::to_string).collect();
    assert_eq!(listed, ips, "{addresses}");

    // kubectl's tables, old and new.
    for version in ["1.27", "1.33"] {
        let bin = kubectl_dir().join(format!("kubectl.{version}"));
        let table = kubectl_ok(&bin, &member, &["get", "rs,pods", "-o", "wide"]);
        assert!(
            table.contains(&rs_name) && table.contains("Running"),
            "{version}: {table}"
        );
        assert!(table.contains("east-node-1"), "{version}: {table}");
    }

    // The bare Pod runs too.
    eventually(
        &member,
        "pod/bare",
        "{.status.phase}/{.spec.nodeName}",
        |v| v == "Running/east-node-1",
    );

    // A rollout: a second ReplicaSet at revision 2, the first scaled to zero.
    member.kubectl_ok(&["set", "image", "deployment/web", "web=nginx:1.27"]);
    let done = member.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(done.contains("successfully rolled out"), "{done}");
    let rs = wait_for("old ReplicaSet at zero", Duration::from_secs(60), || {
        let rs = web_replicasets(&member);
        (rs.len() == 2 && rs[0].1 == "0" && rs[1].1 == "3").then_some(rs)
    });
    assert_eq!(
        (rs[0].0.as_str(), rs[1].2.as_str()),
        (rs_name.as_str(), "2")
    );
    eventually(
        &member,
        "deployment/web",
        "{.status.updatedReplicas}/{.status.replicas}",
        |v| v == "3/3",
    );

    // History and undo with the oldest and newest kubectl.
    for (version, expect_current) in [("1.27", rs_name.clone()), ("1.33", rs[1].0.clone())] {
        let bin = kubectl_dir().join(format!("kubectl.{version}"));
        let history = kubectl_ok(&bin, &member, &["rollout", "history", "deployment/web"]);
        assert!(history.contains("REVISION"), "{version}: {history}");
        kubectl_ok(&bin, &member, &["rollout", "undo", "deployment/web"]);
        kubectl_ok(
            &bin,
            &member,
            &["rollout", "status", "deployment/web", "--timeout=60s"],
        );
        let current = wait_for(
            "the rolled-back ReplicaSet",
            Duration::from_secs(60),
            || {
                let rs = web_replicasets(&member);
                let last = rs.last()?.clone();
                (last.1 == "3" && rs.iter().filter(|r| r.1 != "0").count() == 1).then_some(last)
            },
        );
        assert_eq!(current.0, expect_current, "{version}");
    }
    let history = member.kubectl_ok(&["rollout", "history", "deployment/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, vec!["3", "4"], "{history}");
    let image = member.kubectl_ok(&["rollout", "history", "deployment/web", "--revision=4"]);
    assert!(image.contains("nginx:1.27"), "{image}");

    // The stuck Deployment's Pods exist but never become ready.
    eventually(&member, "deployment/stuck", "{.status.replicas}", |v| {
        v == "2"
    });
    let stuck = get(
        &member,
        "pods",
        r#"{range .items[?(@.metadata.labels.app=="stuck")]}{.status.containerStatuses[0].state.waiting.reason} {end}"#,
    );
    assert_eq!(
        stuck.trim(),
        "ContainerCreating ContainerCreating",
        "{stuck}"
    );
    assert_eq!(
        get(&member, "deployment/stuck", "{.status.readyReplicas}"),
        ""
    );

    // Deleting the Deployment deletes its ReplicaSets and Pods.
    member.kubectl_ok(&["delete", "deployment", "web"]);
    wait_for(
        "web's ReplicaSets and Pods gone",
        Duration::from_secs(60),
        || {
            let left = get(
                &member,
                "rs,pods",
                r#"{range .items[*]}{.metadata.name} {end}"#,
            );
            (!left.contains("web-")).then_some(())
        },
    );
    assert_eq!(get(&member, "pod/bare", "{.status.phase}"), "Running");
    eventually(&member, "endpoints/web", "{.subsets}", |v| {
        v.is_empty() || v == "[]"
    });
}

/// Many Deployments at once: the member ends with exactly one ReplicaSet per Deployment and
/// `replicas` Pods per ReplicaSet, and its simulator never created a Pod more than that (its
/// Pod cache may lag behind its own writes; expectations keep it from acting twice).
#[test]
fn many_deployments_get_exactly_their_replicasets_and_pods() {
    const DEPLOYMENTS: usize = 30;
    const REPLICAS: usize = 3;
    let dir = TestDir::new("member-many-deployments");
    let member = Server::start(
        &[
            "member",
            "--name",
            "west",
            "--listen",
            "127.0.0.1:0",
            "--ready-delay",
            "100ms",
        ],
        &dir.path().join("west"),
    );
    let yaml: Vec<String> = (0..DEPLOYMENTS)
        .map(|k| {
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d-{k}, namespace: default}}\n\
                 spec:\n  replicas: {REPLICAS}\n  selector: {{matchLabels: {{app: d-{k}}}}}\n  \
                 template:\n    metadata: {{labels: {{app: d-{k}}}}}\n    \
                 spec: {{containers: [{{name: web, image: nginx}}]}}\n"
            )
        })
        .collect();
    apply(&member, &yaml.join("---\n"));
    let pods = DEPLOYMENTS * REPLICAS;
    let ready = r#"{range .items[*]}{.status.readyReplicas}{"\n"}{end}"#;
    wait_for("every Deployment ready", Duration::from_secs(60), || {
        let out = get(&member, "deployments", ready);
        let n = out.lines().filter(|l| *l == REPLICAS.to_string()).count();
        (n == DEPLOYMENTS).then_some(())
    });
    let names = r#"{range .items[*]}{.metadata.name}{"\n"}{end}"#;
    let count = |what: &str| get(&member, what, names).lines().count();
    assert_eq!(count("rs"), DEPLOYMENTS);
    assert_eq!(count("pods"), pods);
    // The audit log counts the simulator's writes: each Pod created once, none deleted.
    let audit = std::fs::read_to_string(member.data_dir.join("audit.log")).unwrap();
    let writes = |verb: &str| {
        audit
            .lines()
            .filter(|l| l.contains(&format!(r#""verb":"{verb}""#)))
            .filter(|l| l.contains(r#""resource":"pods""#) && !l.contains(r#""subresource""#))
            .count()
    };
    assert_eq!((writes("create"), writes("delete")), (pods, 0));
}
