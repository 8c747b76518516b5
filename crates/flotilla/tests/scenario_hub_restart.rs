//! SPEC 7 reliability for application distribution: `kill -9` of the hub in the middle of a
//! rollout; after restart the controller converges with no duplicate revision and no orphaned
//! member object, and deleting the application still cleans everything up.

mod support;

use std::time::Duration;

use support::sturdy::{labelled, sturdy_app};
use support::{Server, TestDir, wait_for};

const WAIT: Duration = Duration::from_secs(90);

fn phase(hub: &Server) -> String {
    hub.jsonpath("app", "sturdy", "default", "{.status.status}")
}

#[test]
fn hub_killed_mid_rollout_converges() {
    let dir = TestDir::new("hub-restart");
    let hub_dir = dir.0.join("hub");
    let mut hub = Server::hub(&hub_dir);
    let members: Vec<Server> = ["m1", "m2"]
        .iter()
        .map(|n| Server::member(n, &dir.0.join(n)))
        .collect();
    for (name, member) in ["m1", "m2"].iter().zip(&members) {
        hub.join(name, member);
    }
    let file = dir.0.join("app.yaml");
    std::fs::write(&file, sturdy_app(2, &["m1", "m2"])).unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    // Kill -9 as soon as the rollout has started somewhere.
    wait_for("the rollout to start", WAIT, || {
        members
            .iter()
            .any(|m| !labelled(m, "deployments").is_empty())
            .then_some(())
    });
    hub.child.kill().unwrap();
    hub.child.wait().unwrap();
    drop(hub);

    let hub = Server::hub(&hub_dir);
    wait_for("running after restart", WAIT, || {
        (phase(&hub) == "running").then_some(())
    });
    for member in &members {
        assert_eq!(labelled(member, "deployments"), ["deployment.apps/sturdy"]);
        assert_eq!(labelled(member, "services"), ["service/sturdy"]);
    }
    let revisions = hub.kubectl_ok(&["get", "apprev", "-n", "default", "-o", "name"]);
    assert_eq!(
        revisions.trim(),
        "applicationrevision.core.oam.dev/sturdy-v1"
    );
    let tracked = hub.kubectl_ok(&[
        "get",
        "rt",
        "sturdy-default",
        "-o",
        "jsonpath={range .spec.managedResources[*]}{.cluster}/{.kind}/{.name} {end}",
    ]);
    assert_eq!(
        tracked.trim(),
        "m1/Deployment/sturdy m1/Service/sturdy m2/Deployment/sturdy m2/Service/sturdy"
    );

    hub.kubectl_ok(&["delete", "app", "sturdy", "-n", "default"]);
    wait_for("members cleaned up", WAIT, || {
        members
            .iter()
            .all(|m| labelled(m, "deployments").is_empty() && labelled(m, "services").is_empty())
            .then_some(())
    });
    assert!(
        !hub.kubectl(&["get", "rt", "sturdy-default"])
            .status
            .success()
    );
}
