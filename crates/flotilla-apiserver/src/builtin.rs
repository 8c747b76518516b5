//! The built-in kinds every Flotilla API server serves (SPEC section 2), described the way
//! kube-apiserver's discovery describes them.

use crate::registry::{ALL_VERBS, CREATE_ONLY, ResourceInfo, ScalePaths};

struct Def {
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    all: bool,
    status: bool,
    scale: bool,
    generation: bool,
}

const fn d(
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
) -> Def {
    Def {
        group,
        version,
        resource,
        kind,
        namespaced,
        short,
        all: false,
        status: false,
        scale: false,
        generation: false,
    }
}

impl Def {
    const fn all(mut self) -> Self {
        self.all = true;
        self
    }
    const fn status(mut self) -> Self {
        self.status = true;
        self
    }
    const fn scale(mut self) -> Self {
        self.scale = true;
        self
    }
    const fn generation(mut self) -> Self {
        self.generation = true;
        self
    }
}

const DEFS: &[Def] = &[
    d("", "v1", "configmaps", "ConfigMap", true, &["cm"]),
    d("", "v1", "endpoints", "Endpoints", true, &["ep"]),
    d("", "v1", "events", "Event", true, &["ev"]),
    d("", "v1", "namespaces", "Namespace", false, &["ns"]).status(),
    d(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
    )
    .status(),
    d("", "v1", "nodes", "Node", false, &["no"]).all().status(),
    d("", "v1", "pods", "Pod", true, &["po"]).all().status(),
    d("", "v1", "secrets", "Secret", true, &[]),
    d("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"]),
    d("", "v1", "services", "Service", true, &["svc"])
        .all()
        .status(),
    d("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"])
        .all()
        .status()
        .generation(),
    d("apps", "v1", "deployments", "Deployment", true, &["deploy"])
        .all()
        .status()
        .scale()
        .generation(),
    d("apps", "v1", "replicasets", "ReplicaSet", true, &["rs"])
        .all()
        .status()
        .scale()
        .generation(),
    d("apps", "v1", "statefulsets", "StatefulSet", true, &["sts"])
        .all()
        .status()
        .scale()
        .generation(),
    d(
        "apiregistration.k8s.io",
        "v1",
        "apiservices",
        "APIService",
        false,
        &[],
    )
    .status(),
    d(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
        false,
        &[],
    ),
    d(
        "authentication.k8s.io",
        "v1",
        "tokenreviews",
        "TokenReview",
        false,
        &[],
    ),
    // kubectl 1.27 asks `auth whoami` of v1beta1.
    d(
        "authentication.k8s.io",
        "v1beta1",
        "selfsubjectreviews",
        "SelfSubjectReview",
        false,
        &[],
    ),
    d(
        "authorization.k8s.io",
        "v1",
        "localsubjectaccessreviews",
        "LocalSubjectAccessReview",
        true,
        &[],
    ),
    d(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        false,
        &[],
    ),
    d(
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        false,
        &[],
    ),
    d(
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "SubjectAccessReview",
        false,
        &[],
    ),
    d(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
    )
    .all()
    .status()
    .generation(),
    d(
        "autoscaling",
        "v1",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
    )
    .all()
    .status()
    .generation(),
    d("batch", "v1", "cronjobs", "CronJob", true, &["cj"])
        .all()
        .status()
        .generation(),
    d("batch", "v1", "jobs", "Job", true, &[])
        .all()
        .status()
        .generation(),
    d(
        "certificates.k8s.io",
        "v1",
        "certificatesigningrequests",
        "CertificateSigningRequest",
        false,
        &["csr"],
    )
    .status(),
    d(
        "networking.k8s.io",
        "v1",
        "ingressclasses",
        "IngressClass",
        false,
        &[],
    )
    .generation(),
    d(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Ingress",
        true,
        &["ing"],
    )
    .status()
    .generation(),
    d(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
        &["netpol"],
    )
    .generation(),
    d(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        &["pdb"],
    )
    .status()
    .generation(),
    d(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
    ),
    d(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
        &[],
    ),
    d(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        &[],
    ),
    d(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "Role",
        true,
        &[],
    ),
    d("events.k8s.io", "v1", "events", "Event", true, &["ev"]),
    d("coordination.k8s.io", "v1", "leases", "Lease", true, &[]),
    d(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
        &[],
    ),
    d(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
    )
    .status()
    .generation(),
];

/// Groups whose resources are create-only reviews.
fn is_review_group(group: &str) -> bool {
    group == "authorization.k8s.io" || group == "authentication.k8s.io"
}

/// Every built-in resource, in discovery order.
pub fn resources() -> Vec<ResourceInfo> {
    DEFS.iter()
        .map(|def| {
            let is_virtual = is_review_group(def.group);
            ResourceInfo {
                group: def.group.into(),
                version: def.version.into(),
                resource: def.resource.into(),
                kind: def.kind.into(),
                singular: def.kind.to_ascii_lowercase(),
                namespaced: def.namespaced,
                short_names: def.short.iter().map(|s| s.to_string()).collect(),
                categories: if def.all { vec!["all".into()] } else { vec![] },
                verbs: if is_virtual { CREATE_ONLY } else { ALL_VERBS },
                status: def.status,
                scale: def.scale.then(|| ScalePaths {
                    spec_replicas: ".spec.replicas".into(),
                    status_replicas: ".status.replicas".into(),
                    label_selector: String::new(),
                }),
                storage_version: if def.resource == "horizontalpodautoscalers" {
                    "v2".into()
                } else {
                    def.version.into()
                },
                crd: None,
                is_virtual,
                tracks_generation: def.generation,
            }
        })
        .collect()
}
