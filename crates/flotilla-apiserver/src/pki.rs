//! The cluster's certificate authority: CA, serving certificate, client certificates and
//! kubeconfigs.
//!
//! A data dir holds `ca.crt`/`ca.key` (created at first start, kept forever) and
//! `server.crt`/`server.key` (re-issued at every start, so a changed host name list takes
//! effect at once). Every file holding a private key is written with mode 0600.
//! Keys are ECDSA P-256; client certificates carry the user as CN and the groups as O,
//! which is how Kubernetes' x509 authenticator reads them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// What can go wrong while creating, loading or using the CA.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Anything else, described.
    #[error("pki: {0}")]
    Pki(String),
    /// Reading or publishing the shared CA in the store.
    #[error("pki: shared CA in the store: {0}")]
    Store(#[from] flotilla_storage::Error),
    /// Reading or writing a file of the data dir.
    #[error("pki: {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Generating a key or certificate.
    #[error("pki: generating a certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// Building the TLS configuration.
    #[error("pki: building the TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// Building the client certificate verifier.
    #[error("pki: building the client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// A file that should be a kubeconfig is not one.
    #[error("pki: {path}: not a kubeconfig: {message}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// Results of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The CA certificate inside a data dir.
pub const CA_CERT_FILE: &str = "ca.crt";
/// The CA key inside a data dir.
pub const CA_KEY_FILE: &str = "ca.key";
/// The serving certificate inside a data dir.
pub const SERVER_CERT_FILE: &str = "server.crt";
/// The serving key inside a data dir.
pub const SERVER_KEY_FILE: &str = "server.key";

/// Where the shared CA lives in the store (outside `/registry/`: no API serves it).
pub const SHARED_PKI_KEY: &str = "/flotilla/pki/cluster";
/// The ServiceAccount token signing key (see `auth::tokens`).
pub const TOKEN_KEY_FILE: &str = "sa.key";

/// The CA and token key as kept in the store.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SharedPki {
    ca_cert: String,
    ca_key: String,
    /// Hex; empty when the publishing server had none.
    token_key: String,
}

fn token_key_hex(data_dir: &Path) -> Result<String> {
    let path = data_dir.join(TOKEN_KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(bytes.iter().map(|b| format!("{b:02x}")).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = rand::random();
            write_private(&path, &key)?;
            Ok(key.iter().map(|b| format!("{b:02x}")).collect())
        }
        Err(source) => Err(Error::Io { path, source }),
    }
}

/// Makes `data_dir` hold the shared CA and token key (files rewritten only if different).
fn adopt(data_dir: &Path, blob: &SharedPki) -> Result<()> {
    std::fs::create_dir_all(data_dir).map_err(|source| Error::Io {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let same = |file: &str, content: &[u8]| {
        std::fs::read(data_dir.join(file)).is_ok_and(|existing| existing == content)
    };
    if !same(CA_KEY_FILE, blob.ca_key.as_bytes()) {
        write_private(&data_dir.join(CA_KEY_FILE), blob.ca_key.as_bytes())?;
    }
    if !same(CA_CERT_FILE, blob.ca_cert.as_bytes()) {
        write_public(&data_dir.join(CA_CERT_FILE), blob.ca_cert.as_bytes())?;
    }
    let token_key: Vec<u8> = (0..blob.token_key.len() / 2)
        .filter_map(|i| u8::from_str_radix(blob.token_key.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    if token_key.len() >= 32 && !same(TOKEN_KEY_FILE, &token_key) {
        write_private(&data_dir.join(TOKEN_KEY_FILE), &token_key)?;
    }
    Ok(())
}

/// Validity of the CA, in days (about ten years).
const CA_VALID_DAYS: i64 = 3650;
/// Validity of serving and client certificates, in days (about one year).
const LEAF_VALID_DAYS: i64 = 365;

/// The CA and serving identity kept in a data dir (`ca.crt`, `ca.key`, `server.crt`, ...).
pub struct ClusterPki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    server_config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for ClusterPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterPki").finish_non_exhaustive()
    }
}

impl ClusterPki {
    /// Loads the CA from `data_dir`, creating it at first start, and issues a fresh serving
    /// certificate for 127.0.0.1, ::1, localhost and this host's name.
    pub fn load_or_create(data_dir: &Path) -> Result<ClusterPki> {
        Self::load_or_create_with_names(data_dir, &[])
    }

    /// As [`ClusterPki::load_or_create`], with extra serving-certificate names (IP
    /// addresses or DNS names), e.g. the address the server listens on.
    pub fn load_or_create_with_names(
        data_dir: &Path,
        extra_names: &[String],
    ) -> Result<ClusterPki> {
        std::fs::create_dir_all(data_dir).map_err(|source| Error::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let cert_path = data_dir.join(CA_CERT_FILE);
        let key_path = data_dir.join(CA_KEY_FILE);
        if cert_path.exists() != key_path.exists() {
            // Regenerating would silently invalidate every kubeconfig the old CA signed.
            return Err(Error::Pki(format!(
                "{}: {CA_CERT_FILE} and {CA_KEY_FILE} must both exist (or neither, for a new CA)",
                data_dir.display()
            )));
        }
        let (ca_pem, key) = if cert_path.exists() {
            let pem = read(&cert_path)?;
            let key = KeyPair::from_pem(&read(&key_path)?)?;
            (pem, key)
        } else {
            let (pem, key) = new_ca()?;
            // Key first: a crash between the two writes leaves no certificate without its key.
            write_private(&key_path, key.serialize_pem().as_bytes())?;
            write_public(&cert_path, pem.as_bytes())?;
            (pem, key)
        };
        let ca_der = pem_to_der(&ca_pem, &cert_path)?;
        let issuer = Issuer::from_ca_cert_der(&ca_der, key)?;
        let mut pki = ClusterPki {
            ca_pem,
            ca_der,
            issuer,
            server_config: Arc::new(placeholder_config()?),
        };
        let (server_pem, server_key) = pki.issue_serving(extra_names)?;
        write_private(
            &data_dir.join(SERVER_KEY_FILE),
            server_key.serialize_pem().as_bytes(),
        )?;
        write_public(&data_dir.join(SERVER_CERT_FILE), server_pem.as_bytes())?;
        pki.server_config = Arc::new(pki.build_server_config(&server_pem, &server_key)?);
        Ok(pki)
    }

    /// As [`ClusterPki::load_or_create`], but the CA and the ServiceAccount token key are
    /// shared through the store, so that several API servers over one store (hubs on one
    /// etcd) form one cluster: the first to start publishes its CA, every other one adopts
    /// it (overwriting its data dir's copy). The store already holds the cluster's secrets,
    /// so it is trusted with these keys too.
    pub async fn load_or_create_shared(
        data_dir: &Path,
        store: &flotilla_storage::SharedBackend,
    ) -> Result<ClusterPki> {
        let shared = match store.get(SHARED_PKI_KEY).await? {
            Some(kv) => Some(kv.value),
            None => {
                // Publish this data dir's CA (created now if needed).
                ClusterPki::load_ca_or_create(data_dir)?;
                let blob = SharedPki {
                    ca_cert: read(&data_dir.join(CA_CERT_FILE))?,
                    ca_key: read(&data_dir.join(CA_KEY_FILE))?,
                    token_key: token_key_hex(data_dir)?,
                };
                let bytes = serde_json::to_vec(&blob).map_err(|e| Error::Pki(e.to_string()))?;
                match store
                    .put(
                        SHARED_PKI_KEY,
                        bytes.into(),
                        flotilla_storage::Precondition::Absent,
                    )
                    .await
                {
                    Ok(_) => None,
                    // Another server got there first: adopt theirs.
                    Err(flotilla_storage::Error::AlreadyExists(_)) => {
                        store.get(SHARED_PKI_KEY).await?.map(|kv| kv.value)
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if let Some(bytes) = shared {
            let blob: SharedPki = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Pki(format!("shared CA in the store: {e}")))?;
            adopt(data_dir, &blob)?;
        }
        ClusterPki::load_or_create(data_dir)
    }

    /// The CA of `data_dir`, created there first if it has none.
    fn load_ca_or_create(data_dir: &Path) -> Result<()> {
        if !data_dir.join(CA_CERT_FILE).exists() && !data_dir.join(CA_KEY_FILE).exists() {
            std::fs::create_dir_all(data_dir).map_err(|source| Error::Io {
                path: data_dir.to_path_buf(),
                source,
            })?;
            let (pem, key) = new_ca()?;
            write_private(&data_dir.join(CA_KEY_FILE), key.serialize_pem().as_bytes())?;
            write_public(&data_dir.join(CA_CERT_FILE), pem.as_bytes())?;
        }
        ClusterPki::load_ca(data_dir).map(|_| ())
    }

    /// Loads only the CA of an existing data dir (no serving certificate is issued):
    /// what `flotilla kubeconfig create` needs.
    pub fn load_ca(data_dir: &Path) -> Result<ClusterPki> {
        let cert_path = data_dir.join(CA_CERT_FILE);
        let key_path = data_dir.join(CA_KEY_FILE);
        let ca_pem = read(&cert_path)?;
        let key = KeyPair::from_pem(&read(&key_path)?)?;
        let ca_der = pem_to_der(&ca_pem, &cert_path)?;
        let issuer = Issuer::from_ca_cert_der(&ca_der, key)?;
        Ok(ClusterPki {
            ca_pem,
            ca_der,
            issuer,
            server_config: Arc::new(placeholder_config()?),
        })
    }

    /// TLS for the API server: h2 + http/1.1 ALPN; client certificates are requested and,
    /// when sent, verified against the CA (requests without one go on to token auth).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server_config.clone()
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca_der.clone()
    }

    /// A fresh client certificate (PEM) and its private key (PKCS#8 PEM) for `user` (CN) in
    /// `groups` (one O each), signed by the CA.
    pub fn issue_client(&self, user: &str, groups: &[String]) -> Result<(String, String)> {
        if user.is_empty() {
            return Err(Error::Pki("a client certificate needs a user name".into()));
        }
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, user);
        params.distinguished_name = dn;
        set_validity(&mut params, LEAF_VALID_DAYS);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        // rcgen keeps one value per attribute type, but Kubernetes reads every O as a group:
        // put the full subject in and sign again.
        let der = der::with_subject(cert.der(), &der::subject(user, groups), self.issuer.key())?;
        let pem = pem_encode("CERTIFICATE", &der);
        Ok((pem, key.serialize_pem()))
    }

    /// Signs a PEM certificate request as a client certificate valid for `validity` from
    /// now (five minutes earlier for clock skew), keeping the request's subject exactly
    /// (CN = user, one O per group). Returns the certificate, PEM.
    pub fn sign_client_request(&self, request_pem: &str, validity: Duration) -> Result<String> {
        let bad = |e: &dyn std::fmt::Display| Error::Pki(format!("certificate request: {e}"));
        let der = match rustls_pemfile::read_one(&mut request_pem.as_bytes()) {
            Ok(Some(rustls_pemfile::Item::Csr(der))) => der,
            _ => return Err(bad(&"not a PEM CERTIFICATE REQUEST")),
        };
        let mut request = rcgen::CertificateSigningRequestParams::from_der(&der)?;
        let subject = {
            use x509_parser::prelude::FromDer;
            let (_, parsed) =
                x509_parser::certification_request::X509CertificationRequest::from_der(&der)
                    .map_err(|e| bad(&e))?;
            parsed.certification_request_info.subject.as_raw().to_vec()
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        let params = &mut request.params;
        params.not_before = epoch + now.saturating_sub(Duration::from_secs(300));
        params.not_after = epoch + now + validity;
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = request.signed_by(&self.issuer)?;
        let der = der::with_subject(cert.der(), &subject, self.issuer.key())?;
        Ok(pem_encode("CERTIFICATE", &der))
    }

    /// A kubeconfig for `user` (CN) in `groups` (O) with a freshly signed client certificate.
    pub fn client_kubeconfig(
        &self,
        server_url: &str,
        cluster_name: &str,
        user: &str,
        groups: &[String],
    ) -> Result<String> {
        let (cert_pem, key_pem) = self.issue_client(user, groups)?;
        Ok(kubeconfig_yaml(
            server_url,
            cluster_name,
            user,
            &self.ca_pem,
            &cert_pem,
            &key_pem,
        ))
    }

    fn issue_serving(&self, extra_names: &[String]) -> Result<(String, KeyPair)> {
        let mut names: Vec<String> = vec!["127.0.0.1".into(), "::1".into(), "localhost".into()];
        if let Some(host) = host_name() {
            names.push(host);
        }
        names.extend(extra_names.iter().cloned());
        let mut sans: Vec<SanType> = Vec::new();
        for name in names {
            let san = match name.parse::<std::net::IpAddr>() {
                Ok(ip) if ip.is_unspecified() => continue,
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => match name.clone().try_into() {
                    Ok(dns) => SanType::DnsName(dns),
                    Err(_) => continue,
                },
            };
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "flotilla-apiserver");
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        set_validity(&mut params, LEAF_VALID_DAYS);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key))
    }

    fn build_server_config(
        &self,
        server_pem: &str,
        server_key: &KeyPair,
    ) -> Result<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()?;
        let chain = vec![
            pem_to_der(server_pem, Path::new(SERVER_CERT_FILE))?,
            self.ca_der.clone(),
        ];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Reads the server URL and cluster name from `DIR/admin.kubeconfig` and returns a
/// kubeconfig for `user` in `groups` signed by the CA in `data_dir`: the implementation of
/// `flotilla kubeconfig create`.
pub fn user_kubeconfig_for_data_dir(
    data_dir: &Path,
    user: &str,
    groups: &[String],
) -> Result<String> {
    if !data_dir.join(CA_CERT_FILE).exists() {
        return Err(Error::Pki(format!(
            "{}: no cluster CA ({CA_CERT_FILE}) here; pass the --data-dir of a hub or member",
            data_dir.display()
        )));
    }
    let pki = ClusterPki::load_ca(data_dir)?;
    let admin = data_dir.join("admin.kubeconfig");
    let (server, cluster_name) = server_of_kubeconfig(&admin)?;
    pki.client_kubeconfig(&server, &cluster_name, user, groups)
}

/// The `server` URL and the cluster name of the current context (or the first cluster) of
/// a kubeconfig file.
pub fn server_of_kubeconfig(path: &Path) -> Result<(String, String)> {
    let text = read(path)?;
    let bad = |message: &str| Error::Kubeconfig {
        path: path.to_path_buf(),
        message: message.to_string(),
    };
    let doc: serde_json::Value = serde_yaml_ng::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    let clusters = doc["clusters"]
        .as_array()
        .ok_or_else(|| bad("no clusters"))?;
    let current_cluster = doc["current-context"].as_str().and_then(|ctx| {
        doc["contexts"].as_array()?.iter().find_map(|c| {
            (c["name"].as_str() == Some(ctx))
                .then(|| c["context"]["cluster"].as_str())
                .flatten()
        })
    });
    let cluster = current_cluster
        .and_then(|name| clusters.iter().find(|c| c["name"].as_str() == Some(name)))
        .or_else(|| clusters.first())
        .ok_or_else(|| bad("no clusters"))?;
    let server = cluster["cluster"]["server"]
        .as_str()
        .ok_or_else(|| bad("cluster has no server"))?;
    let name = cluster["name"].as_str().unwrap_or("flotilla");
    Ok((server.to_string(), name.to_string()))
}

/// Writes a kubeconfig (or any credential file) readable by its owner only (0600).
pub fn write_kubeconfig(path: &Path, text: &str) -> Result<()> {
    write_private(path, text.as_bytes())
}

/// The kubeconfig YAML for one cluster, one user and one context.
pub fn kubeconfig_yaml(
    server_url: &str,
    cluster_name: &str,
    user: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let context = format!("{user}@{cluster_name}");
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": cluster_name,
            "cluster": {
                "server": server_url,
                "certificate-authority-data": b64(ca_pem),
            },
        }],
        "users": [{
            "name": user,
            "user": {
                "client-certificate-data": b64(cert_pem),
                "client-key-data": b64(key_pem),
            },
        }],
        "contexts": [{
            "name": context,
            "context": {"cluster": cluster_name, "user": user},
        }],
        "current-context": context,
        "preferences": {},
    });
    // Serializing a JSON value to YAML cannot fail.
    serde_yaml_ng::to_string(&doc).unwrap_or_default()
}

fn new_ca() -> Result<(String, KeyPair)> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "flotilla");
    dn.push(
        DnType::CommonName,
        format!("flotilla-ca@{}", Utc::now().timestamp()),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, CA_VALID_DAYS);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key))
}

/// Valid from yesterday (clock skew) for `days` days.
fn set_validity(params: &mut CertificateParams, days: i64) {
    let from = Utc::now() - chrono::Duration::days(1);
    let to = Utc::now() + chrono::Duration::days(days);
    params.not_before = rcgen::date_time_ymd(from.year(), from.month() as u8, from.day() as u8);
    params.not_after = rcgen::date_time_ymd(to.year(), to.month() as u8, to.day() as u8);
}

fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())?;
    let name = name.trim().to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The little DER needed to give a certificate a subject with several O attributes.
mod der {
    use rcgen::SigningKey;

    use super::{Error, Result};

    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;
    const UTF8_STRING: u8 = 0x0c;
    const BIT_STRING: u8 = 0x03;
    /// 2.5.4.3 and 2.5.4.10.
    const OID_COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];
    const OID_ORGANIZATION: [u8; 3] = [0x55, 0x04, 0x0a];
    /// Position of `subject` in TBSCertificate (version, serial, signature, issuer,
    /// validity, subject, ...).
    const SUBJECT_INDEX: usize = 5;

    pub(super) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }

    /// Splits `input` into its top-level TLV elements (each returned whole).
    pub(super) fn elements(mut input: &[u8]) -> Result<Vec<&[u8]>> {
        let bad = || Error::Pki("malformed DER in generated certificate".into());
        let mut out = Vec::new();
        while !input.is_empty() {
            let first = *input.get(1).ok_or_else(bad)?;
            let (header, len) = if first < 0x80 {
                (2, first as usize)
            } else {
                let n = (first & 0x7f) as usize;
                if n == 0 || n > 4 || input.len() < 2 + n {
                    return Err(bad());
                }
                let len = input[2..2 + n]
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | *b as usize);
                (2 + n, len)
            };
            let end = header.checked_add(len).ok_or_else(bad)?;
            if input.len() < end {
                return Err(bad());
            }
            out.push(&input[..end]);
            input = &input[end..];
        }
        Ok(out)
    }

    /// The content octets of one TLV.
    fn content(element: &[u8]) -> Result<&[u8]> {
        let header = if element.get(1).is_some_and(|b| *b >= 0x80) {
            2 + (element[1] & 0x7f) as usize
        } else {
            2
        };
        element
            .get(header..)
            .ok_or_else(|| Error::Pki("malformed DER in generated certificate".into()))
    }

    /// `O=group` for each group, then `CN=user`.
    pub(super) fn subject(user: &str, groups: &[String]) -> Vec<u8> {
        let rdn = |oid: &[u8], value: &str| {
            let attr = [tlv(OID, oid), tlv(UTF8_STRING, value.as_bytes())].concat();
            tlv(SET, &tlv(SEQUENCE, &attr))
        };
        let mut rdns: Vec<u8> = Vec::new();
        for group in groups {
            rdns.extend(rdn(&OID_ORGANIZATION, group));
        }
        rdns.extend(rdn(&OID_COMMON_NAME, user));
        tlv(SEQUENCE, &rdns)
    }

    /// `cert` with its subject replaced by `subject`, signed again by `issuer_key`.
    pub(super) fn with_subject(
        cert: &[u8],
        subject: &[u8],
        issuer_key: &rcgen::KeyPair,
    ) -> Result<Vec<u8>> {
        let bad = || Error::Pki("unexpected certificate layout".into());
        let outer = elements(cert)?;
        let outer = content(outer.first().ok_or_else(bad)?)?;
        let parts = elements(outer)?;
        let (tbs, algorithm) = match parts.as_slice() {
            [tbs, algorithm, _signature] => (*tbs, *algorithm),
            _ => return Err(bad()),
        };
        let mut fields = elements(content(tbs)?)?;
        if fields.len() <= SUBJECT_INDEX {
            return Err(bad());
        }
        fields[SUBJECT_INDEX] = subject;
        let tbs = tlv(SEQUENCE, &fields.concat());
        let signature = issuer_key.sign(&tbs)?;
        let mut bits = vec![0u8];
        bits.extend(signature);
        Ok(tlv(
            SEQUENCE,
            &[tbs.as_slice(), algorithm, &tlv(BIT_STRING, &bits)].concat(),
        ))
    }
}

fn pem_to_der(pem: &str, path: &Path) -> Result<CertificateDer<'static>> {
    let mut reader = std::io::BufReader::new(pem.as_bytes());
    match rustls_pemfile::certs(&mut reader).next() {
        Some(Ok(der)) => Ok(der),
        Some(Err(source)) => Err(Error::Io {
            path: path.to_path_buf(),
            source,
        }),
        None => Err(Error::Pki(format!(
            "{}: no certificate in file",
            path.display()
        ))),
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_public(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file(path, bytes, 0o644)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file(path, bytes, 0o600)
}

/// Writes via a temporary file and rename, so a reader never sees half a file, with `mode`
/// set before any byte is written.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(io)?;
    #[cfg(unix)]
    {
        // The mode given to open() is filtered by the umask; make it exact.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io)?;
    }
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)
}

/// A configuration with no certificate, used only by CA-only loads (never served).
fn placeholder_config() -> Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(NoCertificate)))
}

#[derive(Debug)]
struct NoCertificate;

impl rustls::server::ResolvesServerCert for NoCertificate {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der_of(pem: &str) -> CertificateDer<'static> {
        pem_to_der(pem, Path::new("test")).unwrap()
    }

    fn verify_client(pki: &ClusterPki, cert_pem: &str) -> bool {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_der()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .allow_unauthenticated()
        .build()
        .unwrap();
        verifier
            .verify_client_cert(&der_of(cert_pem), &[], rustls::pki_types::UnixTime::now())
            .is_ok()
    }

    #[test]
    fn creates_then_reloads_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first = ClusterPki::load_or_create(dir.path()).unwrap();
        let second = ClusterPki::load_or_create(dir.path()).unwrap();
        assert_eq!(first.ca_pem(), second.ca_pem());
        for f in [CA_CERT_FILE, CA_KEY_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE] {
            assert!(dir.path().join(f).exists(), "{f}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in [CA_KEY_FILE, SERVER_KEY_FILE] {
                let mode = std::fs::metadata(dir.path().join(f))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }
        let alpn = &first.server_config().alpn_protocols;
        assert_eq!(alpn, &vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    }

    #[tokio::test]
    async fn servers_over_one_store_share_one_ca_and_token_key() {
        let store_dir = tempfile::tempdir().unwrap();
        let store: flotilla_storage::SharedBackend = std::sync::Arc::new(
            flotilla_storage::embedded::EmbeddedBackend::open(store_dir.path()).unwrap(),
        );
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        // b had a CA of its own before joining: the shared one replaces it.
        let _ = ClusterPki::load_or_create(b.path()).unwrap();
        let pa = ClusterPki::load_or_create_shared(a.path(), &store)
            .await
            .unwrap();
        let pb = ClusterPki::load_or_create_shared(b.path(), &store)
            .await
            .unwrap();
        assert_eq!(pa.ca_pem(), pb.ca_pem());
        assert_eq!(
            std::fs::read(a.path().join(TOKEN_KEY_FILE)).unwrap(),
            std::fs::read(b.path().join(TOKEN_KEY_FILE)).unwrap()
        );
        // A certificate from one verifies at the other; a restart keeps the CA.
        let (cert, _) = pb.issue_client("alice", &[]).unwrap();
        assert!(verify_client(&pa, &cert));
        let again = ClusterPki::load_or_create_shared(a.path(), &store)
            .await
            .unwrap();
        assert_eq!(again.ca_pem(), pa.ca_pem());
    }

    #[test]
    fn a_half_present_ca_is_an_error_not_a_new_ca() {
        let dir = tempfile::tempdir().unwrap();
        let _ = ClusterPki::load_or_create(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join(CA_KEY_FILE)).unwrap();
        let before = std::fs::read(dir.path().join(CA_CERT_FILE)).unwrap();
        assert!(ClusterPki::load_or_create(dir.path()).is_err());
        assert_eq!(
            std::fs::read(dir.path().join(CA_CERT_FILE)).unwrap(),
            before
        );
    }

    #[test]
    fn client_certificates_verify_against_their_own_ca_only() {
        let dir = tempfile::tempdir().unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        let pki = ClusterPki::load_or_create(dir.path()).unwrap();
        // A certificate signed after reloading the CA from disk must still chain.
        let reloaded = ClusterPki::load_ca(dir.path()).unwrap();
        let other = ClusterPki::load_or_create(other_dir.path()).unwrap();
        let (cert, _key) = reloaded
            .issue_client(
                "alice",
                &["dev".into(), "ops".into(), "system:masters".into()],
            )
            .unwrap();
        assert!(verify_client(&pki, &cert));
        let (foreign, _) = other.issue_client("alice", &[]).unwrap();
        assert!(!verify_client(&pki, &foreign));

        let der = der_of(&cert);
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let cn: Vec<_> = parsed
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let orgs: Vec<_> = parsed
            .subject()
            .iter_organization()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        assert_eq!(cn, vec!["alice"]);
        assert_eq!(orgs, vec!["dev", "ops", "system:masters"]);
    }

    #[test]
    fn serving_certificate_names_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let _pki = ClusterPki::load_or_create_with_names(dir.path(), &["flotilla.example".into()])
            .unwrap();
        let pem = std::fs::read_to_string(dir.path().join(SERVER_CERT_FILE)).unwrap();
        let der = der_of(&pem);
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let san = parsed.subject_alternative_name().unwrap().unwrap();
        let text = format!("{:?}", san.value.general_names);
        assert!(text.contains("localhost"), "{text}");
        assert!(text.contains("flotilla.example"), "{text}");
        assert!(
            text.contains("127.0.0.1") || text.contains("[127, 0, 0, 1]"),
            "{text}"
        );
    }

    #[test]
    fn kubeconfig_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let pki = ClusterPki::load_or_create(dir.path()).unwrap();
        let text = pki
            .client_kubeconfig(
                "https://127.0.0.1:6443",
                "hub",
                "admin",
                &["system:masters".into()],
            )
            .unwrap();
        let path = dir.path().join("admin.kubeconfig");
        write_kubeconfig(&path, &text).unwrap();
        assert_eq!(
            server_of_kubeconfig(&path).unwrap(),
            ("https://127.0.0.1:6443".to_string(), "hub".to_string())
        );
        let user = user_kubeconfig_for_data_dir(dir.path(), "bob", &[]).unwrap();
        let doc: serde_json::Value = serde_yaml_ng::from_str(&user).unwrap();
        assert_eq!(doc["current-context"], "bob@hub");
        assert_eq!(doc["users"][0]["name"], "bob");
        assert!(doc["users"][0]["user"]["client-key-data"].is_string());
    }
}
