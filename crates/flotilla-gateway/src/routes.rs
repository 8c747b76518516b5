//! The route table: the hub's Ingresses of class `flotilla`, matched as Ingress defines it
//! (host exact or `*.` wildcard of one label; paths `Exact` or `Prefix` by whole path
//! elements, the longest match first, `Exact` before `Prefix`; `ImplementationSpecific` is
//! treated as `Prefix`; an Ingress's `defaultBackend` catches its host's other paths).

use std::sync::Arc;

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};

use crate::weights::{ClusterWeights, WeightsError};

/// The `ingressClassName` (or legacy `kubernetes.io/ingress.class` annotation) served.
pub(crate) const INGRESS_CLASS: &str = "flotilla";
/// Legacy annotation naming an Ingress's class.
pub(crate) const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// Annotation choosing the spread over clusters: `beijing-1=70,us-west-1=30`.
pub(crate) const WEIGHTS_ANNOTATION: &str = "gateway.flotilla.io/cluster-weights";

/// Where a matched request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Backend {
    /// `namespace/name` of the Ingress.
    pub ingress: String,
    pub namespace: String,
    pub service: String,
    /// Port number or name (as written in the Ingress).
    pub port: String,
    /// The spread; `None`: equal over available clusters.
    pub weights: Option<ClusterWeights>,
    /// `namespace/name` of the Service, as the members' Service lists hold it.
    pub service_key: String,
    /// The key of this backend's spread state: `ingress|namespace/name`.
    pub spread_key: String,
    /// The member path the request path is appended to:
    /// `/api/v1/namespaces/NS/services/NAME:PORT/proxy`.
    pub proxy_prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PathKind {
    Prefix,
    Exact,
}

#[derive(Debug, Clone)]
struct PathRule {
    path: String,
    kind: PathKind,
    backend: Arc<Backend>,
}

#[derive(Debug, Clone)]
struct HostRules {
    /// Empty: every host.
    host: String,
    paths: Vec<PathRule>,
    default_backend: Option<Arc<Backend>>,
}

/// Every served Ingress, ready to match requests.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteTable {
    hosts: Vec<HostRules>,
}

/// An Ingress the table serves, with what was wrong with it (for Events).
#[derive(Debug)]
pub(crate) struct Served {
    pub namespace: String,
    pub name: String,
    pub weights_error: Option<(String, WeightsError)>,
}

/// Whether the gateway serves this Ingress.
pub(crate) fn is_flotilla_class(ingress: &Ingress) -> bool {
    let class = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref());
    let legacy = ingress
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
        .map(String::as_str);
    class == Some(INGRESS_CLASS) || (class.is_none() && legacy == Some(INGRESS_CLASS))
}

fn backend_of(
    ingress_key: &str,
    namespace: &str,
    backend: &IngressBackend,
    weights: &Option<ClusterWeights>,
) -> Option<Arc<Backend>> {
    let service = backend.service.as_ref()?;
    let port = service
        .port
        .as_ref()
        .and_then(|p| p.number.map(|n| n.to_string()).or_else(|| p.name.clone()))?;
    let service_key = format!("{namespace}/{}", service.name);
    Some(Arc::new(Backend {
        ingress: ingress_key.to_string(),
        namespace: namespace.to_string(),
        service: service.name.clone(),
        spread_key: format!("{ingress_key}|{service_key}"),
        proxy_prefix: format!(
            "/api/v1/namespaces/{namespace}/services/{}:{port}/proxy",
            service.name
        ),
        service_key,
        port,
        weights: weights.clone(),
    }))
}

impl RouteTable {
    /// Builds the table from Ingresses (those of another class are skipped).
    pub(crate) fn build<'a>(
        ingresses: impl IntoIterator<Item = &'a Ingress>,
    ) -> (RouteTable, Vec<Served>) {
        let mut table = RouteTable::default();
        let mut served = Vec::new();
        for ingress in ingresses {
            if !is_flotilla_class(ingress) {
                continue;
            }
            let namespace = ingress.metadata.namespace.clone().unwrap_or_default();
            let name = ingress.metadata.name.clone().unwrap_or_default();
            let key = format!("{namespace}/{name}");
            let annotation = ingress
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(WEIGHTS_ANNOTATION));
            let (weights, weights_error) = match annotation.map(|a| ClusterWeights::parse(a)) {
                None => (None, None),
                Some(Ok(w)) => (Some(w), None),
                Some(Err(e)) => (None, Some((annotation.cloned().unwrap_or_default(), e))),
            };
            table.add(ingress, &key, &namespace, &weights);
            served.push(Served {
                namespace,
                name,
                weights_error,
            });
        }
        (table, served)
    }

    fn add(
        &mut self,
        ingress: &Ingress,
        key: &str,
        namespace: &str,
        weights: &Option<ClusterWeights>,
    ) {
        let Some(spec) = &ingress.spec else { return };
        let default_backend = spec
            .default_backend
            .as_ref()
            .and_then(|b| backend_of(key, namespace, b, weights));
        let mut hosts_seen = Vec::new();
        for rule in spec.rules.iter().flatten() {
            let host = rule.host.clone().unwrap_or_default().to_ascii_lowercase();
            let paths = rule
                .http
                .iter()
                .flat_map(|h| h.paths.iter())
                .filter_map(|p| {
                    let backend = backend_of(key, namespace, &p.backend, weights)?;
                    let kind = if p.path_type == "Exact" {
                        PathKind::Exact
                    } else {
                        PathKind::Prefix
                    };
                    let path = p.path.clone().unwrap_or_else(|| "/".to_string());
                    Some(PathRule {
                        path,
                        kind,
                        backend,
                    })
                })
                .collect();
            hosts_seen.push(host.clone());
            self.hosts.push(HostRules {
                host,
                paths,
                default_backend: default_backend.clone(),
            });
        }
        if hosts_seen.is_empty() && default_backend.is_some() {
            self.hosts.push(HostRules {
                host: String::new(),
                paths: Vec::new(),
                default_backend,
            });
        }
    }

    /// The backend for a request's host (port stripped) and path; `None`: no rule (404).
    pub(crate) fn route(&self, host: &str, path: &str) -> Option<Arc<Backend>> {
        let host = host
            .rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map(|(h, _)| h)
            .unwrap_or(host)
            .to_ascii_lowercase();
        // Exact hosts, then wildcards, then rules for every host.
        for tier in [HostTier::Exact, HostTier::Wildcard, HostTier::Any] {
            let rules: Vec<&HostRules> = self
                .hosts
                .iter()
                .filter(|r| tier.matches(&r.host, &host))
                .collect();
            if rules.is_empty() {
                continue;
            }
            let best = rules
                .iter()
                .flat_map(|r| r.paths.iter())
                .filter(|p| path_matches(p, path))
                .max_by_key(|p| (p.path.trim_end_matches('/').len(), p.kind));
            if let Some(best) = best {
                return Some(best.backend.clone());
            }
            if let Some(default) = rules.iter().find_map(|r| r.default_backend.clone()) {
                return Some(default);
            }
        }
        None
    }
}

#[derive(Clone, Copy)]
enum HostTier {
    Exact,
    Wildcard,
    Any,
}

impl HostTier {
    fn matches(self, rule_host: &str, host: &str) -> bool {
        match self {
            HostTier::Exact => {
                !rule_host.is_empty() && !rule_host.starts_with("*.") && rule_host == host
            }
            HostTier::Wildcard => rule_host.strip_prefix("*.").is_some_and(|suffix| {
                host.split_once('.')
                    .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix)
            }),
            HostTier::Any => rule_host.is_empty(),
        }
    }
}

fn path_matches(rule: &PathRule, path: &str) -> bool {
    match rule.kind {
        PathKind::Exact => rule.path == path,
        PathKind::Prefix => {
            let prefix = rule.path.trim_end_matches('/');
            if prefix.is_empty() {
                return true;
            }
            path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress(yaml: serde_json::Value) -> Ingress {
        serde_json::from_value(yaml).unwrap()
    }

    fn table() -> RouteTable {
        let a = ingress(serde_json::json!({
            "metadata": {"name": "a", "namespace": "shop"},
            "spec": {"ingressClassName": "flotilla", "rules": [
                {"host": "shop.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                    {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"name": "http"}}}},
                    {"path": "/api/exact", "pathType": "Exact", "backend": {"service": {"name": "exact", "port": {"number": 81}}}},
                ]}},
                {"host": "*.wild.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "wild", "port": {"number": 80}}}},
                ]}},
            ]}
        }));
        let other = ingress(serde_json::json!({
            "metadata": {"name": "b", "namespace": "shop"},
            "spec": {"ingressClassName": "nginx", "rules": [{"http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "nginx", "port": {"number": 80}}}},
            ]}}]}
        }));
        RouteTable::build([&a, &other]).0
    }

    fn service(t: &RouteTable, host: &str, path: &str) -> Option<String> {
        t.route(host, path).map(|b| b.service.clone())
    }

    #[test]
    fn hosts_and_paths_match_as_ingress_defines() {
        let t = table();
        assert_eq!(service(&t, "shop.example.com", "/"), Some("web".into()));
        assert_eq!(
            service(&t, "shop.example.com:8080", "/api"),
            Some("api".into())
        );
        assert_eq!(
            service(&t, "SHOP.example.com", "/api/v1"),
            Some("api".into())
        );
        assert_eq!(service(&t, "shop.example.com", "/apix"), Some("web".into()));
        assert_eq!(
            service(&t, "shop.example.com", "/api/exact"),
            Some("exact".into())
        );
        assert_eq!(
            service(&t, "shop.example.com", "/api/exact/"),
            Some("api".into())
        );
        assert_eq!(service(&t, "a.wild.example.com", "/x"), Some("wild".into()));
        assert_eq!(service(&t, "a.b.wild.example.com", "/x"), None);
        assert_eq!(
            service(&t, "unknown.example.com", "/"),
            None,
            "other classes are not served"
        );
        let port = t.route("shop.example.com", "/api").unwrap().port.clone();
        assert_eq!(port, "http");
    }

    #[test]
    fn malformed_weights_are_reported_and_ignored() {
        let a = ingress(serde_json::json!({
            "metadata": {"name": "a", "namespace": "shop", "annotations": {WEIGHTS_ANNOTATION: "a=x,b"}},
            "spec": {"ingressClassName": "flotilla", "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}
        }));
        let (t, served) = RouteTable::build([&a]);
        assert!(served[0].weights_error.is_some());
        let backend = t.route("any.host", "/anything").unwrap();
        assert_eq!(
            (backend.service.as_str(), backend.weights.is_none()),
            ("web", true)
        );
    }
}
