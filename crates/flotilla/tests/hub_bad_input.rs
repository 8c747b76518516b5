//! Bad input never stores anything, never crashes the hub, and always gets the Status
//! kube-apiserver would send: malformed JSON/YAML/protobuf, wrong kind or namespace,
//! invalid names, Strict unknown fields, a 4 MiB body, garbage patches, bad selectors.

mod support;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use serde_json::Value;
use support::{Server, temp_dir};

/// Sends a raw request; returns (HTTP status, body as JSON or Null).
async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", content_type)
        .body(body)
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn assert_status(got: &(u16, Value), code: u16, reason: &str, message_part: &str) {
    assert_eq!(got.0, code, "{:?}", got.1);
    assert_eq!(got.1["kind"], "Status", "{:?}", got.1);
    assert_eq!(got.1["reason"], reason, "{:?}", got.1);
    assert_eq!(got.1["code"], code);
    let message = got.1["message"].as_str().unwrap_or("");
    assert!(
        message.contains(message_part),
        "{message:?} lacks {message_part:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_status_and_stores_nothing() {
    let dir = temp_dir("hub-bad-input");
    let hub = Server::hub(&dir);
    let client = hub.kube_client().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let json = "application/json";

    let r = send(
        &client,
        "POST",
        cms,
        json,
        b"{\"apiVersion\":\"v1\",\"kind\":".to_vec(),
    )
    .await;
    assert_status(&r, 400, "BadRequest", "json parse error");
    let r = send(
        &client,
        "POST",
        cms,
        "application/yaml",
        b"kind: ConfigMap\n  bad: [indent\n".to_vec(),
    )
    .await;
    assert_status(&r, 400, "BadRequest", "yaml");
    let r = send(
        &client,
        "POST",
        cms,
        "application/vnd.kubernetes.protobuf",
        b"k8s\0\x0a\xff".to_vec(),
    )
    .await;
    assert_status(&r, 400, "BadRequest", "protobuf");
    let r = send(&client, "POST", cms, "text/plain", b"hello".to_vec()).await;
    assert_status(&r, 415, "UnsupportedMediaType", "unknown format");
    let r = send(
        &client,
        "POST",
        cms,
        json,
        br#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"}}"#.to_vec(),
    )
    .await;
    assert_status(
        &r,
        400,
        "BadRequest",
        "does not match the expected API version",
    );
    let r = send(
        &client,
        "POST",
        cms,
        json,
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"other"}}"#
            .to_vec(),
    )
    .await;
    assert_status(&r, 400, "BadRequest", "does not match the namespace");
    let r = send(
        &client,
        "POST",
        cms,
        json,
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}"#.to_vec(),
    )
    .await;
    assert_status(
        &r,
        422,
        "Invalid",
        "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\"",
    );
    assert_eq!(r.1["details"]["causes"][0]["field"], "metadata.name");
    let r = send(
        &client,
        "POST",
        cms,
        json,
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"a":1}}"#
            .to_vec(),
    )
    .await;
    assert_status(&r, 400, "BadRequest", "cannot be handled as a ConfigMap");
    let r = send(
        &client,
        "POST",
        &format!("{cms}?fieldValidation=Strict"),
        json,
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"spec":{"foo":1}}"#
            .to_vec(),
    )
    .await;
    assert_status(
        &r,
        400,
        "BadRequest",
        "strict decoding error: unknown field \"spec\"",
    );
    let big = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"a":"{}"}}}}"#,
        "x".repeat(4 * 1024 * 1024)
    );
    let r = send(&client, "POST", cms, json, big.into_bytes()).await;
    assert_status(&r, 413, "RequestEntityTooLarge", "limit is 3145728");
    let r = send(
        &client,
        "GET",
        &format!("{cms}?labelSelector=a%20in%20(b"),
        json,
        vec![],
    )
    .await;
    assert_eq!(r.0, 400, "{:?}", r.1);
    let r = send(
        &client,
        "GET",
        &format!("{cms}?fieldSelector=spec.nope%3Dx"),
        json,
        vec![],
    )
    .await;
    assert_status(&r, 400, "BadRequest", "field label not supported");

    // Garbage patches against a real object leave it unchanged.
    let ok = send(
        &client,
        "POST",
        cms,
        json,
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"target"},"data":{"a":"1"}}"#
            .to_vec(),
    )
    .await;
    assert_eq!(ok.0, 201, "{:?}", ok.1);
    let target = format!("{cms}/target");
    let r = send(
        &client,
        "PATCH",
        &target,
        "application/merge-patch+json",
        b"{not json".to_vec(),
    )
    .await;
    assert_status(&r, 400, "BadRequest", "");
    let r = send(
        &client,
        "PATCH",
        &target,
        "application/json-patch+json",
        br#"{"op":"add"}"#.to_vec(),
    )
    .await;
    assert_eq!(r.0, 400, "{:?}", r.1);
    let r = send(
        &client,
        "PATCH",
        &target,
        "application/json-patch+json",
        br#"[{"op":"replace","path":"/data/missing/deeper","value":1}]"#.to_vec(),
    )
    .await;
    assert_eq!(r.0, 422, "{:?}", r.1);
    let r = send(
        &client,
        "PATCH",
        &target,
        "application/strategic-merge-patch+json",
        br#"{"data":{"a":{"nested":true}}}"#.to_vec(),
    )
    .await;
    assert!(r.0 == 400 || r.0 == 422, "{:?}", r.1);
    let r = send(
        &client,
        "PATCH",
        &target,
        "application/xml",
        b"<x/>".to_vec(),
    )
    .await;
    assert_status(&r, 415, "UnsupportedMediaType", "");
    let r = send(
        &client,
        "PATCH",
        &format!("{target}?fieldManager=m"),
        "application/apply-patch+yaml",
        b"{{{".to_vec(),
    )
    .await;
    assert_eq!(r.0, 400, "{:?}", r.1);

    // Nothing was stored but the one good object, unchanged; the hub still serves.
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let names: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(names, ["target"]);
    assert_eq!(api.get("target").await.unwrap().data.unwrap()["a"], "1");
    let ready = hub.kubectl_ok(&["get", "--raw", "/readyz"]);
    assert_eq!(ready.trim(), "ok");
    drop(hub);
    let _ = std::fs::remove_dir_all(&dir);
}
