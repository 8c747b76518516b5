//! The multi-cluster Services controller follows members by watching their ServiceExports and
//! ServiceImports (issue 11 goal 3): an idle member (neither) gets no periodic reads, only
//! the two watches; once it exports, a pass reads it (the export's `Valid` condition is
//! written). Before, every pass (each second) listed every member's exports, imports,
//! Services and EndpointSlices. Requests are counted from the member's
//! `apiserver_request_total`.

mod support;

use std::time::Duration;

use support::fleet::apply;
use support::{Server, TestDir, wait_for};

const WAIT: Duration = Duration::from_secs(60);

/// Requests of `verb` on `resource` the member has served.
fn requests(member: &Server, verb: &str, resource: &str) -> f64 {
    member.counter(
        "apiserver_request_total",
        &[
            &format!("verb=\"{verb}\""),
            &format!("resource=\"{resource}\""),
        ],
    )
}

/// Reads of the kinds a pass lists in a member.
fn pass_lists(member: &Server) -> f64 {
    ["serviceexports", "serviceimports", "endpointslices"]
        .iter()
        .map(|resource| requests(member, "list", resource))
        .sum()
}

#[test]
fn idle_members_are_watched_not_polled() {
    let dir = TestDir::new("mcs-idle");
    let hub = Server::hub_probing_every_second(&dir.path().join("hub"));
    let member = Server::member("idle", &dir.path().join("idle"));
    hub.join("idle", &member);
    wait_for("the exports and imports watched", WAIT, || {
        let watching = requests(&member, "watch", "serviceexports") >= 1.0
            && requests(&member, "watch", "serviceimports") >= 1.0;
        watching.then_some(())
    });

    // Idle for several of the controller's 1 s passes: no more lists (at most one cleaning
    // pass that may have been under way).
    let before = pass_lists(&member);
    std::thread::sleep(Duration::from_secs(6));
    let after = pass_lists(&member);
    assert!(
        after - before <= 3.0,
        "an idle member was listed {} times in 6 s",
        after - before
    );

    // It exports a Service that does not exist: a pass reads it and says so.
    apply(
        &member.kubeconfig,
        "apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata: {name: missing, namespace: default}\n",
    );
    wait_for("Valid False (NoService)", WAIT, || {
        let reason = member.jsonpath(
            "serviceexport",
            "missing",
            "default",
            "{.status.conditions[?(@.type==\"Valid\")].reason}",
        );
        (reason == "NoService").then_some(())
    });
}
