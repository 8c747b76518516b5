//! What a request is about, parsed from its method and path the way kube-apiserver's
//! `RequestInfoFactory` does. Authorization, audit and the handlers all read it.

use std::collections::HashMap;

/// The Kubernetes view of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// False for `/healthz`, `/version`, `/openapi/v2`, discovery roots, ...
    pub is_resource_request: bool,
    /// The raw path (used for non-resource authorization).
    pub path: String,
    /// get, list, watch, create, update, patch, delete, deletecollection (resource requests);
    /// get, post, put, patch, delete (non-resource requests).
    pub verb: String,
    pub api_prefix: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// Remaining path segments after `name/subresource` (rarely used).
    pub parts: Vec<String>,
}

/// The query parameters of `uri` (percent-decoded; a repeated key keeps its last value).
pub(crate) fn query_params(uri: &http::Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the query asks for a watch (`watch=true` or `watch=1`).
pub(crate) fn asks_to_watch(query: &HashMap<String, String>) -> bool {
    query.get("watch").is_some_and(|v| v == "true" || v == "1")
}

/// Parses `method` + `path` + query parameters.
pub(crate) fn parse(
    method: &http::Method,
    path: &str,
    query: &HashMap<String, String>,
) -> RequestInfo {
    let mut info = RequestInfo {
        path: path.to_string(),
        verb: method.as_str().to_ascii_lowercase(),
        ..Default::default()
    };
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let rest: &[&str] = match segs.first() {
        Some(&"api") if segs.len() >= 2 => {
            info.api_prefix = "api".into();
            info.api_version = segs[1].to_string();
            &segs[2..]
        }
        Some(&"apis") if segs.len() >= 3 => {
            info.api_prefix = "apis".into();
            info.api_group = segs[1].to_string();
            info.api_version = segs[2].to_string();
            &segs[3..]
        }
        _ => return info,
    };
    if rest.is_empty() {
        // Discovery for one group-version.
        return info;
    }
    info.is_resource_request = true;
    let mut rest = rest.to_vec();
    // /namespaces/{ns}/{resource}... ; /namespaces/{ns} alone is the namespace object.
    if rest[0] == "namespaces" && rest.len() >= 2 {
        info.namespace = rest[1].to_string();
        if rest.len() == 2 {
            // GET /api/v1/namespaces/foo is the namespace object itself.
            info.resource = "namespaces".into();
            info.name = rest[1].to_string();
            info.namespace = String::new();
            rest.clear();
        } else if rest.len() >= 3
            && rest[2] != "namespaces"
            && ["status", "finalize"].contains(&rest[2])
            && rest.len() == 3
        {
            // /api/v1/namespaces/foo/status
            info.resource = "namespaces".into();
            info.name = rest[1].to_string();
            info.subresource = rest[2].to_string();
            info.namespace = String::new();
            rest.clear();
        } else {
            rest.drain(0..2);
        }
    }
    if !rest.is_empty() {
        info.resource = rest[0].to_string();
        if rest.len() >= 2 {
            info.name = rest[1].to_string();
        }
        if rest.len() >= 3 {
            info.subresource = rest[2].to_string();
        }
        if rest.len() > 3 {
            info.parts = rest[3..].iter().map(|s| s.to_string()).collect();
        }
    }
    let watch = asks_to_watch(query);
    info.verb = match *method {
        http::Method::GET | http::Method::HEAD => {
            // A proxied watch is a `get` on the proxy subresource, as in kube-apiserver.
            if watch && info.subresource != "proxy" {
                "watch"
            } else if info.name.is_empty() {
                "list"
            } else {
                "get"
            }
        }
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => {
            if info.name.is_empty() {
                "deletecollection"
            } else {
                "delete"
            }
        }
        _ => "",
    }
    .to_string();
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(m: http::Method, path: &str, q: &[(&str, &str)]) -> RequestInfo {
        let q = q
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(&m, path, &q)
    }

    #[test]
    fn namespaced_resources() {
        let i = p(
            http::Method::GET,
            "/apis/apps/v1/namespaces/demo/deployments/web/scale",
            &[],
        );
        assert!(i.is_resource_request);
        assert_eq!(
            (
                i.verb.as_str(),
                i.api_group.as_str(),
                i.namespace.as_str(),
                i.resource.as_str(),
                i.name.as_str(),
                i.subresource.as_str()
            ),
            ("get", "apps", "demo", "deployments", "web", "scale")
        );
        let i = p(
            http::Method::GET,
            "/api/v1/namespaces/demo/configmaps",
            &[("watch", "true")],
        );
        assert_eq!(
            (i.verb.as_str(), i.resource.as_str()),
            ("watch", "configmaps")
        );
        let i = p(
            http::Method::DELETE,
            "/api/v1/namespaces/demo/configmaps",
            &[],
        );
        assert_eq!(i.verb, "deletecollection");
    }

    #[test]
    fn namespace_object_and_cluster_scope() {
        let i = p(http::Method::GET, "/api/v1/namespaces/demo", &[]);
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.namespace.as_str()),
            ("namespaces", "demo", "")
        );
        let i = p(http::Method::PUT, "/api/v1/namespaces/demo/finalize", &[]);
        assert_eq!(
            (i.resource.as_str(), i.subresource.as_str(), i.verb.as_str()),
            ("namespaces", "finalize", "update")
        );
        let i = p(http::Method::GET, "/api/v1/namespaces", &[]);
        assert_eq!(
            (i.resource.as_str(), i.verb.as_str()),
            ("namespaces", "list")
        );
        let i = p(
            http::Method::GET,
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/view",
            &[],
        );
        assert_eq!(
            (i.resource.as_str(), i.name.as_str()),
            ("clusterroles", "view")
        );
    }

    #[test]
    fn non_resource() {
        for path in [
            "/healthz",
            "/version",
            "/apis",
            "/api",
            "/api/v1",
            "/apis/apps/v1",
            "/openapi/v2",
        ] {
            assert!(
                !p(http::Method::GET, path, &[]).is_resource_request,
                "{path}"
            );
        }
        assert_eq!(p(http::Method::GET, "/healthz", &[]).verb, "get");
    }
}
