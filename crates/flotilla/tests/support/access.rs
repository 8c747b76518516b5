//! Fleets for the unified-access tests: a hub with members joined through impersonate-only
//! credentials, and workloads to read through the cluster gateway.

use super::{Server, TestDir, join_impersonate_only};

/// A hub and members `m1`, `m2`, both joined with impersonate-only ServiceAccount tokens.
pub(crate) fn hub_and_two_members(dir: &TestDir) -> (Server, Server, Server) {
    let hub = Server::hub(&dir.0.join("hub"));
    let m1 = Server::member("m1", &dir.0.join("m1"));
    let m2 = Server::member("m2", &dir.0.join("m2"));
    join_impersonate_only(&hub, "m1", &m1, &dir.0);
    join_impersonate_only(&hub, "m2", &m2, &dir.0);
    (hub, m1, m2)
}

/// Deployment `web-<name>` in `default` on each named member.
pub(crate) fn web_deployments(members: &[(&str, &Server)]) {
    for (name, member) in members {
        member.kubectl_ok(&[
            "create",
            "deployment",
            &format!("web-{name}"),
            "--image=nginx",
            "-n",
            "default",
        ]);
    }
}
