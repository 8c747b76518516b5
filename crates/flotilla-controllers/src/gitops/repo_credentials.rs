//! Repository credentials: Secrets labelled `argocd.argoproj.io/secret-type: repository` with
//! `url` and either `username` + `password` or a `token` (also accepted as `password` without
//! a username). Only the Application's own namespace and `argocd` are searched, so nobody
//! borrows another tenant's credentials by naming their repository.

use flotilla_apis::{SECRET_TYPE_LABEL, SECRET_TYPE_REPOSITORY};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};

use super::git::Credentials;
use super::webhook::normalize_repo_url;

/// The namespace Argo CD keeps repository Secrets in; searched for every Application.
pub(crate) const ARGOCD_NAMESPACE: &str = "argocd";

/// User name sent with a bare token.
const TOKEN_USERNAME: &str = "x-access-token";

fn field(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .cloned()
        })
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The credentials a Secret holds for `repo_url`, if it is for that repository.
pub(crate) fn from_secret(secret: &Secret, repo_url: &str) -> Option<Credentials> {
    let url = field(secret, "url")?;
    if normalize_repo_url(&url) != normalize_repo_url(repo_url) {
        return None;
    }
    let username = field(secret, "username");
    let password = field(secret, "password").or_else(|| field(secret, "token"))?;
    Some(Credentials {
        username: username.unwrap_or_else(|| TOKEN_USERNAME.to_string()),
        password,
    })
}

/// The credentials for `repo_url` from `namespace` (first) or `argocd`; `None`: anonymous.
pub(crate) async fn find(
    hub_client: &kube::Client,
    namespace: &str,
    repo_url: &str,
) -> Result<Option<Credentials>, kube::Error> {
    let selector = format!("{SECRET_TYPE_LABEL}={SECRET_TYPE_REPOSITORY}");
    let mut namespaces = vec![namespace];
    if namespace != ARGOCD_NAMESPACE {
        namespaces.push(ARGOCD_NAMESPACE);
    }
    for ns in namespaces {
        let api: Api<Secret> = Api::namespaced(hub_client.clone(), ns);
        let secrets = match api.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list.items,
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => return Err(e),
        };
        if let Some(creds) = secrets.iter().find_map(|s| from_secret(s, repo_url)) {
            return Ok(Some(creds));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn secret(pairs: &[(&str, &str)]) -> Secret {
        Secret {
            string_data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn username_password_or_token() {
        let url = "https://git.example.com/o/r.git";
        let basic = secret(&[
            ("url", "https://git.example.com/o/r"),
            ("username", "u"),
            ("password", "p"),
        ]);
        let got = from_secret(&basic, url).unwrap();
        assert_eq!((got.username.as_str(), got.password.as_str()), ("u", "p"));
        let token = secret(&[("url", url), ("token", "t")]);
        let got = from_secret(&token, url).unwrap();
        assert_eq!(
            (got.username.as_str(), got.password.as_str()),
            (TOKEN_USERNAME, "t")
        );
        assert!(from_secret(&token, "https://git.example.com/o/other").is_none());
        assert!(from_secret(&secret(&[("url", url)]), url).is_none());
    }
}
