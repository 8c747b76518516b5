//! Live behaviour with every kubectl 1.27 … 1.33: `get -w` sees a change as it happens,
//! `delete` waits for a finalizer, a CRD serves its kind with printer columns at once (and
//! takes its objects with it when deleted), and deleting a namespace empties it.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::{Server, kubectl_versions, kubectl_with, stdout, table_header, temp_dir, wait_for};

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer}
              color: {type: string}
";

#[test]
fn watch_finalizers_crds_and_namespaces_with_every_kubectl() {
    let dir = temp_dir("hub-kubectl-live");
    let hub = Server::hub(&dir);
    let crd = dir.join("crd.yaml");
    std::fs::write(&crd, CRD).unwrap();
    for (version, bin) in kubectl_versions() {
        let k = |args: &[&str]| {
            let out = kubectl_with(&bin, &hub.kubeconfig, args);
            assert!(
                out.status.success(),
                "{version}: kubectl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            stdout(&out)
        };
        let ns = format!("live{}", version.replace('.', ""));
        k(&["create", "namespace", &ns]);

        // get -w sees a change made after it started.
        k(&["-n", &ns, "create", "configmap", "watched"]);
        let mut child = Command::new(&bin)
            .arg("--kubeconfig")
            .arg(&hub.kubeconfig)
            .args(["-n", &ns, "get", "configmap", "-w", "--output-watch-events"])
            .env_remove("KUBECONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("initial watch event");
        assert!(
            first.contains("EVENT") && first.contains("NAME"),
            "{version}: {first}"
        );
        let added = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("initial watch event");
        assert!(
            added.contains("ADDED") && added.contains("watched"),
            "{version}: {added}"
        );
        k(&["-n", &ns, "label", "configmap", "watched", "seen=yes"]);
        let next = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("live watch event");
        assert!(
            next.contains("MODIFIED") && next.contains("watched"),
            "{version}: {next}"
        );
        let _ = child.kill();
        let _ = child.wait();

        // delete waits for a finalizer, then the object goes.
        k(&["-n", &ns, "create", "configmap", "held"]);
        k(&[
            "-n",
            &ns,
            "patch",
            "configmap",
            "held",
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
        ]);
        let out = kubectl_with(
            &bin,
            &hub.kubeconfig,
            &["-n", &ns, "delete", "configmap", "held", "--timeout=2s"],
        );
        assert!(
            !out.status.success(),
            "{version}: delete returned before the finalizer was removed"
        );
        let ts = k(&[
            "-n",
            &ns,
            "get",
            "configmap",
            "held",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ]);
        assert!(!ts.is_empty(), "{version}: no deletionTimestamp");
        k(&[
            "-n",
            &ns,
            "patch",
            "configmap",
            "held",
            "--type",
            "json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ]);
        let out = kubectl_with(
            &bin,
            &hub.kubeconfig,
            &["-n", &ns, "get", "configmap", "held"],
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("configmaps \"held\" not found"),
            "{version}"
        );

        // A CRD is served at once, with its printer columns; deleting it removes its objects.
        k(&["apply", "-f", crd.to_str().unwrap()]);
        let widget = dir.join(format!("{ns}-widget.yaml"));
        std::fs::write(&widget, format!("apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\n  namespace: {ns}\nspec:\n  size: 3\n  color: red\n")).unwrap();
        k(&["apply", "-f", widget.to_str().unwrap()]);
        let table = k(&["-n", &ns, "get", "widgets"]);
        let header = table_header(&table);
        assert_eq!(
            header,
            ["NAME", "SIZE", "COLOR", "AGE"],
            "{version}: {table}"
        );
        let row: Vec<&str> = table
            .lines()
            .nth(1)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        assert_eq!(&row[..3], ["w1", "3", "red"], "{version}: {table}");
        assert!(k(&["-n", &ns, "get", "wd", "w1", "-o", "yaml"]).contains("size: 3"));
        k(&["delete", "crd", "widgets.example.com"]);
        wait_for("the CRD to go", Duration::from_secs(20), || {
            let out = kubectl_with(
                &bin,
                &hub.kubeconfig,
                &["get", "crd", "widgets.example.com"],
            );
            (!out.status.success()).then_some(())
        });
        k(&["apply", "-f", crd.to_str().unwrap()]);
        let again = k(&["-n", &ns, "get", "widgets", "-o", "name"]);
        assert_eq!(again.trim(), "", "{version}: objects survived their CRD");
        k(&["delete", "crd", "widgets.example.com"]);

        // Deleting a namespace deletes its contents, then the namespace.
        k(&["delete", "namespace", &ns]);
        let out = kubectl_with(&bin, &hub.kubeconfig, &["get", "namespace", &ns]);
        assert!(!out.status.success(), "{version}: namespace still there");
        let left = k(&[
            "get",
            "configmaps",
            "-A",
            "-o",
            "name",
            "--field-selector",
            &format!("metadata.namespace={ns}"),
        ]);
        assert_eq!(left.trim(), "", "{version}: namespace contents survived");
    }
    drop(hub);
    let _ = std::fs::remove_dir_all(&dir);
}
