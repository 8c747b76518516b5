//! Member cluster credentials: read from a kubeconfig at join, stored on the hub as a Secret in
//! `vela-system` (the KubeVela cluster-gateway layout), and turned back into a [`kube::Config`]
//! whenever a controller needs to reach the member.
//!
//! Secret layout (name = cluster name, type `Opaque`):
//! - data `endpoint`: the member API server URL;
//! - data `ca.crt`: the PEM CA bundle that signs the member's serving certificate (optional);
//! - data `tls.crt` + `tls.key` (client certificate, PEM) **or** `token` (bearer token);
//! - label `cluster.core.oam.dev/cluster-credential-type`: `X509Certificate` or
//!   `ServiceAccountToken`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// The hub namespace holding every member's credentials Secret.
pub(crate) const CREDENTIAL_NAMESPACE: &str = "vela-system";
/// Label on a credentials Secret naming how the hub authenticates to the member.
pub(crate) const CREDENTIAL_TYPE_LABEL: &str = "cluster.core.oam.dev/cluster-credential-type";
/// The field manager the cluster registry writes with.
pub(crate) const FIELD_MANAGER: &str = "flotilla-cluster-registry";

/// Errors reading, storing or using member credentials.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig file could not be read or parsed.
    #[error("cannot read kubeconfig {path}: {cause}")]
    ReadKubeconfig {
        /// The file.
        path: PathBuf,
        /// Displayed, not chained: its message already carries its cause.
        cause: Box<kube::config::KubeconfigError>,
    },
    /// A file the kubeconfig refers to could not be read.
    #[error("cannot read {path} (referenced by the kubeconfig): {cause}")]
    ReadReferencedFile {
        /// The file.
        path: PathBuf,
        /// Displayed, not chained, so the error prints as one clean line.
        cause: std::io::Error,
    },
    /// The kubeconfig lacks something the hub needs.
    #[error("kubeconfig {what}")]
    IncompleteKubeconfig {
        /// What is missing, e.g. `has no current context`.
        what: String,
    },
    /// Base64 data in a kubeconfig could not be decoded.
    #[error("kubeconfig field {field} is not valid base64")]
    BadBase64 {
        /// The field, e.g. `client-certificate-data`.
        field: &'static str,
    },
    /// No credentials Secret exists for the cluster.
    #[error(
        "cluster {cluster_name:?} has no credentials (secret {CREDENTIAL_NAMESPACE}/{cluster_name} not found)"
    )]
    NotFound {
        /// The cluster.
        cluster_name: String,
    },
    /// The credentials Secret exists but is unusable.
    #[error("credentials secret {CREDENTIAL_NAMESPACE}/{cluster_name} is invalid: {what}")]
    InvalidSecret {
        /// The cluster.
        cluster_name: String,
        /// What is wrong with the Secret.
        what: String,
    },
    /// The hub API refused or failed a request.
    #[error("hub API: {}", crate::cluster::describe_kube_error(.0))]
    Hub(Box<kube::Error>),
    /// A kube client configuration could not be built from the credentials.
    #[error("cannot build a client for cluster {cluster_name:?}: {cause}")]
    Config {
        /// The cluster.
        cluster_name: String,
        /// Displayed, not chained, so the error prints as one clean line.
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Result with this module's [`Error`].
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// How the hub authenticates to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialType {
    /// A client certificate and key.
    X509Certificate,
    /// A bearer token.
    ServiceAccountToken,
}

impl CredentialType {
    /// The label value (and `cluster list` TYPE column).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CredentialType::X509Certificate => "X509Certificate",
            CredentialType::ServiceAccountToken => "ServiceAccountToken",
        }
    }
}

impl std::fmt::Display for CredentialType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The client side of a member's credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum ClusterAuth {
    /// Client certificate and private key, PEM.
    ClientCertificate {
        /// The certificate, PEM.
        cert_pem: Vec<u8>,
        /// Its private key, PEM.
        key_pem: Vec<u8>,
    },
    /// A bearer token.
    Token(String),
}

impl std::fmt::Debug for ClusterAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClusterAuth::ClientCertificate { .. } => f.write_str("ClientCertificate(..)"),
            ClusterAuth::Token(_) => f.write_str("Token(..)"),
        }
    }
}

/// Everything the hub needs to reach one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterCredential {
    /// The member API server URL, e.g. `https://127.0.0.1:40123`.
    pub endpoint: String,
    /// PEM CA bundle for the member's serving certificate; `None` trusts the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate or token.
    pub auth: ClusterAuth,
}

impl ClusterCredential {
    /// How this credential authenticates.
    pub fn credential_type(&self) -> CredentialType {
        match self.auth {
            ClusterAuth::ClientCertificate { .. } => CredentialType::X509Certificate,
            ClusterAuth::Token(_) => CredentialType::ServiceAccountToken,
        }
    }

    /// Reads the current context of a kubeconfig file (file references resolved relative to it).
    pub fn from_kubeconfig_file(path: &Path) -> Result<Self> {
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| Error::ReadKubeconfig {
            path: path.to_path_buf(),
            cause: Box::new(e),
        })?;
        Self::from_kubeconfig(&kubeconfig)
    }

    /// Extracts the endpoint, CA and client credentials of the kubeconfig's current context
    /// (or its only context). File references must already be absolute or relative to the
    /// working directory.
    pub(crate) fn from_kubeconfig(kubeconfig: &Kubeconfig) -> Result<Self> {
        let incomplete = |what: &str| Error::IncompleteKubeconfig {
            what: what.to_string(),
        };
        let context = match &kubeconfig.current_context {
            Some(name) if !name.is_empty() => kubeconfig
                .contexts
                .iter()
                .find(|c| &c.name == name)
                .ok_or_else(|| incomplete(&format!("has no context named {name:?}")))?,
            _ if kubeconfig.contexts.len() == 1 => &kubeconfig.contexts[0],
            _ => return Err(incomplete("has no current-context")),
        };
        let context = context
            .context
            .as_ref()
            .ok_or_else(|| incomplete("current context is empty"))?;
        let cluster = kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)
            .and_then(|c| c.cluster.as_ref())
            .ok_or_else(|| incomplete(&format!("has no cluster named {:?}", context.cluster)))?;
        let endpoint = cluster
            .server
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| incomplete("cluster has no server URL"))?;
        let ca_pem = match (
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
        ) {
            (Some(data), _) if !data.is_empty() => {
                Some(decode_base64(data, "certificate-authority-data")?)
            }
            (_, Some(file)) if !file.is_empty() => Some(read_file(file)?),
            _ => None,
        };
        let user_name = context
            .user
            .as_deref()
            .ok_or_else(|| incomplete("current context names no user"))?;
        let user = kubeconfig
            .auth_infos
            .iter()
            .find(|u| u.name == user_name)
            .and_then(|u| u.auth_info.as_ref())
            .ok_or_else(|| incomplete(&format!("has no user named {user_name:?}")))?;
        // Serialize to read the secret fields without depending on the secrecy crate.
        let user_json = serde_json::to_value(user).map_err(|e| incomplete(&e.to_string()))?;
        let field = |name: &str| {
            user_json
                .get(name)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let cert = match (
            field("client-certificate-data"),
            field("client-certificate"),
        ) {
            (Some(data), _) => Some(decode_base64(&data, "client-certificate-data")?),
            (_, Some(file)) => Some(read_file(&file)?),
            _ => None,
        };
        let key = match (field("client-key-data"), field("client-key")) {
            (Some(data), _) => Some(decode_base64(&data, "client-key-data")?),
            (_, Some(file)) => Some(read_file(&file)?),
            _ => None,
        };
        let token = match (field("token"), field("tokenFile")) {
            (Some(token), _) => Some(token),
            (_, Some(file)) => Some(
                String::from_utf8_lossy(&read_file(&file)?)
                    .trim()
                    .to_string(),
            ),
            _ => None,
        };
        let auth = match (cert, key, token) {
            (Some(cert_pem), Some(key_pem), _) => {
                ClusterAuth::ClientCertificate { cert_pem, key_pem }
            }
            (Some(_), None, _) => {
                return Err(incomplete("user has a client certificate but no key"));
            }
            (None, _, Some(token)) => ClusterAuth::Token(token),
            _ => {
                return Err(incomplete(
                    "user has neither a client certificate and key nor a token",
                ));
            }
        };
        Ok(ClusterCredential {
            endpoint,
            ca_pem,
            auth,
        })
    }

    /// The credentials Secret for `cluster_name`, ready to apply to the hub.
    pub(crate) fn to_secret(&self, cluster_name: &str) -> Secret {
        let mut data = BTreeMap::new();
        data.insert(
            "endpoint".to_string(),
            ByteString(self.endpoint.as_bytes().to_vec()),
        );
        if let Some(ca) = &self.ca_pem {
            data.insert("ca.crt".to_string(), ByteString(ca.clone()));
        }
        match &self.auth {
            ClusterAuth::ClientCertificate { cert_pem, key_pem } => {
                data.insert("tls.crt".to_string(), ByteString(cert_pem.clone()));
                data.insert("tls.key".to_string(), ByteString(key_pem.clone()));
            }
            ClusterAuth::Token(token) => {
                data.insert("token".to_string(), ByteString(token.as_bytes().to_vec()));
            }
        }
        Secret {
            metadata: ObjectMeta {
                name: Some(cluster_name.to_string()),
                namespace: Some(CREDENTIAL_NAMESPACE.to_string()),
                labels: Some(BTreeMap::from([(
                    CREDENTIAL_TYPE_LABEL.to_string(),
                    self.credential_type().as_str().to_string(),
                )])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_string()),
            data: Some(data),
            ..Secret::default()
        }
    }

    /// Reads a credentials Secret.
    pub(crate) fn from_secret(secret: &Secret) -> Result<Self> {
        let cluster_name = secret.metadata.name.clone().unwrap_or_default();
        let invalid = |what: &str| Error::InvalidSecret {
            cluster_name: cluster_name.clone(),
            what: what.to_string(),
        };
        let mut data: BTreeMap<String, Vec<u8>> = secret
            .data
            .as_ref()
            .map(|d| d.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
            .unwrap_or_default();
        if let Some(string_data) = &secret.string_data {
            for (k, v) in string_data {
                data.insert(k.clone(), v.as_bytes().to_vec());
            }
        }
        let endpoint = data
            .get("endpoint")
            .map(|v| String::from_utf8_lossy(v).trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("no endpoint"))?;
        let ca_pem = data.get("ca.crt").filter(|v| !v.is_empty()).cloned();
        let auth = match (data.get("tls.crt"), data.get("tls.key"), data.get("token")) {
            (Some(cert), Some(key), _) if !cert.is_empty() && !key.is_empty() => {
                ClusterAuth::ClientCertificate {
                    cert_pem: cert.clone(),
                    key_pem: key.clone(),
                }
            }
            (_, _, Some(token)) if !token.is_empty() => {
                ClusterAuth::Token(String::from_utf8_lossy(token).trim().to_string())
            }
            _ => return Err(invalid("neither tls.crt+tls.key nor token")),
        };
        Ok(ClusterCredential {
            endpoint,
            ca_pem,
            auth,
        })
    }

    /// A self-contained kubeconfig (all data inline) for this member, named `cluster_name`.
    pub(crate) fn to_kubeconfig_json(&self, cluster_name: &str) -> serde_json::Value {
        let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
        let mut cluster = serde_json::json!({ "server": self.endpoint });
        if let Some(ca) = &self.ca_pem {
            cluster["certificate-authority-data"] = b64(ca).into();
        }
        let user = match &self.auth {
            ClusterAuth::ClientCertificate { cert_pem, key_pem } => serde_json::json!({
                "client-certificate-data": b64(cert_pem),
                "client-key-data": b64(key_pem),
            }),
            ClusterAuth::Token(token) => serde_json::json!({ "token": token }),
        };
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": cluster_name, "cluster": cluster }],
            "users": [{ "name": cluster_name, "user": user }],
            "contexts": [{ "name": cluster_name, "context": { "cluster": cluster_name, "user": cluster_name } }],
            "current-context": cluster_name,
        })
    }

    /// A [`kube::Config`] for this member. `timeout` bounds connecting and each response
    /// (`None`: kube's defaults, no read timeout — needed for watches).
    pub async fn to_config(
        &self,
        cluster_name: &str,
        timeout: Option<Duration>,
    ) -> Result<kube::Config> {
        let config_error = |cause: Box<dyn std::error::Error + Send + Sync>| Error::Config {
            cluster_name: cluster_name.to_string(),
            cause,
        };
        let kubeconfig: Kubeconfig = serde_json::from_value(self.to_kubeconfig_json(cluster_name))
            .map_err(|e| config_error(Box::new(e)))?;
        let mut config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| config_error(Box::new(e)))?;
        if let Some(timeout) = timeout {
            config.connect_timeout = Some(timeout);
            config.read_timeout = Some(timeout);
            config.write_timeout = Some(timeout);
            config.reset_reader_on_write = true;
        }
        // The hub's own retries would hide an unavailable member; callers decide.
        config.default_retry = false;
        Ok(config)
    }
}

fn decode_base64(data: &str, field: &'static str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| Error::BadBase64 { field })
}

fn read_file(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|cause| Error::ReadReferencedFile {
        path: PathBuf::from(path),
        cause,
    })
}

fn secrets(hub_client: &kube::Client) -> Api<Secret> {
    Api::namespaced(hub_client.clone(), CREDENTIAL_NAMESPACE)
}

/// Reads the stored credentials of `cluster_name` from the hub.
pub async fn read(hub_client: &kube::Client, cluster_name: &str) -> Result<ClusterCredential> {
    match secrets(hub_client).get_opt(cluster_name).await {
        Ok(Some(secret)) => ClusterCredential::from_secret(&secret),
        Ok(None) => Err(Error::NotFound {
            cluster_name: cluster_name.to_string(),
        }),
        Err(e) => Err(Error::Hub(Box::new(e))),
    }
}

/// Stores (creates or replaces) the credentials of `cluster_name` on the hub, creating the
/// `vela-system` namespace if needed.
pub(crate) async fn write(
    hub_client: &kube::Client,
    cluster_name: &str,
    credential: &ClusterCredential,
) -> Result<()> {
    ensure_namespace(hub_client).await?;
    // k8s-openapi serializes apiVersion and kind, which server-side apply requires.
    let secret = credential.to_secret(cluster_name);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    secrets(hub_client)
        .patch(cluster_name, &params, &Patch::Apply(&secret))
        .await
        .map_err(|e| Error::Hub(Box::new(e)))?;
    Ok(())
}

/// Deletes the credentials of `cluster_name`; absent credentials are not an error.
pub(crate) async fn delete(hub_client: &kube::Client, cluster_name: &str) -> Result<()> {
    match secrets(hub_client)
        .delete(cluster_name, &Default::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(Error::Hub(Box::new(e))),
    }
}

/// Every stored credential on the hub, by cluster name.
pub(crate) async fn list(hub_client: &kube::Client) -> Result<BTreeMap<String, ClusterCredential>> {
    let list = match secrets(hub_client)
        .list(&kube::api::ListParams::default().labels(CREDENTIAL_TYPE_LABEL))
        .await
    {
        Ok(list) => list,
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(BTreeMap::new()),
        Err(e) => return Err(Error::Hub(Box::new(e))),
    };
    Ok(list
        .items
        .iter()
        .filter_map(|s| {
            let name = s.metadata.name.clone()?;
            ClusterCredential::from_secret(s).ok().map(|c| (name, c))
        })
        .collect())
}

async fn ensure_namespace(hub_client: &kube::Client) -> Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    let namespaces: Api<Namespace> = Api::all(hub_client.clone());
    if namespaces
        .get_opt(CREDENTIAL_NAMESPACE)
        .await
        .map_err(|e| Error::Hub(Box::new(e)))?
        .is_some()
    {
        return Ok(());
    }
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(CREDENTIAL_NAMESPACE.to_string()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match namespaces.create(&Default::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(Error::Hub(Box::new(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(user: serde_json::Value) -> Kubeconfig {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "m", "cluster": {
                "server": "https://127.0.0.1:40123",
                "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode("CA PEM"),
            }}],
            "users": [{"name": "admin", "user": user}],
            "contexts": [{"name": "m", "context": {"cluster": "m", "user": "admin"}}],
            "current-context": "m",
        }))
        .unwrap()
    }

    #[test]
    fn client_certificate_round_trips_through_the_secret() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let kc = kubeconfig(serde_json::json!({
            "client-certificate-data": b64("CERT"),
            "client-key-data": b64("KEY"),
        }));
        let credential = ClusterCredential::from_kubeconfig(&kc).unwrap();
        assert_eq!(credential.endpoint, "https://127.0.0.1:40123");
        assert_eq!(credential.ca_pem.as_deref(), Some(&b"CA PEM"[..]));
        assert_eq!(
            credential.credential_type(),
            CredentialType::X509Certificate
        );
        let secret = credential.to_secret("beijing-1");
        assert_eq!(secret.metadata.namespace.as_deref(), Some("vela-system"));
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        assert_eq!(
            secret.metadata.labels.as_ref().unwrap()[CREDENTIAL_TYPE_LABEL],
            "X509Certificate"
        );
        let data = secret.data.as_ref().unwrap();
        assert_eq!(data["tls.crt"].0, b"CERT");
        assert_eq!(data["tls.key"].0, b"KEY");
        assert_eq!(ClusterCredential::from_secret(&secret).unwrap(), credential);
    }

    #[test]
    fn token_credentials() {
        let kc = kubeconfig(serde_json::json!({"token": "abc"}));
        let credential = ClusterCredential::from_kubeconfig(&kc).unwrap();
        assert_eq!(credential.auth, ClusterAuth::Token("abc".into()));
        let secret = credential.to_secret("c");
        assert_eq!(
            secret.metadata.labels.as_ref().unwrap()[CREDENTIAL_TYPE_LABEL],
            "ServiceAccountToken"
        );
        assert_eq!(ClusterCredential::from_secret(&secret).unwrap(), credential);
    }

    #[test]
    fn incomplete_kubeconfigs_are_refused() {
        let kc = kubeconfig(serde_json::json!({}));
        assert!(matches!(
            ClusterCredential::from_kubeconfig(&kc),
            Err(Error::IncompleteKubeconfig { .. })
        ));
        let mut secret = ClusterCredential {
            endpoint: "https://x".into(),
            ca_pem: None,
            auth: ClusterAuth::Token("t".into()),
        }
        .to_secret("c");
        secret.data.as_mut().unwrap().remove("token");
        assert!(ClusterCredential::from_secret(&secret).is_err());
    }

    #[tokio::test]
    async fn builds_a_kube_config() {
        let credential = ClusterCredential {
            endpoint: "https://127.0.0.1:1".into(),
            ca_pem: None,
            auth: ClusterAuth::Token("t".into()),
        };
        let config = credential
            .to_config("c", Some(Duration::from_secs(1)))
            .await
            .unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:1/");
        assert_eq!(config.read_timeout, Some(Duration::from_secs(1)));
    }
}
