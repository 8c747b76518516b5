//! The `sturdy` test application of the crash and takeover tests: one webservice (a
//! Deployment and a Service) in `default`, placed on the named members, and what it left on
//! a member.

use super::{Server, stdout};

/// The Application `default/sturdy` with `replicas` on each of `clusters`.
pub(crate) fn sturdy_app(replicas: u32, clusters: &[&str]) -> String {
    let clusters = clusters
        .iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: sturdy
  namespace: default
spec:
  components:
    - name: sturdy
      type: webservice
      properties:
        image: nginx
        ports:
          - port: 80
            expose: true
      traits:
        - type: scaler
          properties:
            replicas: {replicas}
  policies:
    - type: topology
      name: placement
      properties:
        clusters: [{clusters}]
"#
    )
}

/// The objects of `kind` on `member` labelled as the `sturdy` application's (`-o name`).
pub(crate) fn labelled(member: &Server, kind: &str) -> Vec<String> {
    stdout(&member.kubectl(&[
        "get",
        kind,
        "-A",
        "-l",
        "app.oam.dev/name=sturdy",
        "-o",
        "name",
    ]))
    .lines()
    .map(str::to_string)
    .collect()
}
