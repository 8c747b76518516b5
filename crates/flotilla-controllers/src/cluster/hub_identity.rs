//! The hub's own identity on a member, created at join so the hub never stores the member's
//! administrator credential.
//!
//! With the privileged credential given once to `cluster join`, the hub
//! 1. server-side applies ClusterRole [`IMPERSONATOR_ROLE`] (verb `impersonate` on `users`,
//!    `groups`, `serviceaccounts` and on everything in `authentication.k8s.io`, i.e.
//!    `userextras/<key>` and `uids`; nothing else) and a ClusterRoleBinding of it to user [`HUB_USER`];
//! 2. makes a fresh key, sends a CertificateSigningRequest for `CN=`[`HUB_USER`] to the
//!    member's `kubernetes.io/kube-apiserver-client` signer, approves it, waits for the
//!    certificate and deletes the request;
//! 3. returns that certificate and key (with the member's endpoint and CA) for the hub to store.
//!
//! A credential that may not create ClusterRoleBindings is taken to be limited already (for
//! instance an impersonate-only ServiceAccount token) and is stored as given.

use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::credentials::{ClusterAuth, ClusterCredential, FIELD_MANAGER};

/// The user the hub's certificate names on every member (its CN).
pub const HUB_USER: &str = "system:flotilla:hub";
/// The ClusterRole (and ClusterRoleBinding) join creates on a member for [`HUB_USER`].
pub const IMPERSONATOR_ROLE: &str = "flotilla:hub-impersonator";
/// Validity asked for the hub's certificate (the member may shorten it).
pub(crate) const CERTIFICATE_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
const SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// How long join waits for the member to sign the approved request.
const SIGNING_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the hub's identity could not be created on a member.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The member refused or failed a request made with the given credential.
    #[error("cluster {cluster_name:?}: cannot {what}: {}", crate::cluster::describe_kube_error(.cause))]
    Member {
        /// The member cluster.
        cluster_name: String,
        /// What was being done, e.g. `create the hub's CertificateSigningRequest`.
        what: &'static str,
        /// The member's answer.
        cause: Box<kube::Error>,
    },
    /// The member did not issue the certificate.
    #[error("cluster {cluster_name:?}: the hub's certificate was not issued: {reason}")]
    NotIssued {
        /// The member cluster.
        cluster_name: String,
        /// Why, from the request's conditions.
        reason: String,
    },
    /// The key or request could not be made.
    #[error("cannot make the hub's key or certificate request: {0}")]
    Key(#[from] rcgen::Error),
    /// A client for the member could not be built.
    #[error(transparent)]
    Credentials(#[from] super::credentials::Error),
    /// The kube client could not be built.
    #[error("cluster {cluster_name:?}: cannot build a client: {cause}")]
    Client {
        /// The member cluster.
        cluster_name: String,
        /// Why the client could not be built.
        cause: Box<kube::Error>,
    },
}

/// Result with this module's [`Error`].
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// The credential the hub should store for a member joined with `given`: a fresh
/// impersonate-only client certificate when `given` may create ClusterRoleBindings (an
/// administrator's), else `given` itself. The flag says whether it was replaced.
pub(crate) async fn credential_to_store(
    cluster_name: &str,
    given: &ClusterCredential,
    timeout: Duration,
) -> Result<(ClusterCredential, bool)> {
    let client = member_client(cluster_name, given, timeout).await?;
    if !may_create_cluster_role_bindings(cluster_name, &client).await? {
        return Ok((given.clone(), false));
    }
    grant_impersonation(cluster_name, &client).await?;
    let (cert_pem, key_pem) = issue_certificate(cluster_name, &client).await?;
    Ok((
        ClusterCredential {
            endpoint: given.endpoint.clone(),
            ca_pem: given.ca_pem.clone(),
            auth: ClusterAuth::ClientCertificate { cert_pem, key_pem },
        },
        true,
    ))
}

async fn member_client(
    cluster_name: &str,
    credential: &ClusterCredential,
    timeout: Duration,
) -> Result<kube::Client> {
    let config = credential.to_config(cluster_name, Some(timeout)).await?;
    kube::Client::try_from(config).map_err(|e| Error::Client {
        cluster_name: cluster_name.to_string(),
        cause: Box::new(e),
    })
}

fn member_error<'a>(
    cluster_name: &'a str,
    what: &'static str,
) -> impl Fn(kube::Error) -> Error + 'a {
    move |e| Error::Member {
        cluster_name: cluster_name.to_string(),
        what,
        cause: Box::new(e),
    }
}

async fn may_create_cluster_role_bindings(
    cluster_name: &str,
    client: &kube::Client,
) -> Result<bool> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some("rbac.authorization.k8s.io".into()),
                resource: Some("clusterrolebindings".into()),
                verb: Some("create".into()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(member_error(
            cluster_name,
            "review the given credential's rights",
        ))?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// The ClusterRole and ClusterRoleBinding that let [`HUB_USER`] impersonate, and nothing else.
pub(crate) fn impersonator_rbac() -> [serde_json::Value; 2] {
    let metadata = json!({
        "name": IMPERSONATOR_ROLE,
        "labels": {"app.kubernetes.io/managed-by": "flotilla"},
    });
    [
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": metadata,
            "rules": [
                {"apiGroups": [""], "resources": ["users", "groups", "serviceaccounts"],
                 "verbs": ["impersonate"]},
                // `userextras/<key>` for every key and `uids`: RBAC has no `userextras/*`.
                {"apiGroups": ["authentication.k8s.io"], "resources": ["*"],
                 "verbs": ["impersonate"]},
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": metadata,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": IMPERSONATOR_ROLE},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": HUB_USER}],
        }),
    ]
}

async fn grant_impersonation(cluster_name: &str, client: &kube::Client) -> Result<()> {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let [role, binding] = impersonator_rbac();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Api::<ClusterRole>::all(client.clone())
        .patch(IMPERSONATOR_ROLE, &params, &Patch::Apply(&role))
        .await
        .map_err(member_error(cluster_name, "apply the hub's ClusterRole"))?;
    Api::<ClusterRoleBinding>::all(client.clone())
        .patch(IMPERSONATOR_ROLE, &params, &Patch::Apply(&binding))
        .await
        .map_err(member_error(
            cluster_name,
            "apply the hub's ClusterRoleBinding",
        ))?;
    Ok(())
}

/// A fresh key (PEM) and the certificate (PEM) the member's client signer issued for it.
async fn issue_certificate(
    cluster_name: &str,
    client: &kube::Client,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, HUB_USER);
    let key = rcgen::KeyPair::generate()?;
    let request = params.serialize_request(&key)?.pem()?;
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let name = format!(
        "flotilla-hub-{}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    let csr: CertificateSigningRequest = serde_json::from_value(json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": ByteString(request.into_bytes()),
            "signerName": SIGNER,
            "expirationSeconds": CERTIFICATE_VALIDITY.as_secs(),
            "usages": ["digital signature", "client auth"],
        },
    }))
    .expect("a well-formed CertificateSigningRequest");
    api.create(&PostParams::default(), &csr)
        .await
        .map_err(member_error(
            cluster_name,
            "create a CertificateSigningRequest",
        ))?;
    let issued = approve_and_wait(cluster_name, &api, &name).await;
    // The request holds nothing secret; drop it whatever happened.
    let _ = api.delete(&name, &DeleteParams::default()).await;
    Ok((issued?, key.serialize_pem().into_bytes()))
}

async fn approve_and_wait(
    cluster_name: &str,
    api: &Api<CertificateSigningRequest>,
    name: &str,
) -> Result<Vec<u8>> {
    let approval = json!({"status": {"conditions": [{
        "type": "Approved", "status": "True", "reason": "FlotillaClusterJoin",
        "message": "the hub's impersonate-only identity, requested by flotilla cluster join",
    }]}});
    api.patch_approval(name, &PatchParams::default(), &Patch::Merge(&approval))
        .await
        .map_err(member_error(
            cluster_name,
            "approve the CertificateSigningRequest",
        ))?;
    let deadline = tokio::time::Instant::now() + SIGNING_TIMEOUT;
    loop {
        let csr = api.get(name).await.map_err(member_error(
            cluster_name,
            "read the CertificateSigningRequest",
        ))?;
        let status = csr.status.unwrap_or_default();
        if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
            return Ok(cert.0);
        }
        let refused = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| (c.type_ == "Failed" || c.type_ == "Denied") && c.status == "True");
        let reason = match refused {
            Some(c) => Some(format!("{}: {}", c.type_, c.message.unwrap_or_default())),
            None if tokio::time::Instant::now() >= deadline => {
                Some(format!("not signed within {SIGNING_TIMEOUT:?}"))
            }
            None => None,
        };
        if let Some(reason) = reason {
            return Err(Error::NotIssued {
                cluster_name: cluster_name.to_string(),
                reason,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
