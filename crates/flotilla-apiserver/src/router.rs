//! The HTTP surface: health, version, metrics, discovery, OpenAPI and resource requests,
//! behind the auth layers and the metrics middleware. Errors become `Status` responses here.

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use flotilla_core::status::ApiError;
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::codec::{json_response, read_body};
use crate::error::status_response;
use crate::handlers::{self, Req};
use crate::request_info::RequestInfo;
use crate::state::SharedState;
use crate::{auth, discovery, metrics, openapi};

/// The router of one API server. `extra_routes` (e.g. the hub's `/metrics/clusters`) are
/// served behind the same auth; `ui` puts the dashboard (`/ui/`) in front.
pub(crate) fn router(state: SharedState, extra_routes: Option<Router>, ui: bool) -> Router {
    let mut api = Router::new().fallback(dispatch).with_state(state.clone());
    if let Some(extra) = extra_routes {
        api = api.merge(extra);
    }
    let api = api.layer(from_fn_with_state(state, front_door));
    if ui { crate::ui::wrap(api) } else { api }
}

/// What every API request passes, outermost first: the request metrics, the auth stages
/// ([`auth::guard`]), the in-flight limits and the configured faults. The request's
/// [`RequestInfo`] is parsed once, here, for all of them and for the handlers.
async fn front_door(
    State(state): State<SharedState>,
    mut request: Request,
    next: Next,
) -> Response {
    let query = crate::request_info::query_params(request.uri());
    let info = crate::request_info::parse(request.method(), request.uri().path(), &query);
    let admission = Admission {
        mutating: !matches!(
            *request.method(),
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        ),
        watch: crate::request_info::asks_to_watch(&query),
    };
    request.extensions_mut().insert(info.clone());
    let (state, info) = (&state, &info);
    let served = auth::guard(&state.auth, info, request, move |request| async move {
        let Ok(_in_flight) = admit(state, admission) else {
            return status_response(&ApiError::too_many_requests(1));
        };
        if let Some(refusal) = inject_faults(state, info).await {
            return refusal;
        }
        next.run(request).await
    });
    metrics::track(&state.metrics, info, served).await
}

/// Most read-only requests served at once (watches are not counted), as kube-apiserver's
/// `--max-requests-inflight` default.
pub(crate) const MAX_READONLY_IN_FLIGHT: usize = 400;
/// Most mutating requests served at once (`--max-mutating-requests-inflight`).
pub(crate) const MAX_MUTATING_IN_FLIGHT: usize = 200;

/// What the in-flight limits look at.
#[derive(Clone, Copy)]
struct Admission {
    mutating: bool,
    watch: bool,
}

/// A place among the requests in flight (`Ok(None)` for a watch, which is not counted), or
/// `Err` when the limit is reached: the caller answers 429 TooManyRequests.
fn admit(state: &SharedState, request: Admission) -> Result<Option<InFlight<'_>>, ()> {
    if request.watch {
        return Ok(None);
    }
    let (counter, max) = if request.mutating {
        (&state.in_flight.mutating, MAX_MUTATING_IN_FLIGHT)
    } else {
        (&state.in_flight.readonly, MAX_READONLY_IN_FLIGHT)
    };
    let before = counter.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    let place = InFlight(counter);
    if before >= max {
        return Err(());
    }
    Ok(Some(place))
}

/// Decrements an in-flight counter when the request is done.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Delays or refuses API requests as configured (never the health endpoints): `Some` is
/// the refusal to answer instead of serving the request.
async fn inject_faults(state: &SharedState, info: &RequestInfo) -> Option<Response> {
    let faults = &state.faults;
    if faults.latency.is_zero() && faults.refuse_verbs.is_empty() {
        return None;
    }
    if ["/healthz", "/readyz", "/livez"]
        .iter()
        .any(|p| info.path.starts_with(p))
    {
        return None;
    }
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    let refused = faults
        .refuse_verbs
        .iter()
        .any(|v| v == "all" || *v == info.verb);
    refused.then(|| {
        status_response(&ApiError::service_unavailable(format!(
            "the server is refusing {} requests (fault injection)",
            info.verb
        )))
    })
}

async fn dispatch(State(state): State<SharedState>, request: Request) -> Response {
    match route(state, request).await {
        Ok(r) => r,
        Err(e) => status_response(&e),
    }
}

fn text(code: StatusCode, body: &str) -> Response {
    let mut r = (code, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `/readyz`: ready while the store answers (as kube-apiserver's etcd check); otherwise 500
/// naming the cause, e.g. an etcd that lost quorum or cannot be reached.
async fn readiness(state: &SharedState) -> Response {
    let probe = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        state.store.current_revision(),
    )
    .await;
    let failure = match probe {
        Ok(Ok(_)) => return text(StatusCode::OK, "ok"),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 3s".to_string(),
    };
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        &format!("[-]storage failed: {failure}\nreadyz check failed\n"),
    )
}

fn page_not_found() -> Response {
    text(StatusCode::NOT_FOUND, "404 page not found\n")
}

fn resource_not_found() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

async fn route(state: SharedState, request: Request) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let query = crate::request_info::query_params(&parts.uri);
    let snapshot = state.registry.snapshot();
    let is_get = parts.method == http::Method::GET || parts.method == http::Method::HEAD;
    if path == crate::webhook::PATH && parts.method == http::Method::POST {
        let Some(handler) = state.webhook.as_ref() else {
            return Ok(page_not_found());
        };
        let body = read_body(body).await?;
        return Ok(crate::webhook::serve(handler, &parts.headers, &body));
    }
    if let Some(response) = fixed_path(&state, &parts, &snapshot, &path, is_get).await {
        return Ok(response);
    }
    let info = match parts.extensions.remove::<RequestInfo>() {
        Some(info) => info,
        None => crate::request_info::parse(&parts.method, &path, &query),
    };
    if !info.is_resource_request {
        if !is_get {
            return Ok(page_not_found());
        }
        return Ok(group_discovery(&snapshot, &path));
    }
    let identity = parts.extensions.get::<auth::Identity>().cloned();
    if crate::cluster_gateway::is_gateway_request(&info) {
        let user = identity.map(|i| i.user);
        return crate::cluster_gateway::serve(state.cluster_gateway.as_ref(), parts, body, user)
            .await;
    }
    let Some(resource) = snapshot.lookup(&info.api_group, &info.api_version, &info.resource) else {
        return Err(resource_not_found());
    };
    let body = read_body(body).await?;
    if auth::is_virtual_resource(&info) {
        return virtual_create(&state, &parts, identity, &info, &body).await;
    }
    if resource.is_virtual {
        return Err(resource_not_found());
    }
    let req = Req {
        method: parts.method.clone(),
        info,
        query,
        headers: parts.headers,
        body,
        resource,
        user: identity.map(|i| i.user).unwrap_or_default(),
    };
    handlers::handle(state, req).await
}

/// The paths that are no API resource: health, version, metrics, OpenAPI and the roots of
/// discovery (`None` for anything else).
async fn fixed_path(
    state: &SharedState,
    parts: &http::request::Parts,
    snapshot: &crate::registry::Snapshot,
    path: &str,
    is_get: bool,
) -> Option<Response> {
    let response = match path {
        "/readyz" => readiness(state).await,
        "/healthz" | "/livez" => text(StatusCode::OK, "ok"),
        p if p.starts_with("/healthz/")
            || p.starts_with("/livez/")
            || p.starts_with("/readyz/") =>
        {
            text(StatusCode::OK, "ok")
        }
        "/version" => version(state),
        "/metrics" => metrics_text(state).await,
        "/openapi/v2" if is_get => openapi::v2(&parts.headers),
        "/openapi/v3" if is_get => openapi::v3_index(snapshot),
        p if is_get && p.starts_with("/openapi/v3/") => {
            openapi::v3_document(snapshot, &p["/openapi/v3/".len()..])
                .unwrap_or_else(page_not_found)
        }
        "/api" | "/api/" if is_get => {
            let host = parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| parts.uri.authority().map(|a| a.as_str()))
                .unwrap_or("")
                .to_string();
            discovery::api_versions(&parts.headers, snapshot, &host)
        }
        "/apis" | "/apis/" if is_get => discovery::api_groups(&parts.headers, snapshot),
        _ => return None,
    };
    Some(response)
}

/// `/version`.
fn version(state: &SharedState) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "major": "1",
            "minor": "33",
            "gitVersion": state.git_version,
            "gitCommit": "",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "rust",
            "compiler": "rustc",
            "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        }),
    )
}

/// `/metrics` in the OpenMetrics text format.
async fn metrics_text(state: &SharedState) -> Response {
    let rev = state.store.current_revision().await.unwrap_or(0);
    let mut r = (StatusCode::OK, state.metrics.render(rev)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

/// `GET /api/{version}`, `/apis/{group}` and `/apis/{group}/{version}`.
fn group_discovery(snapshot: &crate::registry::Snapshot, path: &str) -> Response {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let resp = match segs.as_slice() {
        ["api", v] => discovery::resource_list(snapshot, "", v),
        ["apis", g] => discovery::api_group(snapshot, g),
        ["apis", g, v] => discovery::resource_list(snapshot, g, v),
        _ => None,
    };
    resp.unwrap_or_else(page_not_found)
}

/// A create of a resource that is answered, not stored (access and token reviews).
async fn virtual_create(
    state: &SharedState,
    parts: &http::request::Parts,
    identity: Option<auth::Identity>,
    info: &crate::request_info::RequestInfo,
    body: &[u8],
) -> Result<Response, ApiError> {
    if parts.method != http::Method::POST {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let identity = identity.ok_or_else(ApiError::unauthorized)?;
    let obj = match crate::codec::decode_object(&parts.headers, body) {
        Ok(obj) => obj,
        // A SelfSubjectReview's body carries nothing (and kubectl 1.27 sends a v1beta1
        // one in protobuf).
        Err(_) if info.resource == "selfsubjectreviews" => serde_json::json!({}),
        Err(e) => return Err(e),
    };
    let out = auth::handle_virtual_create(&state.auth, &identity, info, obj).await?;
    Ok(json_response(StatusCode::CREATED, &out))
}
