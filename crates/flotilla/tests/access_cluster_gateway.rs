//! The hub's cluster gateway (`/apis/cluster.core.oam.dev/v1alpha1/clustergateways/NAME/proxy`)
//! end to end, with members joined through impersonate-only credentials: discovery lists it;
//! kubectl (`get --raw` and a `--server` pointing at the gateway) and kube-rs (a client, a watch
//! and a reflector) reach the member as the caller; the hub refuses callers without
//! `clustergateways/proxy` on that cluster even where the member would allow them; the member
//! refuses what its own RBAC refuses; the member's audit log names the caller; a caller's own
//! impersonation is authorized on the hub first; unknown, unavailable and malformed targets get
//! clear Status errors. `flotilla get -m/-M` and `kubectl amc` read through it as the user,
//! with no access to the stored credentials.

mod support;

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::{Value, json};
use support::access::{hub_and_two_members, web_deployments};
use support::{
    Server, TestDir, flotilla, install_amc_plugin, kubectl, kubectl_amc, stderr, stdout,
    user_kubeconfig,
};

const GW: &str = "/apis/cluster.core.oam.dev/v1alpha1/clustergateways";

fn apply(server: &Server, dir: &Path, name: &str, yaml: &str) {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    server.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
}

/// vic may use the gateway to m1 and m2; nobody else has any gateway right.
const HUB_RBAC: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: gateway-m1-m2}
rules:
- apiGroups: [cluster.core.oam.dev]
  resources: [clustergateways/proxy]
  resourceNames: [m1, m2]
  verbs: ["*"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: vic-gateway}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: gateway-m1-m2}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: vic}
"#;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

/// The Status a failed kube-rs request carried.
fn status_of<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message),
        other => panic!("expected a Status error, got {other:?}"),
    }
}

#[test]
fn gateway_forwards_as_the_caller() {
    let dir = TestDir::new("access-gateway");
    let (hub, m1, m2) = hub_and_two_members(&dir);

    // Discovery lists the resource and its proxy subresource.
    let resources = hub.kubectl_ok(&["api-resources", "--api-group=cluster.core.oam.dev"]);
    assert!(resources.contains("clustergateways"), "{resources}");
    let group = hub.kubectl_ok(&["get", "--raw", "/apis/cluster.core.oam.dev/v1alpha1"]);
    assert!(group.contains("\"clustergateways/proxy\""), "{group}");

    apply(&hub, &dir.0, "hub-rbac", HUB_RBAC);
    m1.kubectl_ok(&[
        "create",
        "rolebinding",
        "vic-edit",
        "--clusterrole=edit",
        "--user=vic",
        "-n",
        "default",
    ]);
    m1.kubectl_ok(&[
        "create",
        "rolebinding",
        "eve-view",
        "--clusterrole=view",
        "--user=eve",
        "-n",
        "default",
    ]);
    m1.kubectl_ok(&[
        "create",
        "configmap",
        "seed",
        "-n",
        "default",
        "--from-literal=a=b",
    ]);
    let vic = user_kubeconfig(&hub, "vic", &[]);
    let eve = user_kubeconfig(&hub, "eve", &[]);
    let m1_cms = format!("{GW}/m1/proxy/api/v1/namespaces/default/configmaps");
    let m2_cms = format!("{GW}/m2/proxy/api/v1/namespaces/default/configmaps");

    // vic reads m1 through the gateway; m2's own RBAC refuses vic.
    let out = kubectl(&vic, &["get", "--raw", &m1_cms]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("\"seed\""), "{}", stdout(&out));
    let out = kubectl(&vic, &["get", "--raw", &m2_cms]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"configmaps is forbidden: User "vic" cannot list resource "configmaps" in API group "" in the namespace "default""#),
        "{}",
        stderr(&out)
    );

    // eve may read m1's default namespace on the member, but the hub gives her no gateway.
    let out = kubectl(&eve, &["get", "--raw", &m1_cms]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"User "eve" cannot get resource "clustergateways/proxy" in API group "cluster.core.oam.dev""#),
        "{}",
        stderr(&out)
    );

    // kubectl pointed at the gateway behaves as against the member (discovery, Tables, create).
    let server = format!("{}{GW}/m1/proxy", hub.url());
    let out = kubectl(
        &vic,
        &["--server", &server, "get", "configmaps", "-n", "default"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("seed"), "{}", stdout(&out));
    let out = kubectl(
        &vic,
        &[
            "--server",
            &server,
            "create",
            "configmap",
            "from-vic",
            "-n",
            "default",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(m1.exists("configmap", "from-vic", "default"));

    // m1's audit log: the hub's ServiceAccount acted, impersonating vic.
    let audit = std::fs::read_to_string(m1.data_dir.join("audit.log")).unwrap();
    let created: Value = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["verb"] == "create" && e["objectRef"]["name"] == "from-vic")
        .unwrap_or_else(|| panic!("no audit event for the create:\n{audit}"));
    assert_eq!(created["impersonatedUser"]["username"], "vic", "{created}");
    assert_eq!(
        created["user"]["username"], "system:serviceaccount:vela-system:flotilla-hub",
        "{created}"
    );

    // A caller's own Impersonate-* headers are authorized on the hub first...
    let out = kubectl(
        &vic,
        &[
            "get",
            "--raw",
            &m1_cms,
            "--as=admin",
            "--as-group=system:masters",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"User "vic" cannot impersonate resource "users""#),
        "{}",
        stderr(&out)
    );
    // ...and then the impersonated identity is what the member sees.
    let out = hub.kubectl(&["get", "--raw", &m2_cms, "--as=vic"]);
    assert!(
        stderr(&out).contains(r#"User "vic" cannot list resource "configmaps""#),
        "{}",
        stderr(&out)
    );
    let out = hub.kubectl(&["get", "--raw", &m1_cms, "--as=vic"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Unknown cluster: 404 Status.
    let out = hub.kubectl(&[
        "get",
        "--raw",
        &format!("{GW}/nope/proxy/api/v1/namespaces"),
    ]);
    assert!(
        stderr(&out).contains(
            r#"Error from server (NotFound): clustergateways.cluster.core.oam.dev "nope" not found"#
        ),
        "{}",
        stderr(&out)
    );

    kube_rs_through_the_gateway(&hub, &m1, &vic);

    // An unavailable member: 503 Status.
    drop(m2);
    let out = hub.kubectl(&["get", "--raw", &format!("{GW}/m2/proxy/version")]);
    assert!(
        stderr(&out).contains("Error from server (ServiceUnavailable)")
            && stderr(&out).contains(r#"cluster "m2" is unavailable"#),
        "{}",
        stderr(&out)
    );
}

/// A kube-rs client whose cluster_url is the gateway: list, watch and reflector; then bad
/// input sent raw.
fn kube_rs_through_the_gateway(hub: &Server, m1: &Server, vic: &Path) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(vic).unwrap();
        let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let hub_url = config.cluster_url.to_string();
        config.cluster_url = format!("{}{GW}/m1/proxy", hub_url.trim_end_matches('/'))
            .parse()
            .unwrap();
        let vic_client = kube::Client::try_from(config).unwrap();
        let vic_cms: Api<ConfigMap> = Api::namespaced(vic_client.clone(), "default");
        let names: Vec<String> = vic_cms
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        assert!(names.contains(&"seed".to_string()), "{names:?}");

        // A reflector and a raw watch through the gateway see a ConfigMap made on the member.
        let (store, writer) = reflector::store();
        let reflect = reflector::reflector(writer, watcher(vic_cms.clone(), Default::default()))
            .applied_objects()
            .for_each(|_| futures::future::ready(()));
        let reflect = tokio::spawn(reflect);
        store.wait_until_ready().await.unwrap();
        let mut events = vic_cms
            .watch(&Default::default(), "0")
            .await
            .unwrap()
            .boxed();
        let m1_admin: Api<ConfigMap> = Api::namespaced(m1.kube_client().await, "default");
        m1_admin
            .create(&PostParams::default(), &cm("made-on-m1"))
            .await
            .unwrap();
        let seen = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(event) = events.next().await {
                if let Ok(kube::api::WatchEvent::Added(c)) = event
                    && c.metadata.name.as_deref() == Some("made-on-m1")
                {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(
            seen.ok(),
            Some(true),
            "the watch delivered the member's event"
        );
        let in_store = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if store
                    .state()
                    .iter()
                    .any(|c| c.metadata.name.as_deref() == Some("made-on-m1"))
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        assert!(in_store.is_ok(), "the reflector saw the member's ConfigMap");
        reflect.abort();

        // Bad input, as the hub's administrator (so only the gateway's own checks refuse it).
        let admin = hub.kube_client().await;
        for (path, wanted) in [
            (
                format!("{GW}/m1/proxy/../../m2/proxy/api/v1/namespaces/default/configmaps"),
                "invalid proxy path",
            ),
            (
                format!("{GW}/m1/proxy/api/%2e%2e/%2E%2E/apis"),
                "invalid proxy path",
            ),
            (
                format!("{GW}/m1/proxy/api%2Fv1/namespaces"),
                "invalid proxy path",
            ),
            (
                format!("{GW}/a%2Fb/proxy/api/v1/namespaces"),
                "invalid cluster name",
            ),
        ] {
            let request = http::Request::get(&path).body(Vec::new()).unwrap();
            let (code, message) = status_of(admin.request_text(request).await);
            assert_eq!(code, 400, "{path}: {message}");
            assert!(message.contains(wanted), "{path}: {message}");
        }
        // A caller's impersonation header, sent raw, is refused by the hub's RBAC.
        let request = http::Request::get(format!(
            "{GW}/m1/proxy/api/v1/namespaces/default/configmaps"
        ))
        .header("Impersonate-User", "system:admin")
        .body(Vec::new())
        .unwrap();
        let hub_vic = {
            let kc = kube::config::Kubeconfig::read_from(vic).unwrap();
            let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .unwrap();
            kube::Client::try_from(config).unwrap()
        };
        let (code, message) = status_of(hub_vic.request_text(request).await);
        assert_eq!(code, 403, "{message}");
        assert!(
            message.contains(r#"User "vic" cannot impersonate"#),
            "{message}"
        );
    });
}

/// vic may read the hub (`view`) and use the gateway to m1 only; both members would let vic
/// read everything.
const READONLY_M1: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: gateway-m1-read}
rules:
- apiGroups: [cluster.core.oam.dev]
  resources: [clustergateways/proxy]
  resourceNames: [m1]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: vic-gateway-m1}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: gateway-m1-read}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: vic}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: vic-view}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: vic}
"#;

#[test]
fn cli_reads_members_through_the_gateway() {
    let dir = TestDir::new("access-gateway-cli");
    let (hub, m1, m2) = hub_and_two_members(&dir);
    apply(&hub, &dir.0, "readonly-m1", READONLY_M1);
    for member in [&m1, &m2] {
        member.kubectl_ok(&[
            "create",
            "clusterrolebinding",
            "vic-view",
            "--clusterrole=view",
            "--user=vic",
        ]);
    }
    web_deployments(&[("m1", &m1), ("m2", &m2)]);
    let vic = user_kubeconfig(&hub, "vic", &[]);
    let out = kubectl(
        &vic,
        &["auth", "can-i", "list", "secrets", "-n", "vela-system"],
    );
    assert_eq!(
        stdout(&out).trim(),
        "no",
        "vic cannot read the stored credentials"
    );

    let out = flotilla(&vic, &["get", "deployments", "-M", "-n", "default"]);
    let (text, errors) = (stdout(&out), stderr(&out));
    assert!(
        text.contains("m1") && text.contains("web-m1"),
        "{text}\n{errors}"
    );
    assert!(!text.contains("web-m2"), "{text}");
    assert!(
        errors.contains(r#"Error from server (Forbidden): clustergateways.cluster.core.oam.dev "m2" is forbidden: User "vic" cannot get resource "clustergateways/proxy""#)
            && errors.contains("(cluster m2)"),
        "{errors}"
    );

    let out = flotilla(
        &vic,
        &["get", "deployment", "web-m1", "-n", "default", "-m", "m1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("web-m1"), "{}", stdout(&out));

    let bin_dir = dir.0.join("bin");
    install_amc_plugin(&bin_dir);
    let out = kubectl_amc(
        &bin_dir,
        &vic,
        &["get", "deployments", "-n", "default", "-m", "m1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("web-m1"), "{}", stdout(&out));
    let out = kubectl_amc(
        &bin_dir,
        &vic,
        &["get", "deployments", "-n", "default", "-m", "m2"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"User "vic" cannot get resource "clustergateways/proxy""#),
        "{}",
        stderr(&out)
    );
}
