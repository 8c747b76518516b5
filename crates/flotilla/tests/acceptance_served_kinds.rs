//! Acceptance (issue 2): every kind in the spec's served list can be applied, read, listed,
//! watched and deleted on the hub. Each kind is applied with real `kubectl apply -f`, read with
//! `kubectl get NAME -o json`, listed with `kubectl get PLURAL`, watched with a kube-rs watch
//! started before the apply (it must see ADDED and DELETED), and deleted with `kubectl delete`.

mod support;

use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, WatchParams};
use kube::core::WatchEvent;
use support::{Server, stderr, stdout, temp_dir};

/// (group, version, kind, plural, namespaced, manifest body after apiVersion/kind/metadata.name).
struct Kind {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    body: &'static str,
}

const NS: &str = "served";

const POD_TEMPLATE: &str = r#"
    metadata:
      labels: {app: k}
    spec:
      containers:
      - name: c
        image: nginx:1.25"#;

fn kinds() -> Vec<Kind> {
    let k = |group, version, kind, plural, namespaced, body| Kind {
        group,
        version,
        kind,
        plural,
        namespaced,
        body,
    };
    vec![
        k("", "v1", "Namespace", "namespaces", false, ""),
        k("", "v1", "ConfigMap", "configmaps", true, "data: {a: b}"),
        k("", "v1", "Secret", "secrets", true, "stringData: {a: b}"),
        k(
            "",
            "v1",
            "Service",
            "services",
            true,
            "spec:\n  ports:\n  - port: 80",
        ),
        k("", "v1", "ServiceAccount", "serviceaccounts", true, ""),
        k(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            "spec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests: {storage: 1Gi}",
        ),
        k(
            "",
            "v1",
            "Event",
            "events",
            true,
            "involvedObject: {kind: ConfigMap, name: x, namespace: served}\nreason: Test\nmessage: hello\ntype: Normal",
        ),
        k("apps", "v1", "Deployment", "deployments", true, "TEMPLATE"),
        k(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            true,
            "TEMPLATE_STS",
        ),
        k("apps", "v1", "DaemonSet", "daemonsets", true, "TEMPLATE_DS"),
        k("apps", "v1", "ReplicaSet", "replicasets", true, "TEMPLATE"),
        k(
            "batch",
            "v1",
            "Job",
            "jobs",
            true,
            "spec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: c\n        image: busybox",
        ),
        k(
            "batch",
            "v1",
            "CronJob",
            "cronjobs",
            true,
            "spec:\n  schedule: \"*/5 * * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers:\n          - name: c\n            image: busybox",
        ),
        k(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            true,
            "spec:\n  defaultBackend:\n    service: {name: web, port: {number: 80}}",
        ),
        k(
            "networking.k8s.io",
            "v1",
            "IngressClass",
            "ingressclasses",
            false,
            "spec: {controller: example.com/ingress}",
        ),
        k(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            true,
            "spec:\n  podSelector: {}",
        ),
        k(
            "autoscaling",
            "v1",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
            "spec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  maxReplicas: 3",
        ),
        k(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
            "spec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  maxReplicas: 4",
        ),
        k(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
            "spec:\n  minAvailable: 1\n  selector:\n    matchLabels: {app: k}",
        ),
        k(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            "spec: {holderIdentity: me}",
        ),
        k(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            "rules:\n- apiGroups: [\"\"]\n  resources: [configmaps]\n  verbs: [get]",
        ),
        k(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            "rules:\n- apiGroups: [\"\"]\n  resources: [configmaps]\n  verbs: [get]",
        ),
        k(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: x}\nsubjects:\n- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}",
        ),
        k(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\nsubjects:\n- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}",
        ),
        k(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            "CRD",
        ),
        k(
            "multicluster.x-k8s.io",
            "v1alpha1",
            "ServiceExport",
            "serviceexports",
            true,
            "",
        ),
        k(
            "multicluster.x-k8s.io",
            "v1alpha1",
            "ServiceImport",
            "serviceimports",
            true,
            "spec:\n  type: ClusterSetIP\n  ports:\n  - port: 80\n    protocol: TCP",
        ),
    ]
}

fn manifest(kind: &Kind, name: &str) -> String {
    let api_version = if kind.group.is_empty() {
        kind.version.to_string()
    } else {
        format!("{}/{}", kind.group, kind.version)
    };
    let namespace = if kind.namespaced {
        format!("\n  namespace: {NS}")
    } else {
        String::new()
    };
    let body = match kind.body {
        "TEMPLATE" => format!(
            "spec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: k}}\n  template:{POD_TEMPLATE}"
        ),
        "TEMPLATE_STS" => format!(
            "spec:\n  serviceName: web\n  replicas: 1\n  selector:\n    matchLabels: {{app: k}}\n  template:{POD_TEMPLATE}"
        ),
        "TEMPLATE_DS" => format!(
            "spec:\n  selector:\n    matchLabels: {{app: k}}\n  template:{POD_TEMPLATE}"
        ),
        "CRD" => "spec:\n  group: widgets.example.com\n  scope: Namespaced\n  names: {plural: widgets, singular: widget, kind: Widget}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}".to_string(),
        other => other.to_string(),
    };
    format!(
        "apiVersion: {api_version}\nkind: {}\nmetadata:\n  name: {name}{namespace}\n{body}\n",
        kind.kind
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_kind_is_applied_read_listed_watched_and_deleted() {
    let dir = temp_dir("served-kinds");
    let hub = Server::hub(&dir.join("hub"));
    hub.kubectl_ok(&["create", "namespace", NS]);
    let client = hub.kube_client().await;

    let mut failures = Vec::new();
    for (i, kind) in kinds().iter().enumerate() {
        let label = format!("{}/{} {}", kind.group, kind.version, kind.kind);
        // A CRD's name must be `<plural>.<group>`.
        let name = if kind.body == "CRD" {
            "widgets.widgets.example.com".to_string()
        } else {
            format!("k{i}")
        };
        let qualified = if kind.group.is_empty() {
            kind.plural.to_string()
        } else {
            format!("{}.{}.{}", kind.plural, kind.version, kind.group)
        };
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(kind.group, kind.version, kind.kind),
            kind.plural,
        );
        let api: Api<DynamicObject> = if kind.namespaced {
            Api::namespaced_with(client.clone(), NS, &ar)
        } else {
            Api::all_with(client.clone(), &ar)
        };

        // Watch from the list's resourceVersion, before anything is applied.
        let rv = match api.list(&ListParams::default().limit(1)).await {
            Ok(list) => list.metadata.resource_version.unwrap_or_default(),
            Err(e) => {
                failures.push(format!("{label}: list via kube-rs: {e}"));
                continue;
            }
        };
        let stream = match api
            .watch(
                &WatchParams::default()
                    .fields(&format!("metadata.name={name}"))
                    .timeout(60),
                &rv,
            )
            .await
        {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{label}: watch: {e}"));
                continue;
            }
        };
        let watched = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut stream = Box::pin(stream);
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(WatchEvent::Added(_)) => seen.push("ADDED"),
                    Ok(WatchEvent::Modified(_)) => seen.push("MODIFIED"),
                    Ok(WatchEvent::Deleted(_)) => {
                        seen.push("DELETED");
                        break;
                    }
                    Ok(WatchEvent::Bookmark(_)) => {}
                    Ok(WatchEvent::Error(e)) => {
                        seen.push("ERROR");
                        eprintln!("watch error: {e:?}");
                        break;
                    }
                    Err(e) => {
                        eprintln!("watch stream error: {e}");
                        break;
                    }
                }
            }
            seen
        });

        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, manifest(kind, &name)).unwrap();
        let ns_args: Vec<&str> = if kind.namespaced {
            vec!["-n", NS]
        } else {
            vec![]
        };

        let out = hub.kubectl(&["apply", "-f", file.to_str().unwrap()]);
        if !out.status.success() {
            failures.push(format!("{label}: apply: {}", stderr(&out).trim()));
            watched.abort();
            continue;
        }
        let mut args = ns_args.clone();
        args.extend(["get", &qualified, &name, "-o", "json"]);
        let out = hub.kubectl(&args);
        if !out.status.success() || !stdout(&out).contains(&format!("\"kind\": \"{}\"", kind.kind))
        {
            failures.push(format!("{label}: get: {}{}", stdout(&out), stderr(&out)));
        }
        let mut args = ns_args.clone();
        args.extend(["get", &qualified, "-o", "name"]);
        let out = hub.kubectl(&args);
        let suffix = format!("/{name}");
        if !out.status.success() || !stdout(&out).lines().any(|l| l.ends_with(&suffix)) {
            failures.push(format!("{label}: list: {}{}", stdout(&out), stderr(&out)));
        }
        let mut args = ns_args.clone();
        args.extend(["delete", &qualified, &name]);
        let out = hub.kubectl(&args);
        if !out.status.success() {
            failures.push(format!("{label}: delete: {}", stderr(&out).trim()));
        }
        match tokio::time::timeout(Duration::from_secs(30), watched).await {
            Ok(Ok(seen)) => {
                if seen.first() != Some(&"ADDED") || seen.last() != Some(&"DELETED") {
                    failures.push(format!("{label}: watch saw {seen:?}"));
                }
            }
            _ => failures.push(format!("{label}: watch did not see the delete")),
        }
        let mut args = ns_args.clone();
        args.extend(["get", &qualified, &name]);
        let out = hub.kubectl(&args);
        if out.status.success() {
            // A kind with finalizers (Namespace) may still be terminating; it must go soon.
            let gone = (0..100).any(|_| {
                std::thread::sleep(Duration::from_millis(100));
                !hub.kubectl(&args).status.success()
            });
            if !gone {
                failures.push(format!("{label}: still readable after delete"));
            }
        }
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}
