//! Serving one request: match the Ingress route, pick a member by the spread, send the
//! request to that member's service proxy
//! (`/api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH`) with the hub's credentials for
//! it, and relay the answer.
//!
//! Failover: a member that refuses, breaks the exchange or answers 5xx has the failure
//! recorded (3 in a row take it out for 10 s, see [`crate::members`]). A request that could
//! not connect is sent once more to another member; so is a safe request (GET, HEAD,
//! OPTIONS) that broke or got a 5xx, since sending it again cannot do harm.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::Gateway;
use crate::members::Member;
use crate::metrics::{ClusterLabels, ClusterSeries, ErrorLabels, RequestLabels};
use crate::relay_client::{ConnectError, RelayBody, RequestError};
use crate::routes::Backend;

/// Largest request body relayed.
const MAX_BODY: usize = 16 << 20;

/// Headers that belong to one connection, never relayed.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn text(code: StatusCode, body: String) -> Response {
    let mut r = (code, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The gateway's one handler: every request of a connection from `peer`.
pub(crate) async fn handle(
    gateway: &Gateway,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response {
    match request.uri().path() {
        "/metrics" => {
            let mut r = (StatusCode::OK, gateway.metrics.render()).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            return r;
        }
        "/healthz" | "/readyz" => return text(StatusCode::OK, "ok".into()),
        _ => {}
    }
    let Some(backend) = gateway
        .routes
        .read()
        .route(host_of(&request), request.uri().path())
    else {
        count(gateway, "none", StatusCode::NOT_FOUND);
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "no Ingress of class flotilla routes host {:?} path {:?}\n",
                host_of(&request),
                request.uri().path()
            ),
        );
    };
    let (parts, body) = request.into_parts();
    let headers = forwarded_headers(&parts, peer);
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body: {e}\n"),
            );
        }
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str());
    let outbound = Outbound {
        uri: format!("{}{path_and_query}", backend.proxy_prefix),
        method: parts.method,
        headers,
        body,
    };
    serve(gateway, &backend, &outbound).await
}

/// The Host the client asked for (the Host header, else the request target's authority).
fn host_of<B>(request: &Request<B>) -> &str {
    host_in(request.headers(), request.uri())
}

fn host_in<'a>(headers: &'a HeaderMap, uri: &'a http::Uri) -> &'a str {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("")
}

/// What is sent to the member.
struct Outbound {
    method: Method,
    /// The member's service proxy path, with the client's path and query.
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

/// The outcome of one attempt.
enum Attempt {
    /// An answer below 500.
    Answered(Response),
    /// A 5xx answer.
    Failed5xx(Response),
    /// Could not connect.
    Refused(String),
    /// Connected, but the exchange broke.
    Broken(String),
    /// The request could not be made (not the member's fault: no retry, no failure counted).
    Unsendable(String),
}

async fn serve(gateway: &Gateway, backend: &Backend, outbound: &Outbound) -> Response {
    let mut tried: Vec<Arc<Member>> = Vec::new();
    let mut last: Option<Response> = None;
    let mut last_error = String::new();
    for attempt in 0..2 {
        let Some(member) = gateway.pick(backend, &tried) else {
            break;
        };
        tried.push(member.clone());
        let started = Instant::now();
        let result = send(&member, outbound).await;
        let cluster = member.name.as_str();
        let series = member
            .series
            .get_or_init(|| ClusterSeries::new(&gateway.metrics, cluster));
        series.observe(started.elapsed().as_secs_f64());
        let retry_safe = matches!(
            outbound.method,
            Method::GET | Method::HEAD | Method::OPTIONS
        );
        let (reason, retry) = match result {
            Attempt::Answered(resp) => {
                member.record_success();
                series.count(&gateway.metrics, resp.status().as_u16());
                return resp;
            }
            Attempt::Failed5xx(resp) => {
                last_error = format!("cluster {cluster} answered {}", resp.status());
                last = Some(resp);
                ("status_5xx", retry_safe)
            }
            Attempt::Refused(e) => {
                last_error = format!("cluster {cluster}: {e}");
                ("connect", true)
            }
            Attempt::Broken(e) => {
                last_error = format!("cluster {cluster}: {e}");
                ("transport", retry_safe)
            }
            Attempt::Unsendable(e) => return unsendable(gateway, backend, &e),
        };
        failed(gateway, &member, reason);
        if !retry || attempt == 1 {
            break;
        }
    }
    if let Some(resp) = last {
        count(
            gateway,
            tried.last().map_or("none", |m| m.name.as_str()),
            resp.status(),
        );
        return resp;
    }
    if tried.is_empty() {
        count(gateway, "none", StatusCode::SERVICE_UNAVAILABLE);
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "no available cluster has Service {}/{} (backend of Ingress {})\n",
                backend.namespace, backend.service, backend.ingress
            ),
        );
    }
    count(
        gateway,
        tried.last().map_or("none", |m| m.name.as_str()),
        StatusCode::BAD_GATEWAY,
    );
    text(
        StatusCode::BAD_GATEWAY,
        format!(
            "no cluster could serve Service {}/{}: {last_error}\n",
            backend.namespace, backend.service
        ),
    )
}

/// A 500 for a request that could not be made for any member.
fn unsendable(gateway: &Gateway, backend: &Backend, error: &str) -> Response {
    count(gateway, "none", StatusCode::INTERNAL_SERVER_ERROR);
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            "cannot relay the request to Service {}/{}: {error}\n",
            backend.namespace, backend.service
        ),
    )
}

fn count(gateway: &Gateway, cluster: &str, code: StatusCode) {
    gateway
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            cluster: cluster.to_string(),
            code: code.as_u16().to_string(),
        })
        .inc();
}

fn failed(gateway: &Gateway, member: &Member, reason: &str) {
    gateway
        .metrics
        .errors
        .get_or_create(&ErrorLabels {
            cluster: member.name.clone(),
            reason: reason.to_string(),
        })
        .inc();
    if member.record_failure(Instant::now()) {
        tracing::warn!(cluster = %member.name, "3 failures in a row: out for 10s");
        gateway
            .metrics
            .ejections
            .get_or_create(&ClusterLabels {
                cluster: member.name.clone(),
            })
            .inc();
    }
}

/// The request headers relayed to the member: hop-by-hop, Host, credentials and
/// impersonation headers dropped (the member sees the gateway's identity), `X-Forwarded-*`
/// added.
fn forwarded_headers(parts: &http::request::Parts, peer: SocketAddr) -> HeaderMap {
    let headers = &parts.headers;
    let mut out = HeaderMap::with_capacity(headers.len() + 3);
    for (name, value) in headers {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n)
            || n == "host"
            || n == "authorization"
            || n == "content-length"
            || n.starts_with("impersonate-")
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prior) => format!("{prior}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
        out.insert("x-forwarded-for", v);
    }
    if let Ok(v) = HeaderValue::from_str(host_in(headers, &parts.uri)) {
        out.insert("x-forwarded-host", v);
    }
    out.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    out
}

/// One attempt against one member's service proxy.
async fn send(member: &Member, outbound: &Outbound) -> Attempt {
    let uri = match http::Uri::try_from(outbound.uri.as_str()) {
        Ok(u) => u,
        Err(e) => return Attempt::Unsendable(format!("building the request: {e}")),
    };
    let mut request = Request::new(RelayBody::new(outbound.body.clone()));
    *request.method_mut() = outbound.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = outbound.headers.clone();
    match member.relay.send(request).await {
        Ok(resp) => relayed(member, resp),
        Err(e) => failure(&*e),
    }
}

/// What a relay error means: the request's own fault, never reaching the member, or a broken
/// exchange.
fn failure(e: &DynError) -> Attempt {
    if caused_by::<RequestError>(e) {
        Attempt::Unsendable(chain(e))
    } else if is_connect_error(e) {
        Attempt::Refused(chain(e))
    } else {
        Attempt::Broken(chain(e))
    }
}

type DynError = dyn std::error::Error + 'static;

/// `e` and its causes.
fn causes(e: &DynError) -> impl Iterator<Item = &DynError> {
    std::iter::successors(Some(e), |err| std::error::Error::source(*err))
}

/// Whether `e` or one of its causes is a `T`.
fn caused_by<T: std::error::Error + 'static>(e: &DynError) -> bool {
    causes(e).any(|err| err.is::<T>())
}

/// The member's answer as the gateway relays it: hop-by-hop headers dropped, the cluster
/// named; a 5xx counts as a failure.
fn relayed<B>(member: &Member, resp: Response<B>) -> Attempt
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let (mut parts, body) = resp.into_parts();
    for h in HOP_BY_HOP {
        parts.headers.remove(*h);
    }
    if let Ok(v) = HeaderValue::from_str(&member.name) {
        parts.headers.insert("x-flotilla-gateway-cluster", v);
    }
    let failed = parts.status.is_server_error();
    let resp = Response::from_parts(parts, Body::new(body));
    if failed {
        Attempt::Failed5xx(resp)
    } else {
        Attempt::Answered(resp)
    }
}

/// An error and its causes on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether the request never reached the member (so sending it elsewhere is always safe).
fn is_connect_error(e: &DynError) -> bool {
    caused_by::<ConnectError>(e)
        || causes(e).any(|err| {
            err.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotConnected
                )
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(attempt: Attempt) -> &'static str {
        match attempt {
            Attempt::Answered(_) => "answered",
            Attempt::Failed5xx(_) => "5xx",
            Attempt::Refused(_) => "refused",
            Attempt::Broken(_) => "broken",
            Attempt::Unsendable(_) => "unsendable",
        }
    }

    #[test]
    fn a_request_that_cannot_be_built_is_not_a_member_failure() {
        let bad_header = http::HeaderValue::from_str("a\nb").unwrap_err();
        let error = RequestError(bad_header.into());
        assert_eq!(kind(failure(&error)), "unsendable");
        assert!(!is_connect_error(&error));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(kind(failure(&ConnectError(refused.into()))), "refused");
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(kind(failure(&reset)), "broken");
    }
}
