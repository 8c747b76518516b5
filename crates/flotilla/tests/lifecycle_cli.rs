//! Issue 10, item 6: `flotilla dry-run -f FILE | NAME` (every cluster's objects, overrides
//! applied, nothing written), `flotilla diff -f FILE` (kubectl diff's exit codes; members read
//! through the hub's cluster gateway as the user) and `flotilla status --tree`, with real
//! members.

mod support;

use std::time::Duration;

use support::{Server, TestDir, flotilla, stderr, stdout, wait_for};

const WAIT: Duration = Duration::from_secs(40);

fn app(image: &str, with_cfg: bool) -> String {
    let cfg = if with_cfg {
        "    - name: cfg\n      type: k8s-objects\n      properties:\n        objects: [{apiVersion: v1, kind: ConfigMap, data: {k: v}}]\n"
    } else {
        ""
    };
    format!(
        r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: preview
  namespace: default
spec:
  components:
    - name: web
      type: webservice
      properties: {{image: nginx:1.25}}
{cfg}  policies:
    - type: topology
      properties: {{clusters: ["m1", "m2"]}}
    - type: override
      properties:
        components: [{{name: web, properties: {{image: "{image}"}}}}]
"#
    )
}

#[test]
fn dry_run_diff_and_tree() {
    let dir = TestDir::new("lifecycle-cli");
    let hub = Server::hub(&dir.0.join("hub"));
    let m1 = Server::member("m1", &dir.0.join("m1"));
    let m2 = Server::member("m2", &dir.0.join("m2"));
    hub.join("m1", &m1);
    hub.join("m2", &m2);
    let file = dir.0.join("app.yaml");
    let path = file.to_str().unwrap();
    std::fs::write(&file, app("nginx:1.26", true)).unwrap();
    let kc = &hub.kubeconfig;

    // dry-run: both clusters, the override applied, nothing written.
    let out = flotilla(kc, &["dry-run", "-f", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    let yaml = stdout(&out);
    let m2_at = yaml.find("# cluster: m2\n").expect("m2 section");
    assert!(yaml.starts_with("# cluster: m1\n---\n"), "{yaml}");
    for section in [&yaml[..m2_at], &yaml[m2_at..]] {
        assert!(section.contains("kind: Deployment"), "{section}");
        assert!(section.contains("image: nginx:1.26"), "{section}");
        assert!(section.contains("kind: ConfigMap"), "{section}");
    }
    assert!(!hub.exists("app", "preview", "default"));
    assert!(!m1.exists("deployment", "web", "default"));

    // diff before anything is applied: everything is created.
    let out = flotilla(kc, &["diff", "-f", path]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("# cluster: m1\n+ Deployment default/web (created)"),
        "{text}"
    );

    // Applied and running: no difference, exit 0.
    hub.kubectl_ok(&["apply", "-f", path]);
    wait_for("the application runs", WAIT, || {
        (hub.jsonpath("app", "preview", "default", "{.status.status}") == "running").then_some(())
    });
    let out = flotilla(kc, &["diff", "-f", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");

    // A new image and a dropped component.
    std::fs::write(&file, app("nginx:1.27", false)).unwrap();
    let out = flotilla(kc, &["diff", "-f", path]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("~ Deployment default/web\n"), "{text}");
    assert!(text.contains("-         image: nginx:1.26"), "{text}");
    assert!(text.contains("+         image: nginx:1.27"), "{text}");
    assert!(text.contains("- ConfigMap default/cfg (deleted)"), "{text}");

    // An application that does not render is an error: exit 2.
    std::fs::write(
        &file,
        app("nginx:1.27", false).replace("webservice", "no-such-type"),
    )
    .unwrap();
    let out = flotilla(kc, &["diff", "-f", path]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("no-such-type"), "{}", stderr(&out));

    // dry-run of the stored application; status --tree with each object's health.
    let out = flotilla(kc, &["dry-run", "preview"]);
    assert!(
        stdout(&out).contains("image: nginx:1.26"),
        "{}",
        stderr(&out)
    );
    let out = flotilla(kc, &["status", "preview", "--tree"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let tree = stdout(&out);
    let m2_at = tree.find("  m2\n").expect("m2 in the tree");
    let m1_part = &tree[tree.find("  m1\n").expect("m1 in the tree")..m2_at];
    assert!(
        m1_part.contains("Deployment default/web  healthy Ready:1/1"),
        "{tree}"
    );
    assert!(m1_part.contains("ConfigMap default/cfg  healthy"), "{tree}");
}
