//! Fleet alerts: a ClusterUnavailable rule in ConfigMap `vela-system/flotilla-alerts` fires
//! when a member stops and resolves when it returns; both become Events on the hub and
//! messages to a slack-format and a lark-format webhook (a local HTTP receiver).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{Server, TestDir, free_port, wait_for};

const WAIT: Duration = Duration::from_secs(90);

/// `(path, body)` of every request the receiver got.
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// An HTTP server on 127.0.0.1 that records `(path, body)` of every request and answers 200.
fn webhook_receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            sink.lock()
                .unwrap()
                .push((path, String::from_utf8_lossy(&body).into_owned()));
            let _ = reader.get_mut().write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            );
        }
    });
    (url, received)
}

fn start_member(dir: &TestDir, port: u16) -> Server {
    Server::start(
        &[
            "member",
            "--name",
            "edge",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
        &dir.0.join("edge"),
    )
}

fn alert_event(hub: &Server, reason: &str) -> Option<String> {
    let messages = hub.kubectl_ok(&[
        "get",
        "events",
        "-n",
        "vela-system",
        "-o",
        &format!(
            "jsonpath={{range .items[?(@.reason==\"{reason}\")]}}{{.involvedObject.kind}}/{{.involvedObject.name}}: {{.message}}{{\"\\n\"}}{{end}}"
        ),
    ]);
    messages.lines().next().map(str::to_string)
}

fn webhook_body(received: &Received, path: &str, needle: &str) -> Option<String> {
    received
        .lock()
        .unwrap()
        .iter()
        .find(|(p, b)| p == path && b.contains(needle))
        .map(|(_, b)| b.clone())
}

#[test]
fn cluster_unavailable_alert_fires_and_resolves() {
    let dir = TestDir::new("fleet-alerts");
    let (url, received) = webhook_receiver();
    let hub = Server::hub_probing_every_second(&dir.0.join("hub"));
    let port = free_port();
    let mut member = start_member(&dir, port);
    hub.join("edge", &member);
    let rules = format!(
        "rules:\n- name: cluster-down\n  type: ClusterUnavailable\n  for: 2s\nwebhooks:\n- type: slack\n  url: {url}/slack\n- type: lark\n  url: {url}/lark\n"
    );
    let rules_file = dir.0.join("rules.yaml");
    std::fs::write(&rules_file, rules).unwrap();
    hub.kubectl_ok(&[
        "create",
        "configmap",
        "flotilla-alerts",
        "-n",
        "vela-system",
        &format!("--from-file=rules.yaml={}", rules_file.display()),
    ]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(alert_event(&hub, "AlertFiring"), None, "edge is up");

    let _ = member.child.kill();
    let _ = member.child.wait();
    let fired = wait_for("the AlertFiring Event", WAIT, || {
        alert_event(&hub, "AlertFiring")
    });
    assert_eq!(
        fired,
        "ManagedCluster/edge: [FIRING] cluster-down: cluster edge unavailable for more than 2s"
    );
    let slack = wait_for("the slack message", WAIT, || {
        webhook_body(&received, "/slack", "FIRING")
    });
    assert_eq!(
        slack,
        r#"{"text":"[FIRING] cluster-down: cluster edge unavailable for more than 2s"}"#
    );
    let lark = wait_for("the lark message", WAIT, || {
        webhook_body(&received, "/lark", "FIRING")
    });
    assert_eq!(
        lark,
        r#"{"msg_type":"text","content":{"text":"[FIRING] cluster-down: cluster edge unavailable for more than 2s"}}"#
    );

    drop(member);
    let _member = start_member(&dir, port);
    let resolved = wait_for("the AlertResolved Event", WAIT, || {
        alert_event(&hub, "AlertResolved")
    });
    assert_eq!(
        resolved,
        "ManagedCluster/edge: [RESOLVED] cluster-down: cluster edge is no longer unavailable"
    );
    wait_for("the resolved slack message", WAIT, || {
        webhook_body(&received, "/slack", "RESOLVED")
    });
    let firing_messages = received
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, b)| p == "/slack" && b.contains("FIRING"))
        .count();
    assert_eq!(firing_messages, 1, "an alert fires once");
}
