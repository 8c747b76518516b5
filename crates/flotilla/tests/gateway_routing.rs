//! `flotilla gateway` serves the hub's Ingresses of class `flotilla` over two members: 1,000
//! requests with weights 70/30 land 70/30 (± 5%), the Ingress status lists the gateway, and
//! bad input answers clearly: a missing backend Service 503, an unknown host 404, a malformed
//! weights annotation an Event (and equal spread).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::fleet::{Gateway, Http, apply, echo_workload, wait_ready_pods};
use support::{Server, TestDir, wait_for};

const INGRESSES: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  annotations: {gateway.flotilla.io/cluster-weights: "beijing-1=70,us-west-1=30"}
spec:
  ingressClassName: flotilla
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /missing, pathType: Prefix, backend: {service: {name: nope, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bad-weights
  namespace: shop
  annotations: {gateway.flotilla.io/cluster-weights: "beijing-1=seventy,us-west-1"}
spec:
  ingressClassName: flotilla
  rules:
  - host: equal.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: other-class, namespace: shop}
spec:
  ingressClassName: nginx
  rules:
  - host: nginx.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"#;

fn spread(answers: &[support::fleet::Answer]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for a in answers {
        assert_eq!(a.status, 200, "{}", a.body);
        *counts.entry(a.cluster().unwrap_or_default()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_spreads_by_weight_and_answers_bad_input_clearly() {
    let dir = TestDir::new("gw-routing");
    let hub = Server::hub(&dir.path().join("hub"));
    let beijing = Server::member("beijing-1", &dir.path().join("beijing-1"));
    let us_west = Server::member("us-west-1", &dir.path().join("us-west-1"));
    hub.join("beijing-1", &beijing);
    hub.join("us-west-1", &us_west);
    echo_workload(&beijing, "shop", "web", 2);
    echo_workload(&us_west, "shop", "web", 2);
    wait_ready_pods(&beijing, "shop", "web", 2);
    wait_ready_pods(&us_west, "shop", "web", 2);
    apply(&hub.kubeconfig, INGRESSES);
    let gateway = Gateway::start(&hub);
    let http = Http::new();
    let addr = gateway.address.clone();

    // Both members are seen before measuring.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut answers = Vec::new();
        for _ in 0..10 {
            // Before the gateway has read the Ingresses and members it answers 404/503.
            if let Ok(a) = http.get(&addr, "shop.example.com", "/").await
                && a.status == 200
            {
                answers.push(a);
            }
        }
        if spread(&answers).len() == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "both members never served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut answers = Vec::new();
    for i in 0..1000 {
        answers.push(
            http.get(&addr, "shop.example.com", &format!("/cart/{i}?q=1"))
                .await
                .expect("answer"),
        );
    }
    let counts = spread(&answers);
    let beijing_share = counts.get("beijing-1").copied().unwrap_or(0);
    assert!((650..=750).contains(&beijing_share), "{counts:?}");
    assert_eq!(counts.values().sum::<usize>(), 1000);
    let body: serde_json::Value = serde_json::from_str(&answers[7].body).unwrap();
    assert_eq!(body["path"], "/cart/7");
    assert_eq!(body["namespace"], "shop");
    assert_eq!(body["headers"]["x-forwarded-host"], "shop.example.com");

    // The Ingress status lists the gateway.
    let port = addr.rsplit(':').next().unwrap().to_string();
    wait_for("Ingress status", Duration::from_secs(30), || {
        let lb = hub.jsonpath(
            "ingress",
            "web",
            "shop",
            "{.status.loadBalancer.ingress[0].ip}:{.status.loadBalancer.ingress[0].ports[0].port}",
        );
        (lb == format!("127.0.0.1:{port}")).then_some(())
    });

    // Bad input: a Service no member has, an unknown host, an Ingress of another class.
    let missing = http
        .get(&addr, "shop.example.com", "/missing/x")
        .await
        .unwrap();
    assert_eq!(missing.status, 503, "{}", missing.body);
    assert!(
        missing
            .body
            .contains("no available cluster has Service shop/nope"),
        "{}",
        missing.body
    );
    let unknown = http.get(&addr, "unknown.example.com", "/").await.unwrap();
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert!(
        unknown.body.contains("unknown.example.com"),
        "{}",
        unknown.body
    );
    let nginx = http.get(&addr, "nginx.example.com", "/").await.unwrap();
    assert_eq!(nginx.status, 404);

    // A malformed weights annotation: a Warning Event on the Ingress, and equal spread.
    wait_for(
        "the InvalidClusterWeights event",
        Duration::from_secs(30),
        || {
            let events = hub.kubectl_ok(&["get", "events", "-n", "shop", "-o", "json"]);
            (events.contains("InvalidClusterWeights") && events.contains("bad-weights"))
                .then_some(())
        },
    );
    let mut equal = Vec::new();
    for _ in 0..100 {
        equal.push(http.get(&addr, "equal.example.com", "/").await.unwrap());
    }
    let counts = spread(&equal);
    assert_eq!(counts.get("beijing-1"), Some(&50), "{counts:?}");

    // /metrics counts requests by cluster.
    let metrics = http.get(&addr, "anything", "/metrics").await.unwrap();
    assert!(
        metrics
            .body
            .contains("flotilla_gateway_requests_total{cluster=\"beijing-1\",code=\"200\"}"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("flotilla_gateway_request_duration_seconds_bucket{")
    );
}
