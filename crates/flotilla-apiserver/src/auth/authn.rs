//! Authentication: x509 client certificates (CN = user, O = groups; the TLS layer has
//! already verified the chain against the cluster CA) and bearer ServiceAccount tokens.

use chrono::Utc;
use flotilla_core::user::{SYSTEM_AUTHENTICATED, UserInfo};

use super::PeerCertificates;
use super::tokens::{self, TokenSigner};
use crate::store::Store;
use crate::store::keys::SERVICE_ACCOUNTS;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("client certificate: {0}")]
    Certificate(String),
    #[error("bearer token: {0}")]
    Token(#[from] tokens::Error),
    #[error("bearer token: service account {0} not found")]
    ServiceAccountGone(String),
    #[error("bearer token: service account {0} was recreated (uid differs)")]
    ServiceAccountUid(String),
    #[error("bearer token: reading the service account: {0}")]
    Storage(#[from] flotilla_core::status::ApiError),
}

pub(super) type Result<T, E = Error> = std::result::Result<T, E>;

/// The identity in a verified client certificate: CN is the user, each O a group.
pub(super) fn user_from_certificate(certs: &PeerCertificates) -> Result<UserInfo> {
    let leaf = certs
        .leaf()
        .ok_or_else(|| Error::Certificate("no certificate".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| Error::Certificate(e.to_string()))?;
    let subject = cert.subject();
    let username = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
        .ok_or_else(|| Error::Certificate("no common name".into()))?
        .to_string();
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    if !groups.iter().any(|g| g == SYSTEM_AUTHENTICATED) {
        groups.push(SYSTEM_AUTHENTICATED.into());
    }
    Ok(UserInfo::new(username, groups))
}

/// The ServiceAccount a bearer token stands for, checked against the store.
pub(super) async fn user_from_token(
    signer: &TokenSigner,
    store: &Store,
    token: &str,
) -> Result<UserInfo> {
    let claims = signer.verify(token, Utc::now())?;
    user_of_claims(store, &claims).await
}

/// For a TokenReview: the user of a token valid for one of `audiences` (this API server's
/// own when empty), and the audiences the token and the review share.
pub(super) async fn user_from_token_for(
    signer: &TokenSigner,
    store: &Store,
    token: &str,
    audiences: &[String],
) -> Result<(UserInfo, Vec<String>)> {
    let target: Vec<String> = if audiences.is_empty() {
        tokens::API_AUDIENCES
            .iter()
            .map(|a| a.to_string())
            .collect()
    } else {
        audiences.to_vec()
    };
    let (claims, shared) = signer.verify_for(token, Utc::now(), &target)?;
    Ok((user_of_claims(store, &claims).await?, shared))
}

/// The ServiceAccount user `claims` name, if it still exists with the same uid.
async fn user_of_claims(store: &Store, claims: &tokens::Claims) -> Result<UserInfo> {
    let ns = &claims.kubernetes.namespace;
    let name = &claims.kubernetes.serviceaccount.name;
    let (account, _) = store
        .get(SERVICE_ACCOUNTS, ns, name)
        .await?
        .ok_or_else(|| Error::ServiceAccountGone(format!("{ns}/{name}")))?;
    let uid = crate::objects::meta_str(&account, "uid").to_string();
    let wanted = &claims.kubernetes.serviceaccount.uid;
    if !wanted.is_empty() && !uid.is_empty() && *wanted != uid {
        return Err(Error::ServiceAccountUid(format!("{ns}/{name}")));
    }
    let mut user = UserInfo::new(
        format!("system:serviceaccount:{ns}:{name}"),
        vec![
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{ns}"),
            SYSTEM_AUTHENTICATED.to_string(),
        ],
    );
    user.uid = uid;
    user.extra.insert(
        "authentication.kubernetes.io/credential-id".into(),
        vec![format!("JTI={}", claims.jti)],
    );
    Ok(user)
}

/// `Authorization: Bearer <token>` (scheme case-insensitive), if present.
pub(super) fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_subject_becomes_the_user() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::ClusterPki::load_or_create(dir.path()).unwrap();
        let (pem, _) = pki
            .issue_client("alice", &["dev".into(), "ops".into()])
            .unwrap();
        let der = rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let user = user_from_certificate(&PeerCertificates::new(vec![der])).unwrap();
        assert_eq!(user.username, "alice");
        assert_eq!(user.groups, vec!["dev", "ops", SYSTEM_AUTHENTICATED]);
        assert!(user_from_certificate(&PeerCertificates::new(vec![])).is_err());
    }

    #[test]
    fn bearer_header() {
        let mut h = http::HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert(http::header::AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("abc"));
        h.insert(http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
    }
}
