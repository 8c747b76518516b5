//! Member clients multiplex over one HTTP/2 connection per member (issue 11 goals 1 and 3).
//!
//! A simulated member's own controllers (the workload simulator and the state-metrics
//! exporter, ~17 watches plus their writes) reach its API server over one connection; over
//! HTTP/1.1 each watch held its own (~17 connections, ~35 descriptors per member). A hub
//! dispatching many Applications at once to a member holds one connection to it, shared by
//! the dispatch, the probes and the metrics scrape (~40 per member over HTTP/1.1, then one per
//! client pool, then two lanes). An idle joined member costs the hub one connection too.
//! Connections are counted from `/proc/PID/net/tcp` and the process's descriptors.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use support::fleet::apply;
use support::{Server, TestDir, stdout, wait_for};

const WAIT: Duration = Duration::from_secs(90);

/// A simulated member's connections to its own API server stay at most this many (the
/// simulator and exporter share one; a second may be opening as an idle one closes).
const MEMBER_SELF_CONNECTIONS: usize = 2;
/// The hub's connections to one member stay at most this many during and after a fan-out:
/// one, and a second while a connection whose probe timed out on a loaded machine is
/// replaced (the clients that hold the old one keep it until they are rebuilt).
const HUB_CONNECTIONS_PER_MEMBER: usize = 2;

/// The port `server` listens on.
fn port(server: &Server) -> u16 {
    let url = server.url();
    let port = url.trim_end_matches('/').rsplit(':').next().unwrap();
    port.parse().unwrap_or_else(|_| panic!("no port in {url}"))
}

/// The socket inodes process `pid` holds.
fn socket_inodes(pid: u32) -> HashSet<String> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    entries
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect()
}

/// How many established TCP connections process `pid` holds to remote port `port`.
fn connections_to(pid: u32, port: u16) -> usize {
    let inodes = socket_inodes(pid);
    let remote_port = format!(":{port:04X}");
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        })
        .filter(|cols| cols.len() > 9)
        .filter(|cols| cols[2].ends_with(&remote_port) && cols[3] == "01")
        .filter(|cols| inodes.contains(&cols[9]))
        .count()
}

/// How many `kind` objects in `namespace` have a name starting with `prefix`.
fn count(server: &Server, kind: &str, namespace: &str, prefix: &str) -> usize {
    let out = server.kubectl(&["get", kind, "-n", namespace, "-o", "name"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            l.split_once('/')
                .is_some_and(|(_, n)| n.starts_with(prefix))
        })
        .count()
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80}]
"#;

#[test]
fn a_busy_member_reaches_its_own_api_server_over_one_connection() {
    let dir = TestDir::new("member-connections-self");
    let member = Server::member("m1", &dir.0.join("m1"));
    let (pid, port) = (member.child.id(), port(&member));
    apply(&member.kubeconfig, DEPLOYMENT);
    let mut most = 0;
    wait_for("3 ready Pods and their endpoints", WAIT, || {
        most = most.max(connections_to(pid, port));
        let ready = member.kubectl(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ]);
        let endpoints = count(&member, "endpointslices", "default", "web");
        (String::from_utf8_lossy(&ready.stdout) == "3" && endpoints > 0).then_some(())
    });
    let now = connections_to(pid, port);
    eprintln!("member self-connections: at most {most} while busy, {now} after");
    assert!(
        now >= 1,
        "the simulator's connection to its own API server was not found"
    );
    assert!(
        most.max(now) <= MEMBER_SELF_CONNECTIONS,
        "the member's controllers held {} connections to its own API server (at most \
         {MEMBER_SELF_CONNECTIONS} expected: one HTTP/2 connection for every watch and write)",
        most.max(now)
    );
}

/// `n` Applications, each placing one ConfigMap on `cluster`.
fn applications(n: usize, cluster: &str) -> String {
    (0..n)
        .map(|i| {
            format!(
                r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: {{name: app-{i}, namespace: default}}
spec:
  components:
    - name: c-{i}
      type: k8s-objects
      properties:
        objects:
          - apiVersion: v1
            kind: ConfigMap
            metadata: {{name: cm-{i}}}
            data: {{k: v}}
  policies:
    - type: topology
      name: here
      properties: {{clusters: ["{cluster}"]}}
"#
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

#[test]
fn a_hub_dispatching_many_applications_holds_few_connections_to_a_member() {
    const APPS: usize = 60;
    let dir = TestDir::new("member-connections-hub");
    let hub = Server::hub(&dir.0.join("hub"));
    let member = Server::member("m1", &dir.0.join("m1"));
    hub.join("m1", &member);
    let (hub_pid, member_port) = (hub.child.id(), port(&member));
    apply(&hub.kubeconfig, &applications(APPS, "m1"));
    let mut most = 0;
    wait_for("every ConfigMap on the member", WAIT, || {
        most = most.max(connections_to(hub_pid, member_port));
        (count(&member, "configmaps", "default", "cm-") >= APPS).then_some(())
    });
    let now = connections_to(hub_pid, member_port);
    eprintln!("hub connections to the member: at most {most} while dispatching, {now} after");
    assert!(now >= 1, "the hub's connection to the member was not found");
    assert!(
        most.max(now) <= HUB_CONNECTIONS_PER_MEMBER,
        "the hub held {} connections to one member while dispatching {APPS} Applications \
         (at most {HUB_CONNECTIONS_PER_MEMBER} expected: one HTTP/2 connection per member)",
        most.max(now)
    );
}

#[test]
fn an_idle_member_costs_the_hub_one_connection() {
    let dir = TestDir::new("member-connections-idle");
    let hub = Server::hub_probing_every_second(&dir.0.join("hub"));
    let member = Server::member("m1", &dir.0.join("m1"));
    hub.join("m1", &member);
    let (hub_pid, member_port) = (hub.child.id(), port(&member));
    // Probed (Available), scraped (its series at /metrics/clusters) and so also read by the
    // multi-cluster Services controller, which reads every Available member each second.
    wait_for("the member's series scraped by the hub", WAIT, || {
        let out = hub.kubectl(&["get", "--raw", "/metrics/clusters"]);
        stdout(&out).contains("cluster=\"m1\"").then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let mut seen = Vec::new();
    wait_for(
        "the hub to hold one connection to the idle member",
        WAIT,
        || {
            let now = connections_to(hub_pid, member_port);
            seen.push(now);
            (now == 1).then_some(())
        },
    );
    eprintln!("hub connections to the idle member, sampled: {seen:?}");
}
