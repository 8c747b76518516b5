//! The dashboard layer in front of a stand-in API that knows one token.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;

const GOOD: &str = "good-token";

/// Answers a SelfSubjectReview for [`GOOD`] and echoes what any other request carried.
async fn stand_in_api(request: Request) -> Response {
    let auth = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if auth != format!("Bearer {GOOD}") {
        return (StatusCode::UNAUTHORIZED, "{}").into_response();
    }
    if request.uri().path().ends_with("/selfsubjectreviews") {
        let body = json!({"status": {"userInfo": {"username": "alice"}}});
        return (StatusCode::CREATED, body.to_string()).into_response();
    }
    let echo = json!({
        "uri": request.uri().to_string(),
        "cookie": request.headers().get(header::COOKIE).is_some(),
    });
    (StatusCode::OK, echo.to_string()).into_response()
}

fn app() -> Router {
    let api = Router::new()
        .route(
            "/metrics/clusters",
            axum::routing::get(|| async { "routed by path" }),
        )
        .fallback(stand_in_api);
    wrap(api)
}

fn request(method: Method, uri: &str, _: ()) -> http::request::Builder {
    Request::builder().method(method).uri(uri)
}

async fn send(app: &Router, req: Request) -> (StatusCode, http::HeaderMap, Value) {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, headers, body)
}

fn login_request(token: &str) -> Request {
    request(Method::POST, "/ui/login", ())
        .header(CSRF_HEADER, CSRF_VALUE)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"token": token}).to_string()))
        .unwrap()
}

async fn sign_in(app: &Router) -> String {
    let (status, headers, body) = send(app, login_request(GOOD)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["username"], "alice");
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/ui"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(
        !cookie.contains(GOOD),
        "the token must not be in the cookie: {cookie}"
    );
    cookie.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn the_page_has_a_token_input_and_a_sign_in_button() {
    let (status, headers, body) = send(
        &app(),
        request(Method::GET, "/ui/", ())
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let html = body.as_str().unwrap();
    assert!(
        html.contains(r#"<label for="token">Token</label>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<button type="submit">Sign in</button>"#),
        "{html}"
    );
    let (status, _, _) = send(
        &app(),
        request(Method::GET, "/ui/nope.js", ())
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn api_requests_run_as_the_session_user_without_the_cookie() {
    let app = app();
    let cookie = sign_in(&app).await;
    let req = request(Method::GET, "/ui/api/api/v1/namespaces?limit=1", ())
        .header(header::COOKIE, HeaderValue::from_str(&cookie).unwrap())
        .header(CSRF_HEADER, CSRF_VALUE)
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["uri"], "/api/v1/namespaces?limit=1");
    assert_eq!(body["cookie"], false);
    // Forwarded requests are routed by their new path.
    let req = request(Method::GET, "/ui/api/metrics/clusters", ())
        .header(header::COOKIE, HeaderValue::from_str(&cookie).unwrap())
        .header(CSRF_HEADER, CSRF_VALUE)
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!("routed by path"));
}

#[tokio::test]
async fn a_forged_cookie_is_unauthorized() {
    let req = request(Method::GET, "/ui/api/api/v1/namespaces", ())
        .header(
            header::COOKIE,
            format!("{SESSION_COOKIE}=forged-session-id"),
        )
        .header(CSRF_HEADER, CSRF_VALUE)
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&app(), req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["kind"], "Status");
}

#[tokio::test]
async fn requests_without_the_csrf_header_are_refused() {
    let app = app();
    let cookie = sign_in(&app).await;
    let req = request(Method::PATCH, "/ui/api/api/v1/namespaces/default", ())
        .header(header::COOKIE, HeaderValue::from_str(&cookie).unwrap())
        .body(Body::from("{}"))
        .unwrap();
    let (status, _, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let req = request(Method::POST, "/ui/login", ())
        .body(Body::from(json!({"token": GOOD}).to_string()))
        .unwrap();
    let (status, headers, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(headers.get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn unknown_tokens_empty_bodies_and_oversized_bodies_fail_clearly() {
    let app = app();
    let (status, headers, body) = send(&app, login_request("unknown")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get(header::SET_COOKIE).is_none());
    assert!(
        body["message"].as_str().unwrap().contains("not accepted"),
        "{body}"
    );
    let (status, _, body) = send(&app, login_request("  ")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let huge = "x".repeat(MAX_LOGIN_BYTES + 1);
    let (status, _, body) = send(&app, login_request(&huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["reason"], "RequestEntityTooLarge");
    let (status, _, _) = send(&app, login_request("bad\ntoken")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let app = app();
    let cookie = sign_in(&app).await;
    let req = request(Method::POST, "/ui/logout", ())
        .header(header::COOKIE, HeaderValue::from_str(&cookie).unwrap())
        .header(CSRF_HEADER, CSRF_VALUE)
        .body(Body::empty())
        .unwrap();
    let (status, _, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK);
    let req = request(Method::GET, "/ui/api/session", ())
        .header(header::COOKIE, HeaderValue::from_str(&cookie).unwrap())
        .header(CSRF_HEADER, CSRF_VALUE)
        .body(Body::empty())
        .unwrap();
    let (status, _, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
