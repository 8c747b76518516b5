//! Every supported kubectl (1.27 … 1.33), with no extra flags, against one hub: version,
//! discovery, namespaces, client-side apply (create → unchanged → configured with a removed
//! env entry really removed), tables, YAML, label/annotate/scale, the three patch types,
//! server-side apply with a conflict, and `get all`.

mod support;

use std::path::Path;

use support::{Server, kubectl_versions, kubectl_with, stderr, stdout, table_header, temp_dir};

fn deployment(ns: &str, env: &[(&str, &str)], image: &str) -> String {
    let env: String = env
        .iter()
        .map(|(k, v)| format!("        - name: {k}\n          value: \"{v}\"\n"))
        .collect();
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: {ns}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: app}}
  template:
    metadata:
      labels: {{app: app}}
    spec:
      containers:
      - name: app
        image: {image}
        env:
{env}---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {ns}
data:
  mode: fast
"
    )
}

struct Kubectl<'a> {
    bin: &'a Path,
    kubeconfig: &'a Path,
    version: &'a str,
}

impl Kubectl<'_> {
    fn run(&self, args: &[&str]) -> std::process::Output {
        kubectl_with(self.bin, self.kubeconfig, args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {} {args:?} failed: {}",
            self.version,
            stderr(&out)
        );
        stdout(&out)
    }

    fn jsonpath(&self, ns: &str, what: &str, path: &str) -> String {
        self.ok(&["-n", ns, "get", what, "-o", &format!("jsonpath={path}")])
    }
}

#[test]
fn every_kubectl_version_drives_the_hub() {
    let dir = temp_dir("hub-kubectl");
    let hub = Server::hub(&dir);
    let versions = kubectl_versions();
    assert!(!versions.is_empty(), "no kubectl.1.NN binaries found");
    for (version, bin) in &versions {
        let k = Kubectl {
            bin,
            kubeconfig: &hub.kubeconfig,
            version,
        };
        let ns = format!("k{}", version.replace('.', ""));

        let v = k.ok(&["version"]);
        assert!(
            v.contains("Server Version") && v.contains("v1.33.0-flotilla"),
            "{version}: {v}"
        );

        let resources = k.ok(&["api-resources"]);
        let deploy = resources
            .lines()
            .find(|l| l.starts_with("deployments "))
            .unwrap_or_else(|| panic!("{version}: no deployments in api-resources:\n{resources}"));
        assert!(
            deploy.contains("deploy")
                && deploy.contains("apps/v1")
                && deploy.contains("Deployment")
        );
        assert!(resources.contains("customresourcedefinitions"), "{version}");

        assert_eq!(
            k.ok(&["create", "namespace", &ns]).trim(),
            format!("namespace/{ns} created")
        );

        // Client-side apply: created, unchanged, configured with env B really removed.
        let file = dir.join(format!("{ns}.yaml"));
        std::fs::write(
            &file,
            deployment(&ns, &[("A", "1"), ("B", "2")], "nginx:1.25"),
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let out = k.ok(&["apply", "-f", f]);
        assert!(
            out.contains("deployment.apps/app created")
                && out.contains("configmap/settings created"),
            "{version}: {out}"
        );
        let out = k.ok(&["apply", "-f", f]);
        assert!(
            out.contains("deployment.apps/app unchanged")
                && out.contains("configmap/settings unchanged"),
            "{version}: {out}"
        );
        std::fs::write(&file, deployment(&ns, &[("A", "1")], "nginx:1.25")).unwrap();
        let out = k.ok(&["apply", "-f", f]);
        assert!(
            out.contains("deployment.apps/app configured"),
            "{version}: {out}"
        );
        let env = k.jsonpath(
            &ns,
            "deployment/app",
            "{.spec.template.spec.containers[0].env[*].name}",
        );
        assert_eq!(env, "A", "{version}: env after removing B");

        // Tables with the real columns.
        let table = k.ok(&["-n", &ns, "get", "deployments"]);
        let header = table_header(&table);
        assert_eq!(
            header,
            ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            "{version}: {table}"
        );
        let row: Vec<&str> = table
            .lines()
            .nth(1)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        assert_eq!(&row[..4], ["app", "0/1", "0", "0"], "{version}: {table}");
        let cm = k.ok(&["-n", &ns, "get", "configmap", "settings"]);
        assert!(
            cm.starts_with("NAME") && cm.contains("DATA") && cm.contains("settings   1"),
            "{version}: {cm}"
        );
        let yaml = k.ok(&["-n", &ns, "get", "deployment", "app", "-o", "yaml"]);
        assert!(
            yaml.contains("kind: Deployment")
                && yaml.contains("image: nginx:1.25")
                && yaml.contains("resourceVersion:"),
            "{version}"
        );

        // label, annotate, scale, three patch types.
        assert!(
            k.ok(&["-n", &ns, "label", "deployment", "app", "tier=web"])
                .contains("labeled")
        );
        assert!(
            k.ok(&["-n", &ns, "annotate", "deployment", "app", "note=hello"])
                .contains("deployment.apps/app annotate")
        );
        assert_eq!(
            k.jsonpath(
                &ns,
                "deployment/app",
                "{.metadata.labels.tier}/{.metadata.annotations.note}"
            ),
            "web/hello"
        );
        assert!(
            k.ok(&["-n", &ns, "scale", "deployment", "app", "--replicas=3"])
                .contains("scaled")
        );
        assert_eq!(
            k.jsonpath(&ns, "deployment/app", "{.spec.replicas}"),
            "3",
            "{version}: scale"
        );
        k.ok(&[
            "-n",
            &ns,
            "patch",
            "deployment",
            "app",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":4}}"#,
        ]);
        assert_eq!(k.jsonpath(&ns, "deployment/app", "{.spec.replicas}"), "4");
        k.ok(&[
            "-n",
            &ns,
            "patch",
            "deployment",
            "app",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":5}]"#,
        ]);
        assert_eq!(k.jsonpath(&ns, "deployment/app", "{.spec.replicas}"), "5");
        k.ok(&["-n", &ns, "patch", "deployment", "app", "--type", "strategic", "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"C","value":"3"}]}]}}}}"#]);
        assert_eq!(
            k.jsonpath(
                &ns,
                "deployment/app",
                "{.spec.template.spec.containers[0].env[*].name}"
            ),
            "C A",
            "{version}: strategic merge keeps A and adds C by name"
        );

        // Server-side apply, then a conflict with another field manager.
        let ssa = dir.join(format!("{ns}-ssa.yaml"));
        std::fs::write(&ssa, format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\n  namespace: {ns}\ndata:\n  k: one\n")).unwrap();
        let s = ssa.to_str().unwrap();
        assert!(
            k.ok(&["apply", "--server-side", "-f", s])
                .contains("configmap/owned serverside-applied")
        );
        std::fs::write(&ssa, format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\n  namespace: {ns}\ndata:\n  k: two\n")).unwrap();
        let out = k.run(&[
            "apply",
            "--server-side",
            "--field-manager=intruder",
            "-f",
            s,
        ]);
        assert!(
            !out.status.success(),
            "{version}: conflicting apply succeeded"
        );
        let err = stderr(&out);
        assert!(
            err.contains("Apply failed with 1 conflict: conflict with \"kubectl\"")
                && err.contains(".data.k"),
            "{version}: {err}"
        );
        k.ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=intruder",
            "-f",
            s,
        ]);
        assert_eq!(k.jsonpath(&ns, "configmap/owned", "{.data.k}"), "two");

        // get all uses the "all" category.
        let all = k.ok(&["-n", &ns, "get", "all"]);
        assert!(all.contains("deployment.apps/app"), "{version}: {all}");
    }
    drop(hub);
    let _ = std::fs::remove_dir_all(&dir);
}
