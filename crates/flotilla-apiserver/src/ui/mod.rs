//! The fleet dashboard served by the hub at `/ui/` (same port and TLS as the API).
//!
//! [`wrap`] puts one layer in front of the API router:
//! - `GET /ui/`, `/ui/app.js`, `/ui/app.css`: the page, compiled into the binary
//!   ([`assets`]); no credentials needed to load it.
//! - `POST /ui/login` (`{"token": "..."}`): the token is checked by the API itself (a
//!   SelfSubjectReview made with it, so every kind of bearer token the API takes works); on
//!   success a random session id goes into an `HttpOnly; Secure; SameSite=Strict` cookie and
//!   the token stays in the hub's memory ([`session`]).
//! - `/ui/api/{path}`: forwarded to `/{path}` as the session's user (its bearer token is put
//!   on the request), through the whole auth stack, so RBAC and the audit log see that user.
//! - `GET /ui/session`, `POST /ui/logout`.
//!
//! CSRF: besides `SameSite=Strict`, every `/ui/login`, `/ui/logout` and `/ui/api` request must
//! carry `X-Requested-With: flotilla-ui`, which a cross-site form cannot send and a
//! cross-site script cannot send without a CORS preflight this server never allows.

mod assets;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use flotilla_core::status::ApiError;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::error::status_response;
use session::Sessions;

/// The cookie that carries the session id.
pub(crate) const SESSION_COOKIE: &str = "flotilla_session";
/// The header every state-changing or API request from the page carries (CSRF defence).
pub(crate) const CSRF_HEADER: &str = "x-requested-with";
/// Its required value.
pub(crate) const CSRF_VALUE: &str = "flotilla-ui";
/// Largest sign-in request body.
pub(crate) const MAX_LOGIN_BYTES: usize = 16 * 1024;

/// What the dashboard layer keeps.
struct Ui {
    sessions: Sessions,
    /// The API server's router (with its auth layers): where requests go on.
    api: Router,
}

/// Serves the dashboard in front of `api` (the API server's router). A router of its own, not
/// a layer on `api`: a layer runs after `api` has routed, and forwarded `/ui/api/...`
/// requests must be routed by their new path.
pub(crate) fn wrap(api: Router) -> Router {
    let ui = Arc::new(Ui {
        sessions: Sessions::default(),
        api,
    });
    Router::new().fallback(serve).with_state(ui)
}

impl Ui {
    async fn call_api(&self, request: Request) -> Response {
        match self.api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(infallible) => match infallible {},
        }
    }
}

async fn serve(State(ui): State<Arc<Ui>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    if path == "/ui" {
        return redirect("/ui/");
    }
    let Some(rest) = path.strip_prefix("/ui/") else {
        return ui.call_api(request).await;
    };
    let method = request.method().clone();
    if let Some(api_path) = rest.strip_prefix("api/") {
        let api_path = format!("/{api_path}");
        return forward(&ui, request, &api_path).await;
    }
    match (method, rest) {
        (Method::GET | Method::HEAD, asset) => assets::response(asset),
        (Method::POST, "login") => login(&ui, request).await,
        (Method::POST, "logout") => logout(&ui, request),
        _ => status_response(&ApiError::method_not_allowed(
            "the dashboard does not allow this method on this path",
        )),
    }
}

fn redirect(to: &'static str) -> Response {
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, HeaderValue::from_static(to))],
    )
        .into_response()
}

/// Refuses a request without the dashboard's custom header.
fn check_csrf(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        Some(CSRF_VALUE) => Ok(()),
        _ => Err(ApiError::forbidden(format!(
            "dashboard requests must carry the header X-Requested-With: {CSRF_VALUE}"
        ))),
    }
}

/// The session id from the `Cookie` header(s), if any.
fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
}

fn session_cookie(id: &str, max_age: u64) -> HeaderValue {
    let text = format!(
        "{SESSION_COOKIE}={id}; Path=/ui; HttpOnly; Secure; SameSite=Strict; Max-Age={max_age}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn unauthorized(message: &str) -> Response {
    status_response(&ApiError::new(401, "Unauthorized", message))
}

/// `POST /ui/login`: verifies the token through the API and starts a session.
async fn login(ui: &Ui, request: Request) -> Response {
    if let Err(e) = check_csrf(request.headers()) {
        return status_response(&e);
    }
    let peer = request.extensions().get::<SocketAddr>().copied();
    let token = match read_token(request.into_body()).await {
        Ok(t) => t,
        Err(e) => return status_response(&e),
    };
    let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {token}")) else {
        return unauthorized("the token is not valid: sign in with a bearer token");
    };
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let mut check = Request::new(Body::from(review.to_string()));
    *check.method_mut() = Method::POST;
    *check.uri_mut() = http::Uri::from_static("/apis/authentication.k8s.io/v1/selfsubjectreviews");
    check.headers_mut().insert(header::AUTHORIZATION, bearer);
    check.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(peer) = peer {
        check.extensions_mut().insert(peer);
    }
    let answer = ui.call_api(check).await;
    if answer.status() == StatusCode::UNAUTHORIZED {
        return unauthorized("the token was not accepted: it is unknown, expired or revoked");
    }
    if !answer.status().is_success() {
        return answer;
    }
    let review: Value = match answer.into_body().collect().await {
        Ok(b) => serde_json::from_slice(&b.to_bytes()).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let username = review
        .pointer("/status/userInfo/username")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let id = ui.sessions.create(token, username.clone());
    let mut response = crate::codec::json_response(StatusCode::OK, &json!({"username": username}));
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&id, session::MAX_AGE.as_secs()),
    );
    response
}

/// The token of a sign-in body (JSON `{"token": ...}`), at most [`MAX_LOGIN_BYTES`].
async fn read_token(body: Body) -> Result<String, ApiError> {
    let limited = http_body_util::Limited::new(body, MAX_LOGIN_BYTES);
    let bytes = match limited.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("Request entity too large: limit is {MAX_LOGIN_BYTES}"),
            ));
        }
        Err(e) => return Err(ApiError::bad_request(format!("reading the request: {e}"))),
    };
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the sign-in request is not JSON: {e}")))?;
    let token = body
        .get("token")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or("");
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "no token given: paste a bearer token",
        ));
    }
    Ok(token.to_string())
}

/// `POST /ui/logout`: ends the session and clears the cookie.
fn logout(ui: &Ui, request: Request) -> Response {
    if let Err(e) = check_csrf(request.headers()) {
        return status_response(&e);
    }
    if let Some(id) = session_id(request.headers()) {
        ui.sessions.remove(&id);
    }
    let mut response = crate::codec::json_response(StatusCode::OK, &json!({}));
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie("", 0));
    response
}

/// `/ui/api/{path}`: the request, as the session's user, to `/{path}` of the API.
async fn forward(ui: &Ui, request: Request, api_path: &str) -> Response {
    let id = session_id(request.headers()).unwrap_or_default();
    let Some(session) = ui.sessions.get(&id) else {
        return unauthorized("no dashboard session: sign in");
    };
    if let Err(e) = check_csrf(request.headers()) {
        return status_response(&e);
    }
    if api_path == "/session" {
        return crate::codec::json_response(StatusCode::OK, &json!({"username": session.username}));
    }
    let (mut parts, body) = request.into_parts();
    let target = match parts.uri.query() {
        Some(q) => format!("{api_path}?{q}"),
        None => api_path.to_string(),
    };
    let Ok(uri) = target.parse::<http::Uri>() else {
        return status_response(&ApiError::bad_request("the request path is not valid"));
    };
    parts.uri = uri;
    parts.headers.remove(header::COOKIE);
    parts.headers.remove(CSRF_HEADER);
    let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {}", session.token)) else {
        return unauthorized("no dashboard session: sign in");
    };
    parts.headers.insert(header::AUTHORIZATION, bearer);
    // The browser's TLS client certificate (if any) must not stand in for the session.
    parts.extensions.remove::<crate::auth::PeerCertificates>();
    let response = ui.call_api(Request::from_parts(parts, body)).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        // The token expired or was revoked since sign-in: the session is over too.
        ui.sessions.remove(&id);
    }
    response
}

#[cfg(test)]
mod tests;
