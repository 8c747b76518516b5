//! The relay end to end in one process: a client over an in-memory pipe, the gateway's
//! connection loop, and a scripted plain-HTTP member.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::networking::v1::Ingress;
use parking_lot::{Mutex, RwLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::TcpListener;

use super::*;
use crate::member_stream::MemberStreams;
use crate::members::{Member, Members};
use crate::metrics::GatewayMetrics;
use crate::routes::RouteTable;

const PREFIX: &str = "/api/v1/namespaces/shop/services/web:80/proxy";

/// The member's answer to a request for `path`.
fn scripted(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let last = path.rsplit('/').next().unwrap_or("");
    let text: &[u8] = match last {
        "chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        "close" => b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
        "nocontent" => b"HTTP/1.1 204 No Content\r\n\r\n",
        "notmodified" => b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
        "fail" => b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown",
        "continue" => {
            let mut out = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
            out.extend(format!("HTTP/1.1 201 Created\r\nContent-Length: {}\r\n\r\n", body.len()).bytes());
            out.extend_from_slice(body);
            return out;
        }
        _ => {
            let echo = format!("{method} {path} {}", String::from_utf8_lossy(body));
            let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", echo.len()).into_bytes();
            if method != "HEAD" {
                out.extend(echo.bytes());
            }
            return out;
        }
    };
    text.to_vec()
}

/// Serves scripted answers; records every request as the member read it.
async fn fake_member(listener: TcpListener, seen: Arc<Mutex<Vec<String>>>) {
    while let Ok((mut tcp, _)) = listener.accept().await {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            loop {
                let (head_len, method, path, length) = loop {
                    let mut headers = [httparse::EMPTY_HEADER; 64];
                    let mut request = httparse::Request::new(&mut headers);
                    if let Ok(httparse::Status::Complete(n)) = request.parse(&buf) {
                        let length = request
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                            .map_or(0, |h| {
                                std::str::from_utf8(h.value).unwrap().parse().unwrap()
                            });
                        let method = request.method.unwrap().to_string();
                        break (n, method, request.path.unwrap().to_string(), length);
                    }
                    if tcp.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                        return;
                    }
                };
                while buf.len() < head_len + length {
                    if tcp.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                        return;
                    }
                }
                let request: Vec<u8> = buf.drain(..head_len + length).collect();
                seen.lock()
                    .push(String::from_utf8_lossy(&request).into_owned());
                let answer = scripted(&method, &path, &request[head_len..]);
                if tcp.write_all(&answer).await.is_err() || path.ends_with("/close") {
                    return;
                }
            }
        });
    }
}

struct Setup {
    gateway: Arc<Gateway>,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn setup() -> Setup {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(fake_member(listener, seen.clone()));
    let mut config = kube::Config::new(url.parse().unwrap());
    config.accept_invalid_certs = true;
    config.auth_info.impersonate = Some("system:flotilla:ingress-gateway".into());
    let client = kube::Client::try_from(config.clone()).unwrap();
    let relay = MemberStreams::new(&config).await.unwrap();
    let ingress: Ingress = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"ingressClassName": "flotilla", "rules": [{"host": "shop", "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
    }))
    .unwrap();
    let (table, _) = RouteTable::build([&ingress]);
    let gateway = Gateway {
        hub_client: client.clone(),
        routes: RwLock::new(Arc::new(table)),
        members: Members::default(),
        spreads: Mutex::new(HashMap::new()),
        metrics: GatewayMetrics::new(),
    };
    gateway
        .members
        .insert(Member::serving("m-1", client, relay, &["shop/web"]));
    Setup {
        gateway: Arc::new(gateway),
        seen,
    }
}

/// A client connection served by the gateway's loop.
fn connect(gateway: &Arc<Gateway>) -> DuplexStream {
    let (client, mut server) = tokio::io::duplex(1 << 16);
    let gateway = gateway.clone();
    tokio::spawn(
        async move { serve_io(&gateway, &mut server, "10.0.0.9:1234".parse().unwrap()).await },
    );
    client
}

/// Reads until the text read contains `want` (or the connection ends).
async fn read_for(client: &mut DuplexStream, got: &mut Vec<u8>, want: &str) -> String {
    let reading = async {
        while !String::from_utf8_lossy(got).contains(want) {
            if client.read_buf(got).await.unwrap() == 0 {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), reading)
        .await
        .unwrap();
    String::from_utf8_lossy(got).into_owned()
}

async fn read_to_end(client: &mut DuplexStream) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn pipelined_requests_are_relayed_in_order_with_the_members_preamble() {
    let s = setup().await;
    let mut client = connect(&s.gateway);
    client
        .write_all(b"GET /a?x=1 HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer no\r\n\r\nGET /b HTTP/1.1\r\nHost: shop\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let text = read_for(&mut client, &mut got, &format!("GET {PREFIX}/b ")).await;
    let first = text.find(&format!("GET {PREFIX}/a?x=1 ")).unwrap();
    assert!(
        first < text.find(&format!("GET {PREFIX}/b ")).unwrap(),
        "{text}"
    );
    assert_eq!(
        text.matches("x-flotilla-gateway-cluster: m-1\r\n").count(),
        2,
        "{text}"
    );
    let seen = s.seen.lock().clone();
    assert!(
        seen[0].starts_with(&format!("GET {PREFIX}/a?x=1 HTTP/1.1\r\n")),
        "{seen:?}"
    );
    assert!(
        seen[0].contains("impersonate-user: system:flotilla:ingress-gateway\r\n"),
        "{seen:?}"
    );
    assert!(seen[0].contains("x-forwarded-for: 10.0.0.9\r\n") && !seen[0].contains("Bearer no"));
    assert_eq!(s.seen.lock().len(), 2);
}

#[tokio::test]
async fn chunked_answers_go_verbatim_to_http11_and_decoded_to_http10_clients() {
    let s = setup().await;
    let mut client = connect(&s.gateway);
    client
        .write_all(b"GET /chunked HTTP/1.1\r\nHost: shop\r\n\r\n")
        .await
        .unwrap();
    let text = read_for(&mut client, &mut Vec::new(), "0\r\n\r\n").await;
    assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        "{text}"
    );
    let mut old = connect(&s.gateway);
    old.write_all(b"GET /chunked HTTP/1.0\r\nHost: shop\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let text = read_to_end(&mut old).await;
    assert!(
        text.contains("connection: close\r\n") && !text.contains("chunked"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\nhello world"), "{text}");
}

#[tokio::test]
async fn bodiless_answers_keep_the_connection_for_the_next_request() {
    let s = setup().await;
    let mut client = connect(&s.gateway);
    let mut got = Vec::new();
    client
        .write_all(
            b"HEAD /h HTTP/1.1\r\nHost: shop\r\n\r\nGET /nocontent HTTP/1.1\r\nHost: shop\r\n\r\n",
        )
        .await
        .unwrap();
    client.write_all(b"GET /notmodified HTTP/1.1\r\nHost: shop\r\n\r\nGET /last HTTP/1.1\r\nHost: shop\r\n\r\n").await.unwrap();
    let text = read_for(&mut client, &mut got, "/last ").await;
    let heads: Vec<&str> = text.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(heads.len(), 4, "{text}");
    assert!(
        heads[0].starts_with("200")
            && heads[0].contains("Content-Length: ")
            && heads[0].ends_with("\r\n\r\n"),
        "{text}"
    );
    assert!(
        heads[1].starts_with("204") && heads[1].ends_with("\r\n\r\n"),
        "{text}"
    );
    assert!(
        heads[2].starts_with("304")
            && heads[2].contains("Content-Length: 9\r\n")
            && heads[2].ends_with("\r\n\r\n"),
        "{text}"
    );
    assert!(heads[3].ends_with(&format!("GET {PREFIX}/last ")), "{text}");
}

#[tokio::test]
async fn expect_continue_is_answered_before_the_body_and_the_members_interim_skipped() {
    let s = setup().await;
    let mut client = connect(&s.gateway);
    client
        .write_all(b"PUT /continue HTTP/1.1\r\nHost: shop\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let text = read_for(&mut client, &mut got, "\r\n\r\n").await;
    assert_eq!(text, "HTTP/1.1 100 Continue\r\n\r\n");
    client.write_all(b"data").await.unwrap();
    let text = read_for(&mut client, &mut got, "\r\n\r\ndata").await;
    assert!(text.contains("HTTP/1.1 201 Created\r\n"), "{text}");
    assert_eq!(text.matches("100 Continue").count(), 1, "{text}");
    assert!(s.seen.lock()[0].contains("content-length: 4\r\n"));
}

#[tokio::test]
async fn a_chunked_request_body_reaches_the_member_with_its_length() {
    let s = setup().await;
    let mut client = connect(&s.gateway);
    client
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
        )
        .await
        .unwrap();
    client.write_all(b"2\r\nde\r\n0\r\n\r\n").await.unwrap();
    let text = read_for(
        &mut client,
        &mut Vec::new(),
        &format!("POST {PREFIX}/echo abcde"),
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    let seen = s.seen.lock()[0].clone();
    assert!(
        seen.contains("content-length: 5\r\n")
            && !seen.to_lowercase().contains("transfer-encoding"),
        "{seen}"
    );
}

#[tokio::test]
async fn a_close_delimited_answer_is_relayed_to_the_end_and_closes_the_client() {
    let s = setup().await;
    let mut client = connect(&s.gateway);
    client
        .write_all(b"GET /close HTTP/1.1\r\nHost: shop\r\n\r\n")
        .await
        .unwrap();
    let text = read_to_end(&mut client).await;
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nuntil the end"), "{text}");
}

#[tokio::test]
async fn connection_close_and_http10_end_the_connection_after_the_answer() {
    let s = setup().await;
    for request in [
        &b"GET /x HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n"[..],
        b"GET /x HTTP/1.0\r\nHost: shop\r\n\r\n",
    ] {
        let mut client = connect(&s.gateway);
        client.write_all(request).await.unwrap();
        let text = read_to_end(&mut client).await;
        assert!(
            text.contains("connection: close\r\n") && text.ends_with(&format!("GET {PREFIX}/x ")),
            "{text}"
        );
    }
}

#[tokio::test]
async fn bad_requests_get_400_431_404_and_a_5xx_is_relayed() {
    let s = setup().await;
    let mut client = connect(&s.gateway);
    client
        .write_all(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n")
        .await
        .unwrap();
    assert!(
        read_to_end(&mut client)
            .await
            .starts_with("HTTP/1.1 400 Bad Request\r\n")
    );
    let mut client = connect(&s.gateway);
    let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(70_000));
    client.write_all(big.as_bytes()).await.unwrap();
    assert!(
        read_to_end(&mut client)
            .await
            .starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n")
    );
    let mut client = connect(&s.gateway);
    client.write_all(b"GET /fail HTTP/1.1\r\nHost: shop\r\n\r\nGET /x HTTP/1.1\r\nHost: nowhere\r\nConnection: close\r\n\r\n").await.unwrap();
    let text = read_to_end(&mut client).await;
    assert!(
        text.starts_with("HTTP/1.1 503 Service Unavailable\r\n") && text.contains("\r\n\r\ndown"),
        "{text}"
    );
    assert!(
        text.contains("HTTP/1.1 404 Not Found\r\n")
            && text.contains("no Ingress of class flotilla routes host \"nowhere\""),
        "{text}"
    );
}
