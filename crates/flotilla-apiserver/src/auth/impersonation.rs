//! Impersonation: `Impersonate-User`, `Impersonate-Group` (repeatable), `Impersonate-Uid`
//! and `Impersonate-Extra-<key>`, checked and applied as kube-apiserver does.
//!
//! Each requested attribute is its own authorization check with verb `impersonate`:
//! `users` (or `serviceaccounts` in their namespace for `system:serviceaccount:ns:name`),
//! `groups`, `userextras/<key>` and `uids` (the last two in `authentication.k8s.io`).

use std::collections::BTreeMap;

use flotilla_core::status::ApiError;
use flotilla_core::user::{SYSTEM_AUTHENTICATED, UserInfo};
use http::HeaderMap;

use super::rbac::Attributes;

pub(crate) const IMPERSONATE_USER: &str = "impersonate-user";
pub(crate) const IMPERSONATE_GROUP: &str = "impersonate-group";
pub(crate) const IMPERSONATE_UID: &str = "impersonate-uid";
pub(crate) const IMPERSONATE_EXTRA_PREFIX: &str = "impersonate-extra-";

const ANONYMOUS: &str = "system:anonymous";
const UNAUTHENTICATED: &str = "system:unauthenticated";
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
const AUTHENTICATION_GROUP: &str = "authentication.k8s.io";

/// What the `Impersonate-*` headers ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Requested {
    pub user: String,
    pub groups: Vec<String>,
    pub uid: Option<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

fn header_values(headers: &HeaderMap, name: &str) -> Result<Vec<String>, ApiError> {
    headers
        .get_all(name)
        .iter()
        .map(|v| {
            v.to_str()
                .map(str::to_string)
                .map_err(|_| ApiError::bad_request(format!("invalid {name} header value")))
        })
        .collect()
}

/// Reads the impersonation headers; `None` when there are none. Groups, uid or extras
/// without a user are a 400 BadRequest.
pub(crate) fn parse(headers: &HeaderMap) -> Result<Option<Requested>, ApiError> {
    let users = header_values(headers, IMPERSONATE_USER)?;
    let groups = header_values(headers, IMPERSONATE_GROUP)?;
    let uids = header_values(headers, IMPERSONATE_UID)?;
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in headers.keys() {
        // Header names are lower-case in the http crate.
        if let Some(raw) = name.as_str().strip_prefix(IMPERSONATE_EXTRA_PREFIX) {
            let key = percent_decode(raw);
            let values = header_values(headers, name.as_str())?;
            extra.entry(key).or_default().extend(values);
        }
    }
    let user = users.into_iter().next().unwrap_or_default();
    if user.is_empty() {
        if !groups.is_empty() || !uids.is_empty() || !extra.is_empty() {
            let mut asked: Vec<String> = groups.iter().map(|g| format!("group {g:?}")).collect();
            asked.extend(uids.iter().map(|u| format!("uid {u:?}")));
            asked.extend(extra.keys().map(|k| format!("extra {k:?}")));
            return Err(ApiError::bad_request(format!(
                "requested [{}] without impersonating a user",
                asked.join(", ")
            )));
        }
        return Ok(None);
    }
    Ok(Some(Requested {
        user,
        groups,
        uid: uids.into_iter().next().filter(|u| !u.is_empty()),
        extra,
    }))
}

/// The authorization checks impersonating `requested` takes, in Kubernetes' order.
pub(crate) fn checks(requested: &Requested) -> Vec<Attributes> {
    let mut out = Vec::new();
    let impersonate = |resource: &str, group: &str, namespace: &str, name: &str| Attributes {
        verb: "impersonate".into(),
        is_resource_request: true,
        api_group: group.into(),
        resource: resource.into(),
        namespace: namespace.into(),
        name: name.into(),
        ..Default::default()
    };
    match service_account(&requested.user) {
        Some((ns, name)) => out.push(impersonate("serviceaccounts", "", ns, name)),
        None => out.push(impersonate("users", "", "", &requested.user)),
    }
    for group in &requested.groups {
        out.push(impersonate("groups", "", "", group));
    }
    for (key, values) in &requested.extra {
        for value in values {
            let mut a = impersonate("userextras", AUTHENTICATION_GROUP, "", value);
            a.subresource = key.clone();
            out.push(a);
        }
    }
    if let Some(uid) = &requested.uid {
        out.push(impersonate("uids", AUTHENTICATION_GROUP, "", uid));
    }
    out
}

/// The identity the request then runs as.
pub(crate) fn impersonated_user(requested: &Requested) -> UserInfo {
    let mut groups = requested.groups.clone();
    if groups.is_empty()
        && let Some((ns, _)) = service_account(&requested.user)
    {
        groups = vec![
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{ns}"),
        ];
    }
    if requested.user == ANONYMOUS {
        if !groups.iter().any(|g| g == UNAUTHENTICATED) {
            groups.push(UNAUTHENTICATED.into());
        }
    } else if !groups.iter().any(|g| g == SYSTEM_AUTHENTICATED) {
        groups.push(SYSTEM_AUTHENTICATED.into());
    }
    UserInfo {
        username: requested.user.clone(),
        uid: requested.uid.clone().unwrap_or_default(),
        groups,
        extra: requested.extra.clone(),
    }
}

/// Removes every `Impersonate-*` header so handlers never see them.
pub(crate) fn strip(headers: &mut HeaderMap) {
    let names: Vec<http::HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("impersonate-"))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// `system:serviceaccount:NS:NAME` → `(NS, NAME)`.
pub(crate) fn service_account(username: &str) -> Option<(&str, &str)> {
    let rest = username.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// Extra keys are percent-encoded in header names (`Impersonate-Extra-scopes%2Fa`).
fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("k={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn no_headers_is_no_impersonation() {
        assert_eq!(parse(&headers(&[("accept", "x")])).unwrap(), None);
    }

    #[test]
    fn groups_without_user_is_bad_request() {
        let e = parse(&headers(&[("Impersonate-Group", "dev")])).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(e.reason, "BadRequest");
        assert!(
            e.message.contains("without impersonating a user"),
            "{}",
            e.message
        );
        let e = parse(&headers(&[("Impersonate-Extra-scopes", "a")])).unwrap_err();
        assert_eq!(e.code, 400);
    }

    #[test]
    fn checks_in_kubernetes_order() {
        let r = parse(&headers(&[
            ("Impersonate-User", "bob"),
            ("Impersonate-Group", "dev"),
            ("Impersonate-Group", "ops"),
            ("Impersonate-Uid", "42"),
            ("Impersonate-Extra-Scopes%2Fv1", "read"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(r.extra["scopes/v1"], vec!["read"]);
        let c = checks(&r);
        let summary: Vec<_> = c
            .iter()
            .map(|a| {
                format!(
                    "{}/{}/{}/{}",
                    a.api_group, a.resource, a.subresource, a.name
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                "/users//bob",
                "/groups//dev",
                "/groups//ops",
                "authentication.k8s.io/userextras/scopes/v1/read",
                "authentication.k8s.io/uids//42",
            ]
        );
        let u = impersonated_user(&r);
        assert_eq!(u.groups, vec!["dev", "ops", SYSTEM_AUTHENTICATED]);
        assert_eq!(u.uid, "42");
    }

    #[test]
    fn service_accounts_and_anonymous() {
        let r = parse(&headers(&[(
            "Impersonate-User",
            "system:serviceaccount:ci:builder",
        )]))
        .unwrap()
        .unwrap();
        let c = checks(&r);
        assert_eq!(
            (
                c[0].resource.as_str(),
                c[0].namespace.as_str(),
                c[0].name.as_str()
            ),
            ("serviceaccounts", "ci", "builder")
        );
        assert_eq!(
            impersonated_user(&r).groups,
            vec![
                "system:serviceaccounts",
                "system:serviceaccounts:ci",
                SYSTEM_AUTHENTICATED
            ]
        );
        let anon = Requested {
            user: ANONYMOUS.into(),
            ..Default::default()
        };
        assert_eq!(impersonated_user(&anon).groups, vec![UNAUTHENTICATED]);
    }

    #[test]
    fn strip_removes_all() {
        let mut h = headers(&[
            ("Impersonate-User", "bob"),
            ("Impersonate-Extra-a", "b"),
            ("accept", "x"),
        ]);
        strip(&mut h);
        assert_eq!(h.len(), 1);
    }
}
