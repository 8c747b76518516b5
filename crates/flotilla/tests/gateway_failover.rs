//! Failover through `flotilla gateway`: a member whose Pods answer 503, then a member killed
//! with SIGKILL, stops getting traffic, and over both switches at least 99.9% of the
//! requests succeed.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::parking_lot_free::Log;
use support::fleet::{Gateway, Http, apply, echo_workload, wait_ready_pods};
use support::{Server, TestDir};

/// What the load threads saw: (cluster or error, status) in order.
mod parking_lot_free {
    use std::sync::Mutex;

    #[derive(Default)]
    pub(crate) struct Log(pub Mutex<Vec<(String, u16)>>);

    impl Log {
        pub(crate) fn push(&self, cluster: String, status: u16) {
            self.0.lock().unwrap().push((cluster, status));
        }
        pub(crate) fn len(&self) -> usize {
            self.0.lock().unwrap().len()
        }
        /// The last `n` answers.
        pub(crate) fn last(&self, n: usize) -> Vec<(String, u16)> {
            let v = self.0.lock().unwrap();
            v.iter().rev().take(n).cloned().collect()
        }
    }
}

const INGRESS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  ingressClassName: flotilla
  defaultBackend: {service: {name: web, port: {number: 80}}}
"#;

/// Waits until the last 100 answers come from other clusters than `gone`.
async fn until_traffic_avoids(log: &Log, gone: &str) {
    let start = log.len();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last = log.last(100);
        if log.len() >= start + 100 && last.iter().all(|(c, status)| c != gone && *status == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "traffic still reaches {gone}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_then_killed_member_loses_no_request() {
    let dir = TestDir::new("gw-failover");
    let hub = Server::hub_probing_every_second(&dir.path().join("hub"));
    let members: Vec<Server> = ["east", "west", "south"]
        .iter()
        .map(|n| Server::member(n, &dir.path().join(n)))
        .collect();
    for (name, member) in ["east", "west", "south"].iter().zip(&members) {
        hub.join(name, member);
        echo_workload(member, "shop", "web", 2);
    }
    for member in &members {
        wait_ready_pods(member, "shop", "web", 2);
    }
    apply(&hub.kubeconfig, INGRESS);
    let gateway = Gateway::start(&hub);
    let http = Http::new();
    let log = Arc::new(Log::default());
    let stop = Arc::new(AtomicBool::new(false));

    // Every member serves before the faults.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut seen = BTreeMap::new();
        for _ in 0..12 {
            if let Ok(a) = http.get(&gateway.address, "shop.example.com", "/").await {
                *seen.entry(a.cluster().unwrap_or_default()).or_insert(0) += 1;
            }
        }
        if seen.len() == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every member served: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Four clients send requests until told to stop.
    let mut load = Vec::new();
    for _ in 0..4 {
        let (http, log, stop, addr) = (
            http.clone(),
            log.clone(),
            stop.clone(),
            gateway.address.clone(),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match http.get(&addr, "shop.example.com", "/").await {
                    Ok(a) => log.push(a.cluster().unwrap_or_else(|| a.body.clone()), a.status),
                    Err(e) => log.push(format!("error: {e}"), 0),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 1. east's Pods answer 503.
    members[0].kubectl_ok(&[
        "annotate",
        "deployment",
        "web",
        "-n",
        "shop",
        "sim.flotilla.io/http-status=503",
    ]);
    until_traffic_avoids(&log, "east").await;

    // 2. west is killed with SIGKILL.
    let mut members = members;
    members[1].child.kill().unwrap();
    members[1].child.wait().unwrap();
    until_traffic_avoids(&log, "west").await;
    while log.len() < 2000 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }

    let answers = log.0.lock().unwrap().clone();
    let failed: Vec<_> = answers
        .iter()
        .filter(|(_, status)| *status != 200)
        .collect();
    assert!(
        failed.len() * 1000 <= answers.len(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        answers.len(),
        &failed[..failed.len().min(10)]
    );
    let tail: Vec<_> = answers.iter().rev().take(200).collect();
    assert!(tail.iter().all(|(c, _)| c == "south"), "{tail:?}");
    let metrics = http.get(&gateway.address, "x", "/metrics").await.unwrap();
    assert!(
        metrics
            .body
            .contains("flotilla_gateway_ejections_total{cluster=\"east\"}"),
        "{}",
        metrics.body
    );
}
