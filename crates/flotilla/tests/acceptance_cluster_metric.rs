//! Acceptance (issue 4, Deliver 3): the hub's cluster health controller exposes a per-cluster
//! availability metric. A joined member shows `flotilla_cluster_available{cluster="NAME"} 1` on
//! the hub's `/metrics`, and 0 once it stops answering; the probes' durations are a histogram
//! beside it.

mod support;

use std::time::Duration;

use support::{Server, temp_dir, wait_for};

#[test]
fn cluster_availability_is_a_hub_metric() {
    let dir = temp_dir("acceptance-cluster-metric");
    let hub = Server::hub_probing_every_second(&dir.join("hub"));
    let member = Server::member("metered", &dir.join("metered"));
    hub.join("metered", &member);

    let metric = |value: &str| {
        let text = hub.kubectl_ok(&["get", "--raw", "/metrics"]);
        text.lines().any(|l| {
            l.trim() == format!("flotilla_cluster_available{{cluster=\"metered\"}} {value}")
        })
    };
    wait_for(
        "availability 1 on /metrics",
        Duration::from_secs(30),
        || metric("1").then_some(()),
    );
    let text = hub.kubectl_ok(&["get", "--raw", "/metrics"]);
    let probes: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("flotilla_cluster_probe_duration_seconds_count "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no probe duration count on /metrics:\n{text}"));
    assert!(probes >= 1.0, "the answered probe is counted: {probes}");
    drop(member);
    wait_for(
        "availability 0 on /metrics",
        Duration::from_secs(30),
        || metric("0").then_some(()),
    );
    let _ = std::fs::remove_dir_all(&dir);
}
