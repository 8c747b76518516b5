//! The auth layers end to end over a real embedded store: a small router that echoes the
//! identity a request ran as, driven with client certificates, tokens and impersonation.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Extension;
use axum::response::IntoResponse;
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::audit::AUDIT_FILE;
use super::*;

struct Harness {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    store: crate::store::Store,
    pki: crate::pki::ClusterPki,
    auth: Arc<Auth>,
    router: axum::Router,
}

async fn echo(
    Extension(auth): Extension<Arc<Auth>>,
    Extension(identity): Extension<Identity>,
    Extension(info): Extension<RequestInfo>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    if is_virtual_resource(&info) {
        let body: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
        return match handle_virtual_create(&auth, &identity, &info, body).await {
            Ok(v) => (StatusCode::CREATED, v.to_string()).into_response(),
            Err(e) => crate::error::status_response(&e),
        };
    }
    let out = json!({
        "user": identity.user.username,
        "groups": identity.user.groups,
        "impersonator": identity.impersonator.as_ref().map(|u| u.username.clone()),
    });
    if info.verb == "create" {
        let mut r = (StatusCode::CREATED, out.to_string()).into_response();
        r.extensions_mut()
            .insert(AuditObjectName("made-by-test".into()));
        return r;
    }
    (StatusCode::OK, out.to_string()).into_response()
}

impl Harness {
    async fn new() -> Harness {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let store = crate::store::Store::new(Arc::new(
            flotilla_storage::embedded::EmbeddedBackend::open(dir.join("db")).unwrap(),
        ));
        let pki = crate::pki::ClusterPki::load_or_create(&dir).unwrap();
        let auth = Auth::new(store.clone(), &pki, &dir).unwrap();
        let h = Harness {
            _dir: tmp,
            dir,
            store,
            pki,
            auth: auth.clone(),
            router: layers(
                axum::Router::new()
                    .fallback(echo)
                    .layer(Extension(auth.clone())),
                auth,
            ),
        };
        for o in Auth::bootstrap_objects() {
            h.put(o).await;
        }
        h
    }

    async fn put(&self, o: Value) {
        let kind = o["kind"].as_str().unwrap();
        let ns = o["metadata"]["namespace"].as_str();
        let plural = format!("{}s", kind.to_ascii_lowercase());
        let resource = match kind {
            "ServiceAccount" => crate::store::keys::SERVICE_ACCOUNTS,
            _ => crate::store::Resource {
                group: crate::store::keys::RBAC_GROUP,
                resource: &plural,
                namespaced: ns.is_some(),
            },
        };
        self.store.create(resource, o).await.unwrap();
    }

    fn cert(&self, user: &str, groups: &[&str]) -> PeerCertificates {
        let groups: Vec<String> = groups.iter().map(|s| s.to_string()).collect();
        let (pem, _) = self.pki.issue_client(user, &groups).unwrap();
        let der = rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        PeerCertificates::new(vec![der])
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        who: Option<PeerCertificates>,
        headers: &[(&str, &str)],
        body: Value,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut req = req.body(Body::from(body.to_string())).unwrap();
        if let Some(p) = who {
            req.extensions_mut().insert(p);
        }
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn get_as(&self, user: &str, path: &str) -> (StatusCode, Value) {
        self.call(
            Method::GET,
            path,
            Some(self.cert(user, &[])),
            &[],
            Value::Null,
        )
        .await
    }

    fn audit_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join(AUDIT_FILE))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    async fn wait_audit(&self, pred: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..500 {
            if let Some(e) = self.audit_lines().into_iter().find(|e| pred(e)) {
                return e;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("audit event not found in {:?}", self.audit_lines());
    }
}

fn rb(ns: &str, name: &str, kind: &str, role: &str, subject: Value) -> Value {
    json!({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding",
           "metadata":{"name":name,"namespace":ns},
           "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":kind,"name":role},
           "subjects":[subject]})
}

#[tokio::test]
async fn anonymous_and_bad_tokens_are_refused_except_health() {
    let h = Harness::new().await;
    let (code, body) = h
        .call(Method::GET, "/api/v1/namespaces", None, &[], Value::Null)
        .await;
    assert_eq!(code, 401);
    assert_eq!(body["reason"], "Unauthorized");
    assert_eq!(body["kind"], "Status");
    let (code, _) = h
        .call(
            Method::GET,
            "/api/v1/namespaces",
            None,
            &[("authorization", "Bearer not.a.token")],
            Value::Null,
        )
        .await;
    assert_eq!(code, 401);
    let (code, body) = h.call(Method::GET, "/readyz", None, &[], Value::Null).await;
    assert_eq!(code, 200);
    assert_eq!(body["user"], "system:anonymous");
    h.wait_audit(|e| e["responseStatus"]["code"] == 401).await;
}

#[tokio::test]
async fn rbac_grants_exactly_what_bindings_say() {
    let h = Harness::new().await;
    let (code, body) = h
        .get_as("alice", "/api/v1/namespaces/default/configmaps")
        .await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "configmaps is forbidden: User \"alice\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );
    assert_eq!(body["details"]["kind"], "configmaps");

    h.put(
        json!({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role",
                 "metadata":{"name":"cm-read","namespace":"team"},
                 "rules":[{"apiGroups":[""],"resources":["configmaps"],"verbs":["get","list"]}]}),
    )
    .await;
    h.put(rb(
        "team",
        "alice-cm",
        "Role",
        "cm-read",
        json!({"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"alice"}),
    ))
    .await;
    // Immediately after the write: the authorizer must not use a stale cache.
    let (code, body) = h
        .get_as("alice", "/api/v1/namespaces/team/configmaps")
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["user"], "alice");
    let (code, _) = h
        .call(
            Method::POST,
            "/api/v1/namespaces/team/configmaps",
            Some(h.cert("alice", &[])),
            &[],
            json!({}),
        )
        .await;
    assert_eq!(code, 403);
    let (code, _) = h
        .get_as("alice", "/api/v1/namespaces/other/configmaps")
        .await;
    assert_eq!(code, 403);

    // Group bindings and the aggregated view role.
    h.put(rb(
        "team",
        "devs-view",
        "ClusterRole",
        "view",
        json!({"kind":"Group","apiGroup":"rbac.authorization.k8s.io","name":"devs"}),
    ))
    .await;
    let dave = h.cert("dave", &["devs"]);
    let (code, _) = h
        .call(
            Method::GET,
            "/apis/apps/v1/namespaces/team/deployments",
            Some(dave.clone()),
            &[],
            Value::Null,
        )
        .await;
    assert_eq!(code, 200);
    let (code, body) = h
        .call(
            Method::GET,
            "/apis/apps/v1/namespaces/team/deployments/web/scale",
            Some(h.cert("erin", &[])),
            &[],
            Value::Null,
        )
        .await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "deployments.apps \"web\" is forbidden: User \"erin\" cannot get resource \"deployments/scale\" in API group \"apps\" in the namespace \"team\""
    );
    // Discovery is open to every authenticated user; other paths are not.
    assert_eq!(h.get_as("erin", "/apis").await.0, 200);
    let (code, body) = h.get_as("erin", "/metrics").await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "forbidden: User \"erin\" cannot get path \"/metrics\""
    );
}

#[tokio::test]
async fn impersonation_needs_the_right_and_is_audited() {
    let h = Harness::new().await;
    let alice = || Some(h.cert("alice", &[]));
    let (code, body) = h
        .call(
            Method::GET,
            "/api/v1/namespaces/default/configmaps",
            alice(),
            &[("Impersonate-User", "bob")],
            Value::Null,
        )
        .await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "users \"bob\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
    );
    let (code, _) = h
        .call(
            Method::GET,
            "/api/v1/namespaces/default/configmaps",
            alice(),
            &[("Impersonate-Group", "admins")],
            Value::Null,
        )
        .await;
    assert_eq!(code, 400);

    h.put(json!({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole",
                 "metadata":{"name":"impersonate-bob"},
                 "rules":[{"apiGroups":[""],"resources":["users"],"verbs":["impersonate"],"resourceNames":["bob"]}]}))
        .await;
    h.put(json!({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding",
                 "metadata":{"name":"alice-as-bob"},
                 "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"impersonate-bob"},
                 "subjects":[{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"alice"}]}))
        .await;
    h.put(rb(
        "default",
        "bob-edit",
        "ClusterRole",
        "edit",
        json!({"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"bob"}),
    ))
    .await;
    let (code, body) = h
        .call(
            Method::POST,
            "/api/v1/namespaces/default/configmaps?fieldManager=kubectl",
            alice(),
            &[("Impersonate-User", "bob")],
            json!({"data": {"secret": "do-not-log"}}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["user"], "bob");
    assert_eq!(body["impersonator"], "alice");
    assert_eq!(body["groups"], json!(["system:authenticated"]));
    let event = h
        .wait_audit(|e| e["verb"] == "create" && e["responseStatus"]["code"] == 201)
        .await;
    assert_eq!(event["user"]["username"], "alice");
    assert_eq!(event["impersonatedUser"]["username"], "bob");
    assert_eq!(event["objectRef"]["name"], "made-by-test");
    assert_eq!(event["objectRef"]["resource"], "configmaps");
    assert!(!event.to_string().contains("do-not-log"));

    let (code, body) = h
        .call(
            Method::GET,
            "/api/v1/namespaces/default/configmaps",
            alice(),
            &[("Impersonate-User", "carol")],
            Value::Null,
        )
        .await;
    assert_eq!(code, 403);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("users \"carol\" is forbidden"),
        "{body}"
    );
    let (code, _) = h
        .call(
            Method::GET,
            "/api/v1/namespaces/default/configmaps",
            alice(),
            &[
                ("Impersonate-User", "bob"),
                ("Impersonate-Group", "system:masters"),
            ],
            Value::Null,
        )
        .await;
    assert_eq!(code, 403, "impersonating a group needs its own right");
}

#[tokio::test]
async fn service_account_tokens_and_reviews() {
    let h = Harness::new().await;
    h.put(json!({"apiVersion":"v1","kind":"ServiceAccount",
                 "metadata":{"name":"builder","namespace":"ci","uid":"sa-uid-1"}}))
        .await;
    let admin = || Some(h.cert("root", &["system:masters"]));
    let (code, body) = h
        .call(
            Method::POST,
            "/api/v1/namespaces/ci/serviceaccounts/builder/token",
            admin(),
            &[],
            json!({"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{}}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let token = body["status"]["token"].as_str().unwrap().to_string();
    assert!(body["status"]["expirationTimestamp"].is_string());
    let (code, _) = h
        .call(
            Method::POST,
            "/api/v1/namespaces/ci/serviceaccounts/nobody/token",
            admin(),
            &[],
            json!({}),
        )
        .await;
    assert_eq!(code, 404);

    let bearer = format!("Bearer {token}");
    let (code, body) = h
        .call(
            Method::POST,
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            None,
            &[("authorization", &bearer)],
            json!({"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        body["status"]["userInfo"]["username"],
        "system:serviceaccount:ci:builder"
    );
    assert_eq!(
        body["status"]["userInfo"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:ci",
            "system:authenticated"
        ])
    );

    // can-i as the service account.
    let ssar = |verb: &str| {
        json!({"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview",
               "spec":{"resourceAttributes":{"namespace":"ci","verb":verb,"resource":"configmaps"}}})
    };
    let (code, body) = h
        .call(
            Method::POST,
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            None,
            &[("authorization", &bearer)],
            ssar("list"),
        )
        .await;
    assert_eq!(code, 201);
    assert_eq!(body["status"]["allowed"], false);
    h.put(rb(
        "ci",
        "builder-view",
        "ClusterRole",
        "view",
        json!({"kind":"ServiceAccount","name":"builder","namespace":"ci"}),
    ))
    .await;
    let (_, body) = h
        .call(
            Method::POST,
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            None,
            &[("authorization", &bearer)],
            ssar("list"),
        )
        .await;
    assert_eq!(body["status"]["allowed"], true, "{body}");
    let (_, body) = h
        .call(
            Method::POST,
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            None,
            &[("authorization", &bearer)],
            json!({"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectRulesReview","spec":{"namespace":"ci"}}),
        )
        .await;
    let rules = body["status"]["resourceRules"].as_array().unwrap();
    assert!(rules.iter().any(|r| {
        r["resources"]
            .as_array()
            .unwrap()
            .contains(&json!("configmaps"))
    }));

    // Deleting the ServiceAccount revokes its tokens.
    let sa = crate::store::keys::SERVICE_ACCOUNTS;
    let (account, revision) = h.store.get_existing(sa, "ci", "builder").await.unwrap();
    h.store.delete_now(sa, &account, revision).await.unwrap();
    let (code, _) = h
        .call(
            Method::GET,
            "/api/v1/namespaces/ci/configmaps",
            None,
            &[("authorization", &bearer)],
            Value::Null,
        )
        .await;
    assert_eq!(code, 401);
    let _ = &h.auth;
}

#[tokio::test]
async fn rbac_writes_cannot_escalate() {
    let h = Harness::new().await;
    h.put(rb(
        "team",
        "alice-admin",
        "ClusterRole",
        "admin",
        json!({"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"alice"}),
    ))
    .await;
    let alice = Identity {
        user: UserInfo::new("alice", vec!["system:authenticated".into()]),
        impersonator: None,
    };
    let binding = |role: &str| {
        rb(
            "team",
            "x",
            "ClusterRole",
            role,
            json!({"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"mallory"}),
        )
    };
    super::escalation::check(&h.auth, &alice.user, "rolebindings", &binding("edit"))
        .await
        .unwrap();
    let e = super::escalation::check(
        &h.auth,
        &alice.user,
        "rolebindings",
        &binding("cluster-admin"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, 403);
    assert!(
        e.message.starts_with(
            "rolebindings.rbac.authorization.k8s.io \"x\" is forbidden: user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n"
        ),
        "{}",
        e.message
    );
    let e = super::escalation::check(&h.auth, &alice.user, "rolebindings", &binding("missing"))
        .await
        .unwrap_err();
    assert_eq!(e.code, 404);

    let role = |resource: &str| {
        json!({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role",
               "metadata":{"name":"r","namespace":"team"},
               "rules":[{"apiGroups":[""],"resources":[resource],"verbs":["get"]}]})
    };
    super::escalation::check(&h.auth, &alice.user, "roles", &role("secrets"))
        .await
        .unwrap();
    let e = super::escalation::check(&h.auth, &alice.user, "roles", &role("nodes"))
        .await
        .unwrap_err();
    assert!(
        e.message
            .ends_with("{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}"),
        "{}",
        e.message
    );
}
