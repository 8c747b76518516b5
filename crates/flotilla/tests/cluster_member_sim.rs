//! A simulated member behaves like a cluster with controllers: rollouts become ready, Services
//! and Ingresses get addresses, claims bind, Jobs complete, HPAs scale, stuck rollouts stay
//! stuck, and a missing namespace is refused like Kubernetes.

mod support;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Server, TestDir, stderr, wait_for};

fn apply(member: &Server, yaml: &str) {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&member.kubeconfig)
        .args(["apply", "-f", "-"])
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl apply failed: {}",
        stderr(&out)
    );
}

fn jsonpath(member: &Server, what: &[&str], path: &str) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    let query = format!("jsonpath={path}");
    args.extend_from_slice(&["-o", &query]);
    let out = member.kubectl(&args);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn eventually(member: &Server, what: &[&str], path: &str, check: impl Fn(&str) -> bool) -> String {
    wait_for(&format!("{what:?} {path}"), Duration::from_secs(60), || {
        let v = jsonpath(member, what, path);
        check(&v).then_some(v)
    })
}

const DEPLOYMENTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
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
"#;

const NETWORK_AND_STORAGE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-lb, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default}
spec:
  ingressClassName: nginx
  rules:
  - host: web.example.com
    http:
      paths:
      - path: /
        pathType: ImplementationSpecific
        backend: {service: {name: web, port: {number: 80}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: once, namespace: default}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: once, image: busybox}]
"#;

const OTHER_WORKLOADS: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: postgres}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: default}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: agent, image: busybox}]}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: plain, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: plain}}
  template:
    metadata: {labels: {app: plain}}
    spec: {containers: [{name: plain, image: nginx}]}
"#;

const HPA: &str = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: default}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 5
  maxReplicas: 8
"#;

#[test]
fn member_simulates_workload_controllers() {
    let dir = TestDir::new("member-sim");
    let member = Server::start(
        &[
            "member",
            "--name",
            "m1",
            "--listen",
            "127.0.0.1:0",
            "--ready-delay",
            "300ms",
        ],
        &dir.path().join("m1"),
    );

    apply(&member, DEPLOYMENTS);
    eventually(
        &member,
        &["deployment", "web"],
        "{.status.readyReplicas}",
        |v| v == "3",
    );
    let status = jsonpath(
        &member,
        &["deployment", "web"],
        "{.status.replicas}/{.status.updatedReplicas}/{.status.availableReplicas}",
    );
    assert_eq!(status, "3/3/3");
    let generation = jsonpath(&member, &["deployment", "web"], "{.metadata.generation}");
    let observed = jsonpath(
        &member,
        &["deployment", "web"],
        "{.status.observedGeneration}",
    );
    assert_eq!(generation, observed);
    let table = member.kubectl_ok(&["get", "deployment", "web"]);
    assert!(table.contains("3/3"), "{table}");
    // kubectl's own rollout checks agree.
    let rollout = member.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    assert!(rollout.contains("successfully rolled out"), "{rollout}");
    member.kubectl_ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=30s",
    ]);

    // The stuck rollout is observed but never ready, even after the other one is.
    eventually(
        &member,
        &["deployment", "stuck"],
        "{.status.observedGeneration}",
        |v| !v.is_empty(),
    );
    assert_eq!(
        jsonpath(&member, &["deployment", "stuck"], "{.status.readyReplicas}"),
        ""
    );

    apply(&member, NETWORK_AND_STORAGE);
    let ip = eventually(&member, &["service", "web"], "{.spec.clusterIP}", |v| {
        !v.is_empty()
    });
    let octets: Vec<u8> = ip.split('.').map(|o| o.parse().unwrap()).collect();
    assert!(
        octets[0] == 10 && (96..112).contains(&octets[1]),
        "{ip} not in 10.96.0.0/12"
    );
    let lb_ip = eventually(
        &member,
        &["service", "web-lb"],
        "{.status.loadBalancer.ingress[0].ip}",
        |v| !v.is_empty(),
    );
    let lb_cluster_ip = jsonpath(&member, &["service", "web-lb"], "{.spec.clusterIP}");
    assert_ne!(lb_cluster_ip, ip, "two Services share a cluster IP");
    let ingress_ip = eventually(
        &member,
        &["ingress", "web"],
        "{.status.loadBalancer.ingress[0].ip}",
        |v| !v.is_empty(),
    );
    assert_ne!(ingress_ip, lb_ip);
    eventually(&member, &["pvc", "data"], "{.status.phase}", |v| {
        v == "Bound"
    });
    eventually(
        &member,
        &["job", "once"],
        "{.status.conditions[?(@.type==\"Complete\")].status}",
        |v| v == "True",
    );
    assert_eq!(
        jsonpath(&member, &["job", "once"], "{.status.succeeded}"),
        "1"
    );

    apply(&member, OTHER_WORKLOADS);
    eventually(
        &member,
        &["statefulset", "db"],
        "{.status.readyReplicas}",
        |v| v == "2",
    );
    eventually(
        &member,
        &["daemonset", "agent"],
        "{.status.numberReady}",
        |v| v == "1",
    );
    eventually(
        &member,
        &["replicaset", "plain"],
        "{.status.readyReplicas}",
        |v| v == "2",
    );
    let rollout = member.kubectl_ok(&["rollout", "status", "statefulset/db", "--timeout=30s"]);
    assert!(rollout.contains("roll"), "{rollout}");

    // An HPA with a higher floor scales its target, and the rollout follows.
    apply(&member, HPA);
    eventually(&member, &["deployment", "web"], "{.spec.replicas}", |v| {
        v == "5"
    });
    eventually(
        &member,
        &["deployment", "web"],
        "{.status.readyReplicas}",
        |v| v == "5",
    );
    eventually(&member, &["hpa", "web"], "{.status.currentReplicas}", |v| {
        v == "5"
    });

    // A namespaced object in a namespace that does not exist is refused like Kubernetes.
    let out = member.kubectl(&["create", "configmap", "x", "-n", "nope"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("namespaces \"nope\" not found"),
        "{}",
        stderr(&out)
    );
}
