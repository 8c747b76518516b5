//! ServiceAccount tokens: JWTs (HS256) signed with a key kept in the data dir
//! (`sa.key`, mode 0600), shaped like Kubernetes' bound service account tokens.
//!
//! A token names its ServiceAccount's namespace, name and uid; authentication also checks
//! that the ServiceAccount still exists with that uid, so deleting it revokes its tokens.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The issuer written into (and required of) every token.
pub(crate) const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Audiences the API server accepts; tokens requested without audiences get the first.
pub(crate) const API_AUDIENCES: &[&str] =
    &["https://kubernetes.default.svc.cluster.local", "flotilla"];
/// Token lifetime when the request does not say (one hour, as Kubernetes).
pub(crate) const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime a TokenRequest may ask for (ten minutes, as Kubernetes).
pub(crate) const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest lifetime handed out (one year).
pub(crate) const MAX_EXPIRATION_SECONDS: i64 = 365 * 24 * 3600;

const KEY_FILE: &str = crate::pki::TOKEN_KEY_FILE;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("service account signing key {path}: {source}")]
    Key {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("service account signing key {0}: too short")]
    ShortKey(String),
    #[error("token is malformed")]
    Malformed,
    #[error("token signature is invalid")]
    Signature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token issuer is not this API server")]
    Issuer,
    #[error("token audiences {0:?} are not accepted by this API server")]
    Audience(Vec<String>),
    #[error("token audiences {token:?} is invalid for the target audiences {target:?}")]
    TargetAudience {
        token: Vec<String>,
        target: Vec<String>,
    },
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// `kubernetes.io` claim: which ServiceAccount the token is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KubernetesClaim {
    pub namespace: String,
    pub serviceaccount: ServiceAccountRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ServiceAccountRef {
    pub name: String,
    pub uid: String,
}

/// The claims of a ServiceAccount token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    pub jti: String,
    pub nbf: i64,
    pub sub: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
}

/// Signs and verifies ServiceAccount tokens.
pub(crate) struct TokenSigner {
    key: ring::hmac::Key,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner").finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// Loads `DIR/sa.key`, creating a random 32-byte key at first start.
    pub(crate) fn load_or_create(data_dir: &Path) -> Result<TokenSigner> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| Error::Key {
            path: path.display().to_string(),
            source,
        };
        let secret = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret: [u8; 32] = rand::random();
                write_secret(&path, &secret).map_err(io)?;
                secret.to_vec()
            }
            Err(e) => return Err(io(e)),
        };
        if secret.len() < 32 {
            return Err(Error::ShortKey(path.display().to_string()));
        }
        Ok(TokenSigner::from_secret(&secret))
    }

    /// A signer with a given secret (tests).
    pub(crate) fn from_secret(secret: &[u8]) -> TokenSigner {
        TokenSigner {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
        }
    }

    /// A token for ServiceAccount `namespace/name` (uid `uid`), valid for
    /// `expiration_seconds` from `now`.
    pub(crate) fn issue(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        audiences: &[String],
        expiration_seconds: i64,
        now: DateTime<Utc>,
    ) -> (String, Claims) {
        let iat = now.timestamp();
        let claims = Claims {
            aud: if audiences.is_empty() {
                vec![API_AUDIENCES[0].to_string()]
            } else {
                audiences.to_vec()
            },
            exp: iat + expiration_seconds,
            iat,
            iss: ISSUER.into(),
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: iat,
            sub: format!("system:serviceaccount:{namespace}:{name}"),
            kubernetes: KubernetesClaim {
                namespace: namespace.into(),
                serviceaccount: ServiceAccountRef {
                    name: name.into(),
                    uid: uid.into(),
                },
            },
        };
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        // Claims hold only strings and numbers: serialization cannot fail.
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let tag = ring::hmac::sign(&self.key, signing_input.as_bytes());
        let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        (token, claims)
    }

    /// Checks signature, issuer, time window and audience; returns the claims.
    pub(crate) fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims> {
        let claims = self.verify_signed(token, now)?;
        if !claims
            .aud
            .iter()
            .any(|a| API_AUDIENCES.contains(&a.as_str()))
        {
            return Err(Error::Audience(claims.aud.clone()));
        }
        Ok(claims)
    }

    /// As [`TokenSigner::verify`], for a TokenReview naming its own target audiences:
    /// the token must carry one of them. Returns the claims and the audiences they share.
    pub(crate) fn verify_for(
        &self,
        token: &str,
        now: DateTime<Utc>,
        target: &[String],
    ) -> Result<(Claims, Vec<String>)> {
        let claims = self.verify_signed(token, now)?;
        let shared: Vec<String> = claims
            .aud
            .iter()
            .filter(|a| target.contains(a))
            .cloned()
            .collect();
        if shared.is_empty() {
            return Err(Error::TargetAudience {
                token: claims.aud.clone(),
                target: target.to_vec(),
            });
        }
        Ok((claims, shared))
    }

    /// Checks signature, issuer and time window (not the audience).
    fn verify_signed(&self, token: &str, now: DateTime<Utc>) -> Result<Claims> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Malformed);
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| Error::Malformed)?;
        let signing_input = &token[..header.len() + 1 + payload.len()];
        ring::hmac::verify(&self.key, signing_input.as_bytes(), &signature)
            .map_err(|_| Error::Signature)?;
        let header: serde_json::Value = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(Error::Malformed)?;
        if header["alg"] != "HS256" {
            return Err(Error::Malformed);
        }
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(Error::Malformed)?;
        if claims.iss != ISSUER {
            return Err(Error::Issuer);
        }
        let now = now.timestamp();
        if now >= claims.exp {
            return Err(Error::Expired);
        }
        // A minute of leeway for clock skew, as Kubernetes allows.
        if claims.nbf > now + 60 {
            return Err(Error::NotYetValid);
        }
        Ok(claims)
    }
}

fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let signer = TokenSigner::from_secret(&[7u8; 32]);
        let now = Utc::now();
        let (token, claims) = signer.issue("ci", "builder", "u-1", &[], 3600, now);
        let back = signer.verify(&token, now).unwrap();
        assert_eq!(back, claims);
        assert_eq!(back.sub, "system:serviceaccount:ci:builder");

        let later = now + chrono::Duration::seconds(3601);
        assert!(matches!(signer.verify(&token, later), Err(Error::Expired)));

        let other = TokenSigner::from_secret(&[8u8; 32]);
        assert!(matches!(other.verify(&token, now), Err(Error::Signature)));

        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap() + 2, 'x');
        assert!(signer.verify(&tampered, now).is_err());
        assert!(matches!(signer.verify("abc", now), Err(Error::Malformed)));
        assert!(signer.verify("a.b.c", now).is_err());

        let (foreign_aud, _) = signer.issue("ci", "builder", "u-1", &["vault".into()], 3600, now);
        assert!(matches!(
            signer.verify(&foreign_aud, now),
            Err(Error::Audience(_))
        ));
    }

    #[test]
    fn key_is_created_once_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let a = TokenSigner::load_or_create(dir.path()).unwrap();
        let b = TokenSigner::load_or_create(dir.path()).unwrap();
        let (token, _) = a.issue("ns", "sa", "uid", &[], 600, Utc::now());
        assert!(b.verify(&token, Utc::now()).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
