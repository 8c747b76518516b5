//! `flotilla cluster detach` of an unreachable member that runs an application: returns at
//! once and the hub forgets what it tracked there.

mod support;

use std::time::Duration;

use support::{Server, TestDir, flotilla, stderr, wait_for};

const APP: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: tracked
  namespace: default
spec:
  components:
  - name: tracked
    type: webservice
    properties:
      image: nginx
  policies:
  - name: both
    type: topology
    properties:
      clusters: ["gone", "stays"]
"#;

fn tracked_clusters(hub: &Server) -> String {
    hub.kubectl_ok(&[
        "get",
        "resourcetrackers",
        "-o",
        "jsonpath={.items[*].spec.managedResources[*].cluster}",
    ])
}

#[test]
fn detach_releases_tracked_resources_of_an_unreachable_member() {
    let dir = TestDir::new("cluster-detach");
    let hub = Server::hub(&dir.path().join("hub"));
    let gone = Server::member("gone", &dir.path().join("gone"));
    let stays = Server::member("stays", &dir.path().join("stays"));
    for (name, member) in [("gone", &gone), ("stays", &stays)] {
        hub.join(name, member);
    }
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, APP).unwrap();
    let out = flotilla(&hub.kubeconfig, &["up", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for(
        "objects tracked in both clusters",
        Duration::from_secs(60),
        || {
            let clusters = tracked_clusters(&hub);
            (clusters.contains("gone") && clusters.contains("stays")).then_some(())
        },
    );

    drop(gone);
    let out = flotilla(&hub.kubeconfig, &["cluster", "detach", "gone"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let clusters = tracked_clusters(&hub);
    assert!(!clusters.contains("gone"), "still tracked: {clusters}");
    assert!(clusters.contains("stays"), "{clusters}");
    assert!(
        !hub.kubectl(&["get", "managedcluster", "gone"])
            .status
            .success()
    );
    assert!(
        stays
            .kubectl(&["get", "deployment", "tracked"])
            .status
            .success()
    );
}
