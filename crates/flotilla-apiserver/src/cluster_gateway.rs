//! The hub's cluster gateway (KubeVela's path):
//! `/apis/cluster.core.oam.dev/v1alpha1/clustergateways/{cluster}/proxy/{path}`.
//!
//! By the time a request gets here the auth middleware has authenticated the caller, applied
//! (and authorized on the hub) any `Impersonate-*` headers the caller sent, and authorized the
//! resulting identity for `clustergateways/proxy` with the cluster name as the resource name
//! and the request's own verb. This module refuses bad targets (a cluster name that is not a
//! DNS subdomain, `.`/`..` segments, encoded slashes) with a Status, and hands the request to
//! the [`ClusterGatewayBackend`] the binary registered, which forwards it to the member as the
//! identity and returns the member's response with its body still streaming (watches). The
//! API server itself knows nothing about how members are reached.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use flotilla_core::status::ApiError;
use flotilla_core::user::UserInfo;

use crate::registry::ResourceInfo;
use crate::request_info::RequestInfo;

/// The API group of the gateway.
pub const GROUP: &str = "cluster.core.oam.dev";
/// Its version.
pub const VERSION: &str = "v1alpha1";
/// The resource; `proxy` is its only served subresource.
pub const RESOURCE: &str = "clustergateways";
/// The subresource that forwards.
pub const PROXY: &str = "proxy";
/// The verbs of `clustergateways/proxy`, as kube-apiserver lists them for `pods/proxy`.
pub const PROXY_VERBS: &[&str] = &["create", "delete", "get", "patch", "update"];

/// One request on its way to a member.
#[derive(Debug)]
pub struct ProxyRequest {
    /// The member cluster (a validated DNS subdomain).
    pub cluster: String,
    /// The request method.
    pub method: http::Method,
    /// The member-side path and query, e.g. `/api/v1/namespaces/default/pods?watch=true`.
    pub path_and_query: String,
    /// The caller's headers, minus credentials, impersonation and hop-by-hop headers.
    pub headers: http::HeaderMap,
    /// The request body, still streaming from the caller (never collected, so it has no size
    /// limit and exec-style streams pass).
    pub body: Body,
    /// Who the member must see: the caller, or whom the caller impersonated on the hub.
    pub user: UserInfo,
}

/// Reaches members for the gateway. Errors are Statuses (404 unknown cluster, 503 unreachable).
#[async_trait::async_trait]
pub trait ClusterGatewayBackend: Send + Sync + 'static {
    /// Forwards `request` and returns the member's response, its body streaming.
    async fn forward(&self, request: ProxyRequest) -> Result<Response, ApiError>;

    /// Every registered cluster as a `ClusterGateway` object (for `get` and `list`).
    async fn clusters(&self) -> Result<Vec<serde_json::Value>, ApiError>;
}

/// The backend shared by the router.
pub type SharedGateway = Arc<dyn ClusterGatewayBackend>;

/// The discovery entry of `clustergateways` (served on hubs only).
pub fn resource_info() -> ResourceInfo {
    ResourceInfo {
        group: GROUP.into(),
        version: VERSION.into(),
        resource: RESOURCE.into(),
        kind: "ClusterGateway".into(),
        singular: "clustergateway".into(),
        namespaced: false,
        short_names: Vec::new(),
        categories: Vec::new(),
        verbs: &["get", "list"],
        status: false,
        scale: None,
        storage_version: VERSION.into(),
        crd: None,
        is_virtual: true,
        tracks_generation: false,
    }
}

/// Whether the request is for the gateway resource.
pub fn is_gateway_request(info: &RequestInfo) -> bool {
    info.is_resource_request
        && info.api_group == GROUP
        && info.api_version == VERSION
        && info.resource == RESOURCE
        && info.namespace.is_empty()
}

/// Headers never forwarded: the caller's hub credentials, impersonation (already applied on
/// the hub) and hop-by-hop headers.
const DROPPED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// Serves a request for `clustergateways[/{cluster}[/proxy/...]]`.
pub async fn serve(
    gateway: Option<&SharedGateway>,
    parts: http::request::Parts,
    body: Body,
    user: Option<UserInfo>,
) -> Result<Response, ApiError> {
    let Some(gateway) = gateway else {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    if !is_proxy_path(parts.uri.path()) {
        return serve_objects(gateway, &parts).await;
    }
    let (cluster, member_path) = split_target(parts.uri.path())?;
    let user = user.ok_or_else(ApiError::unauthorized)?;
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{member_path}?{q}"),
        None => member_path,
    };
    let mut headers = parts.headers;
    let dropped: Vec<http::HeaderName> = headers
        .keys()
        .filter(|k| {
            let k = k.as_str();
            DROPPED_HEADERS.contains(&k) || k.starts_with("impersonate-")
        })
        .cloned()
        .collect();
    for name in dropped {
        headers.remove(name);
    }
    gateway
        .forward(ProxyRequest {
            cluster,
            method: parts.method,
            path_and_query,
            headers,
            body,
            user,
        })
        .await
}

fn is_proxy_path(path: &str) -> bool {
    let prefix = format!("/apis/{GROUP}/{VERSION}/{RESOURCE}/");
    path.strip_prefix(&prefix)
        .and_then(|rest| rest.split('/').nth(1))
        .is_some()
}

/// `get` and `list` of ClusterGateway objects (one per registered cluster).
async fn serve_objects(
    gateway: &SharedGateway,
    parts: &http::request::Parts,
) -> Result<Response, ApiError> {
    let query = crate::request_info::query_params(&parts.uri);
    let info = crate::request_info::parse(&parts.method, parts.uri.path(), &query);
    if info.verb != "get" && info.verb != "list" {
        return Err(ApiError::method_not_allowed(format!(
            "clustergateways support only get and list (and the proxy subresource), not {}",
            info.verb
        )));
    }
    let mut objects = gateway.clusters().await?;
    if info.verb == "get" {
        objects.retain(|o| o["metadata"]["name"] == info.name.as_str());
        if objects.is_empty() {
            return Err(ApiError::not_found(GROUP, RESOURCE, &info.name));
        }
    }
    let body = match crate::codec::negotiate_output(&parts.headers) {
        crate::codec::Output::Table { version } => crate::table::table(
            &resource_info(),
            &objects,
            &version,
            crate::table::include_object(&query),
            serde_json::json!({}),
            true,
        ),
        _ if info.verb == "get" => objects.remove(0),
        _ => serde_json::json!({
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": "ClusterGatewayList",
            "metadata": {},
            "items": objects,
        }),
    };
    Ok(crate::codec::json_response(http::StatusCode::OK, &body))
}

/// Splits the raw request path into the cluster name and the member-side path, refusing
/// anything that could leave the proxy prefix or name a cluster ambiguously.
pub fn split_target(path: &str) -> Result<(String, String), ApiError> {
    let prefix = format!("/apis/{GROUP}/{VERSION}/{RESOURCE}/");
    let Some(rest) = path.strip_prefix(&prefix) else {
        return Err(ApiError::method_not_allowed(
            "clustergateways can only be used through their proxy subresource: \
             /apis/cluster.core.oam.dev/v1alpha1/clustergateways/{cluster}/proxy/{path}",
        ));
    };
    let (raw_cluster, after) = rest.split_once('/').unwrap_or((rest, ""));
    let cluster = percent_decode(raw_cluster)
        .filter(|c| is_dns_subdomain(c))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid cluster name {raw_cluster:?}: a cluster name must be a lowercase RFC 1123 subdomain"
            ))
        })?;
    let member_path = match after.split_once('/') {
        Some((PROXY, p)) => format!("/{p}"),
        None if after == PROXY => "/".to_string(),
        _ => {
            return Err(ApiError::method_not_allowed(format!(
                "clustergateways/{cluster} can only be used through its proxy subresource: \
                 /apis/cluster.core.oam.dev/v1alpha1/clustergateways/{cluster}/proxy/{{path}}"
            )));
        }
    };
    for segment in member_path.split('/') {
        let decoded = percent_decode(segment).ok_or_else(|| bad_path(&member_path))?;
        if decoded == "." || decoded == ".." || decoded.contains(['/', '\\']) {
            return Err(bad_path(&member_path));
        }
    }
    Ok((cluster, member_path))
}

fn bad_path(member_path: &str) -> ApiError {
    ApiError::bad_request(format!(
        "invalid proxy path {member_path:?}: \".\" and \"..\" segments and encoded slashes are not allowed"
    ))
}

/// Decodes `%XX` escapes; `None` for a malformed escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A lowercase RFC 1123 subdomain, as Kubernetes object names are.
fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/apis/cluster.core.oam.dev/v1alpha1/clustergateways";

    #[test]
    fn splits_cluster_and_member_path() {
        let (c, p) = split_target(&format!("{P}/m1/proxy/api/v1/pods")).unwrap();
        assert_eq!((c.as_str(), p.as_str()), ("m1", "/api/v1/pods"));
        let (_, p) = split_target(&format!("{P}/m1/proxy")).unwrap();
        assert_eq!(p, "/");
        let (_, p) = split_target(&format!("{P}/m1/proxy/")).unwrap();
        assert_eq!(p, "/");
    }

    #[test]
    fn refuses_escapes_and_bad_names() {
        for bad in [
            format!("{P}/m1/proxy/../../m2/proxy/api"),
            format!("{P}/m1/proxy/api/%2e%2E/x"),
            format!("{P}/m1/proxy/api/./v1"),
            format!("{P}/m1/proxy/api%2fv1"),
            format!("{P}/a%2Fb/proxy/api"),
            format!("{P}/../proxy/api"),
            format!("{P}/M1/proxy/api"),
            format!("{P}/m1/proxy/bad%zz"),
        ] {
            let e = split_target(&bad).unwrap_err();
            assert_eq!(e.code, 400, "{bad}");
        }
        assert_eq!(split_target(&format!("{P}/m1")).unwrap_err().code, 405);
        assert_eq!(
            split_target(&format!("{P}/m1/status")).unwrap_err().code,
            405
        );
    }
}
