//! Credentials an importing member's service proxy uses to reach an exporting member's Pods
//! (`pods/proxy` there): in the exporter, ServiceAccount `kube-system/flotilla-mcs-peer`
//! bound to ClusterRole `flotilla-mcs-peer` (only `pods/proxy`), and a token for it
//! (TokenRequest, 24 h, renewed after 12 h); in the importer, Secret
//! `kube-system/flotilla-mcs-peer-<exporter>` with `endpoint`, `ca.crt` (from the hub's
//! credentials for the exporter) and `token`. The hub's own credentials never leave the hub.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::MANAGER;
use crate::cluster::credentials;

/// Namespace of the peer ServiceAccount and Secrets.
pub(crate) const PEER_NAMESPACE: &str = "kube-system";
/// Name of the ServiceAccount, ClusterRole and ClusterRoleBinding in an exporter.
pub(crate) const PEER_ACCOUNT: &str = "flotilla-mcs-peer";
/// Prefix of the Secret in an importer; the exporter's name follows.
pub(crate) const PEER_SECRET_PREFIX: &str = "flotilla-mcs-peer-";
const TOKEN_SECONDS: i64 = 24 * 3600;
const RENEW_AFTER: Duration = Duration::from_secs(12 * 3600);

/// A token per exporter, and which importer already has which exporter's current token.
#[derive(Default)]
pub(crate) struct Peers {
    tokens: HashMap<String, (String, Instant)>,
    delivered: HashMap<(String, String), String>,
}

impl Peers {
    /// Makes sure `importer` holds a working credential for `exporter` (logged on failure).
    pub(crate) async fn ensure(
        &mut self,
        hub_client: &kube::Client,
        (importer_name, importer): (&str, &kube::Client),
        (exporter_name, exporter): (&str, &kube::Client),
    ) {
        let result = self
            .try_ensure(
                hub_client,
                (importer_name, importer),
                (exporter_name, exporter),
            )
            .await;
        if let Err(e) = result {
            tracing::warn!(exporter = %exporter_name, error = %format!("{e:#}"), "peer credentials");
        }
    }

    async fn try_ensure(
        &mut self,
        hub_client: &kube::Client,
        (importer_name, importer): (&str, &kube::Client),
        (exporter_name, exporter): (&str, &kube::Client),
    ) -> anyhow::Result<()> {
        let fresh = self
            .tokens
            .get(exporter_name)
            .is_some_and(|(_, at)| at.elapsed() < RENEW_AFTER);
        if !fresh {
            let token = issue_token(exporter).await?;
            self.tokens
                .insert(exporter_name.to_string(), (token, Instant::now()));
        }
        let token = self.tokens[exporter_name].0.clone();
        let importer_key = (importer_name.to_string(), exporter_name.to_string());
        let secret_name = format!("{PEER_SECRET_PREFIX}{exporter_name}");
        let secrets: Api<Secret> = Api::namespaced(importer.clone(), PEER_NAMESPACE);
        if self.delivered.get(&importer_key) == Some(&token)
            && secrets.get_opt(&secret_name).await?.is_some()
        {
            return Ok(());
        }
        let credential = credentials::read(hub_client, exporter_name).await?;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret_name, "namespace": PEER_NAMESPACE,
                         "labels": {"app.kubernetes.io/managed-by": MANAGER}},
            "type": "Opaque",
            "data": {
                "endpoint": b64(credential.endpoint.as_bytes()),
                "ca.crt": b64(credential.ca_pem.as_deref().unwrap_or_default()),
                "token": b64(token.as_bytes()),
            },
        });
        secrets
            .patch(
                &secret_name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&secret),
            )
            .await?;
        self.delivered.insert(importer_key, token);
        Ok(())
    }
}

/// Creates the peer ServiceAccount and its `pods/proxy` grant in the exporter, and a token.
async fn issue_token(exporter: &kube::Client) -> anyhow::Result<String> {
    let params = PatchParams::apply(MANAGER).force();
    let accounts: Api<ServiceAccount> = Api::namespaced(exporter.clone(), PEER_NAMESPACE);
    let account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": PEER_ACCOUNT, "namespace": PEER_NAMESPACE}});
    accounts
        .patch(PEER_ACCOUNT, &params, &Patch::Apply(&account))
        .await?;
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": PEER_ACCOUNT},
        "rules": [{"apiGroups": [""], "resources": ["pods/proxy"],
                   "verbs": ["get", "create", "update", "patch", "delete"]}]});
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(exporter.clone());
    roles
        .patch(PEER_ACCOUNT, &params, &Patch::Apply(&role))
        .await?;
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": PEER_ACCOUNT},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": PEER_ACCOUNT},
        "subjects": [{"kind": "ServiceAccount", "name": PEER_ACCOUNT, "namespace": PEER_NAMESPACE}]});
    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(exporter.clone());
    bindings
        .patch(PEER_ACCOUNT, &params, &Patch::Apply(&binding))
        .await?;
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(TOKEN_SECONDS),
            ..Default::default()
        }),
        ..Default::default()
    };
    let issued = accounts
        .create_token_request(PEER_ACCOUNT, &PostParams::default(), &request)
        .await?;
    issued
        .status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| anyhow::anyhow!("the exporter issued an empty token"))
}
