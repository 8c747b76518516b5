//! A small fleet for traffic tests: a hub, members in their own processes, an echo workload
//! (a Service and a simulated Deployment whose Pods the service proxy answers for),
//! the `flotilla gateway` process, and an HTTP client.

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Server, flotilla_bin, stderr, wait_for};

/// `kubectl apply -f -` of `yaml` against `kubeconfig`.
pub(crate) fn apply(kubeconfig: &Path, yaml: &str) {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["apply", "-f", "-"])
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(yaml.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "kubectl apply: {}", stderr(&out));
}

/// An echo workload of the member simulator: Deployment `name` (`replicas` Pods labelled
/// `app: name`, ready 100 ms after start) and Service `name` (port `http` 80 → 8080).
pub(crate) fn echo_workload(member: &Server, namespace: &str, name: &str, replicas: usize) {
    let yaml = format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: {namespace}}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
  annotations: {{sim.flotilla.io/ready-delay: 100ms}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: echo, image: echo:1}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
"#
    );
    apply(&member.kubeconfig, &yaml);
}

/// (name, IP) of the Ready Pods labelled `app: name`, sorted by name.
pub(crate) fn ready_pods(member: &Server, namespace: &str, name: &str) -> Vec<(String, String)> {
    let out = member.kubectl_ok(&[
        "get",
        "pods",
        "-n",
        namespace,
        "-l",
        &format!("app={name}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.status.podIP}={.status.conditions[?(@.type==\"Ready\")].status};{end}",
    ]);
    let mut pods: Vec<(String, String)> = out
        .split(';')
        .filter_map(|p| {
            let mut f = p.split('=');
            let (pod, ip, ready) = (f.next()?, f.next()?, f.next()?);
            (ready == "True" && !ip.is_empty()).then(|| (pod.to_string(), ip.to_string()))
        })
        .collect();
    pods.sort();
    pods
}

/// Waits until exactly `n` Pods of the workload are Ready; returns them.
pub(crate) fn wait_ready_pods(
    member: &Server,
    namespace: &str,
    name: &str,
    n: usize,
) -> Vec<(String, String)> {
    wait_for(
        &format!("{n} ready pods of {name}"),
        Duration::from_secs(60),
        || {
            let pods = ready_pods(member, namespace, name);
            (pods.len() == n).then_some(pods)
        },
    )
}

/// A running `flotilla gateway`, killed on drop.
pub(crate) struct Gateway {
    pub child: Child,
    /// `127.0.0.1:PORT`
    pub address: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    /// Starts `flotilla gateway --kubeconfig HUB --listen 127.0.0.1:0` and reads its address.
    pub(crate) fn start(hub: &Server) -> Gateway {
        let log = hub.data_dir.join("gateway.log");
        let child = Command::new(flotilla_bin())
            .arg("gateway")
            .arg("--kubeconfig")
            .arg(&hub.kubeconfig)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .expect("spawn flotilla gateway");
        let address = wait_for("the gateway's address", Duration::from_secs(30), || {
            std::fs::read_to_string(&log).ok()?.lines().find_map(|l| {
                l.split("serving at http://")
                    .nth(1)
                    .map(|a| a.trim().to_string())
            })
        });
        Gateway { child, address }
    }
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// The `cluster` field of the echo body.
    pub(crate) fn cluster(&self) -> Option<String> {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()?
            .get("cluster")?
            .as_str()
            .map(str::to_string)
    }
}

/// An HTTP/1.1 client with pooled connections.
#[derive(Clone)]
pub(crate) struct Http {
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
}

impl Http {
    pub(crate) fn new() -> Http {
        Http {
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build_http(),
        }
    }

    /// GET `http://{address}{path}` with `Host: {host}`; `Err` when no answer came.
    pub(crate) async fn get(
        &self,
        address: &str,
        host: &str,
        path: &str,
    ) -> Result<Answer, String> {
        use http_body_util::BodyExt as _;
        let request = http::Request::get(format!("http://{address}{path}"))
            .header("host", host)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}
