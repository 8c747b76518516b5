//! CertificateSigningRequests, the standard way to hand a user a credential: a key and a
//! request made here (rcgen), `kubectl create`, `kubectl certificate approve|deny` (1.27 and
//! 1.33), the issued certificate signed by the cluster CA and accepted by the hub
//! (`kubectl auth whoami` shows its CN and O); kube-rs creates, lists and approves too.

mod support;

use std::path::{Path, PathBuf};

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{Server, kubectl_dir, kubectl_with, stderr, stdout, temp_dir, wait_for};

/// A fresh key (PEM) and a PEM certificate request for `user` in `group`.
fn key_and_request(user: &str, group: &str) -> (String, String) {
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, user);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, group);
    let key = rcgen::KeyPair::generate().unwrap();
    let request = params.serialize_request(&key).unwrap().pem().unwrap();
    (key.serialize_pem(), request)
}

fn csr_object(name: &str, request_pem: &str) -> serde_json::Value {
    json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64_encode(request_pem.as_bytes()),
            "signerName": "kubernetes.io/kube-apiserver-client",
            "expirationSeconds": 86400,
            "usages": ["client auth"],
        },
    })
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A kubeconfig for the hub's URL and CA that authenticates with `cert` and `key` files.
fn cert_kubeconfig(hub: &Server, dir: &Path, name: &str, cert: &[u8], key: &str) -> PathBuf {
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let admin = std::fs::read_to_string(&hub.kubeconfig).unwrap();
    let ca = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data:"))
        .unwrap()
        .trim()
        .to_string();
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: hub\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: {name}\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: hub\n  context:\n    cluster: hub\n    user: {name}\ncurrent-context: hub\n",
            hub.url(),
            cert_path.display(),
            key_path.display()
        ),
    )
    .unwrap();
    path
}

async fn issued_certificate(api: &Api<CertificateSigningRequest>, name: &str) -> Vec<u8> {
    for _ in 0..100 {
        let csr = api.get(name).await.unwrap();
        if let Some(cert) = csr.status.and_then(|s| s.certificate) {
            return cert.0;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no certificate was issued for {name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_requests_yield_certificates_that_authenticate() {
    let dir = temp_dir("hub-csr");
    let hub = Server::hub(&dir);
    let client = hub.kube_client().await;
    let api: Api<CertificateSigningRequest> = Api::all(client);

    for version in ["1.27", "1.33"] {
        let bin = kubectl_dir().join(format!("kubectl.{version}"));
        let run = |args: &[&str]| kubectl_with(&bin, &hub.kubeconfig, args);
        let user = format!("jane-{}", version.replace('.', ""));
        let (key, request) = key_and_request(&user, "devs");
        let file = dir.join(format!("{user}.json"));
        std::fs::write(&file, csr_object(&user, &request).to_string()).unwrap();
        let out = run(&["create", "-f", file.to_str().unwrap()]);
        assert!(out.status.success(), "{version} create: {}", stderr(&out));
        let table = stdout(&run(&["get", "csr", &user]));
        assert!(
            table.contains("Pending")
                && table.contains("kubernetes.io/kube-apiserver-client")
                && table.contains("24h"),
            "{version}: {table}"
        );

        let out = run(&["certificate", "approve", &user]);
        assert!(out.status.success(), "{version} approve: {}", stderr(&out));
        assert!(stdout(&out).contains("approved"), "{}", stdout(&out));
        let table = stdout(&run(&["get", "csr", &user]));
        assert!(table.contains("Approved,Issued"), "{version}: {table}");

        let cert = issued_certificate(&api, &user).await;
        let kubeconfig = cert_kubeconfig(&hub, &dir, &user, &cert, &key);
        let out = kubectl_with(&bin, &kubeconfig, &["auth", "whoami"]);
        assert!(out.status.success(), "{version} whoami: {}", stderr(&out));
        let whoami = stdout(&out);
        assert!(
            whoami.contains(&user) && whoami.contains("devs"),
            "{version}: {whoami}"
        );

        // A denied request gets no certificate, and a denial cannot be turned around.
        let denied = format!("{user}-denied");
        let file = dir.join(format!("{denied}.json"));
        std::fs::write(&file, csr_object(&denied, &request).to_string()).unwrap();
        assert!(
            run(&["create", "-f", file.to_str().unwrap()])
                .status
                .success()
        );
        let out = run(&["certificate", "deny", &denied]);
        assert!(out.status.success(), "{version} deny: {}", stderr(&out));
        let table = stdout(&run(&["get", "csr", &denied]));
        assert!(
            table.contains("Denied") && !table.contains("Issued"),
            "{table}"
        );
        let out = run(&["certificate", "approve", &denied]);
        assert!(
            !out.status.success(),
            "approving a denied request must fail"
        );
    }

    // Bad input: a request that is not PEM is refused with the field named.
    let file = dir.join("bad.json");
    let mut bad = csr_object("bad", "x");
    bad["spec"]["request"] = json!(base64_encode(b"not a certificate request"));
    std::fs::write(&file, bad.to_string()).unwrap();
    let out = kubectl_with(
        &kubectl_dir().join("kubectl.1.33"),
        &hub.kubeconfig,
        &["create", "-f", file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("spec.request"), "{}", stderr(&out));

    // kube-rs: create, list, approve through a merge patch of /approval, then use it.
    let (key, request) = key_and_request("kube-rs-user", "robots");
    let csr: CertificateSigningRequest =
        serde_json::from_value(csr_object("kube-rs-user", &request)).unwrap();
    let created = api.create(&PostParams::default(), &csr).await.unwrap();
    assert_eq!(created.spec.username.as_deref(), Some("admin"));
    let names: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert!(names.contains(&"kube-rs-user".to_string()), "{names:?}");
    let approval = json!({"status": {"conditions": [{
        "type": "Approved", "status": "True", "reason": "ByKubeRs", "message": "approved in a test",
    }]}});
    api.patch_approval(
        "kube-rs-user",
        &PatchParams::default(),
        &Patch::Merge(&approval),
    )
    .await
    .unwrap();
    let cert = issued_certificate(&api, "kube-rs-user").await;
    let kubeconfig = cert_kubeconfig(&hub, &dir, "kube-rs-user", &cert, &key);
    let whoami = wait_for("whoami", std::time::Duration::from_secs(10), || {
        let out = support::kubectl(&kubeconfig, &["auth", "whoami"]);
        out.status.success().then(|| stdout(&out))
    });
    assert!(
        whoami.contains("kube-rs-user") && whoami.contains("robots"),
        "{whoami}"
    );
}

/// Approving needs verb `approve` on `signers` for the request's signerName (or its
/// `<domain>/*` wildcard) besides update on `certificatesigningrequests/approval`, as
/// kube-apiserver's CertificateApproval admission demands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_needs_approve_on_the_signer() {
    let dir = temp_dir("hub-csr-signer");
    let hub = Server::hub(&dir);
    let run = |args: &[&str]| support::kubectl(&hub.kubeconfig, args);
    let apply = |name: &str, object: serde_json::Value| {
        let file = dir.join(format!("{name}.json"));
        std::fs::write(&file, object.to_string()).unwrap();
        let out = run(&["apply", "-f", file.to_str().unwrap()]);
        assert!(out.status.success(), "apply {name}: {}", stderr(&out));
    };
    let (_, request) = key_and_request("someone", "devs");
    apply("csr", csr_object("someone", &request));
    let grant = |name: &str, rules: serde_json::Value| {
        apply(
            name,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": name}, "rules": rules}),
        );
        apply(
            &format!("{name}-binding"),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "approver"}]}),
        );
    };
    grant(
        "csr-approval-writer",
        json!([
            {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"],
             "verbs": ["get", "list"]},
            {"apiGroups": ["certificates.k8s.io"],
             "resources": ["certificatesigningrequests/approval"], "verbs": ["update"]},
        ]),
    );
    let approve = || run(&["--as", "approver", "certificate", "approve", "someone"]);
    // The approval writer may read the request (so its rights are in effect) ...
    wait_for("approver reads", std::time::Duration::from_secs(20), || {
        run(&["--as", "approver", "get", "csr", "someone"])
            .status
            .success()
            .then_some(())
    });
    // ... but may not approve for a signer it was not granted.
    let out = approve();
    assert!(!out.status.success(), "approved without approve on signers");
    let expected = "certificatesigningrequests.certificates.k8s.io \"someone\" is forbidden: \
                    user not permitted to approve requests with signerName \
                    \"kubernetes.io/kube-apiserver-client\"";
    assert!(stderr(&out).contains(expected), "{}", stderr(&out));
    let table = stdout(&run(&["get", "csr", "someone"]));
    assert!(table.contains("Pending"), "{table}");

    // `approve` on the signer domain's wildcard is enough.
    grant(
        "signer-approver",
        json!([{"apiGroups": ["certificates.k8s.io"], "resources": ["signers"],
                "resourceNames": ["kubernetes.io/*"], "verbs": ["approve"]}]),
    );
    wait_for("approval", std::time::Duration::from_secs(20), || {
        approve().status.success().then_some(())
    });
    let table = stdout(&run(&["get", "csr", "someone"]));
    assert!(table.contains("Approved,Issued"), "{table}");
}
