//! Create-only virtual resources answered by the auth layer: access reviews
//! (`kubectl auth can-i`), SelfSubjectReview (`kubectl auth whoami`), TokenReview and
//! TokenRequest (`kubectl create token`). Nothing is stored.

use chrono::{SecondsFormat, Utc};
use flotilla_core::status::{ApiError, StatusCause};
use flotilla_core::user::UserInfo;
use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::{Value, json};

use super::rbac::Attributes;
use super::{Auth, Identity, tokens};
use crate::request_info::RequestInfo;

const AUTHORIZATION: &str = "authorization.k8s.io";
const AUTHENTICATION: &str = "authentication.k8s.io";

/// Whether the request is for a virtual resource [`handle_create`] answers.
pub(super) fn is_virtual(info: &RequestInfo) -> bool {
    match (info.api_group.as_str(), info.resource.as_str()) {
        (AUTHORIZATION, r) => {
            info.subresource.is_empty()
                && [
                    "selfsubjectaccessreviews",
                    "subjectaccessreviews",
                    "localsubjectaccessreviews",
                    "selfsubjectrulesreviews",
                ]
                .contains(&r)
        }
        (AUTHENTICATION, r) => {
            info.subresource.is_empty() && ["selfsubjectreviews", "tokenreviews"].contains(&r)
        }
        ("", "serviceaccounts") => info.subresource == "token" && !info.name.is_empty(),
        _ => false,
    }
}

/// Answers a POST to a virtual resource; the result is the response object (HTTP 201).
pub(super) async fn handle_create(
    auth: &Auth,
    identity: &Identity,
    info: &RequestInfo,
    body: Value,
) -> Result<Value, ApiError> {
    if info.verb != "create" {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    match (info.api_group.as_str(), info.resource.as_str()) {
        (AUTHORIZATION, "selfsubjectaccessreviews") => {
            access_review(auth, info, body, "SelfSubjectAccessReview", |_| {
                Ok(identity.user.clone())
            })
            .await
        }
        (AUTHORIZATION, "subjectaccessreviews") => {
            access_review(auth, info, body, "SubjectAccessReview", subject_from_spec).await
        }
        (AUTHORIZATION, "localsubjectaccessreviews") => {
            let ns = body["spec"]["resourceAttributes"]["namespace"]
                .as_str()
                .unwrap_or("");
            if body["spec"]["resourceAttributes"].is_object() && ns != info.namespace {
                return Err(ApiError::bad_request(format!(
                    "spec.resourceAttributes.namespace must match namespace: {}",
                    info.namespace
                )));
            }
            let mut body = body;
            if body["spec"]["resourceAttributes"].is_object() {
                body["spec"]["resourceAttributes"]["namespace"] = json!(info.namespace);
            }
            access_review(
                auth,
                info,
                body,
                "LocalSubjectAccessReview",
                subject_from_spec,
            )
            .await
        }
        (AUTHORIZATION, "selfsubjectrulesreviews") => {
            rules_review(auth, identity, info, body).await
        }
        (AUTHENTICATION, "selfsubjectreviews") => Ok(json!({
            "apiVersion": format!("{AUTHENTICATION}/{}", info.api_version),
            "kind": "SelfSubjectReview",
            "metadata": {"creationTimestamp": null},
            "status": {"userInfo": user_info_json(&identity.user)},
        })),
        (AUTHENTICATION, "tokenreviews") => token_review(auth, info, body).await,
        ("", "serviceaccounts") if info.subresource == "token" => {
            token_request(auth, info, body).await
        }
        _ => Err(ApiError::not_found(
            &info.api_group,
            &info.resource,
            &info.name,
        )),
    }
}

fn user_info_json(user: &UserInfo) -> Value {
    let mut v = json!({"username": user.username, "groups": user.groups});
    if !user.uid.is_empty() {
        v["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        v["extra"] = json!(user.extra);
    }
    v
}

fn invalid(kind: &str, group: &str, field: &str, message: &str) -> ApiError {
    ApiError::invalid(
        group,
        kind,
        "",
        vec![StatusCause {
            reason: "FieldValueInvalid".into(),
            message: message.into(),
            field: field.into(),
        }],
    )
}

fn subject_from_spec(spec: &Value) -> Result<UserInfo, ApiError> {
    let user = spec["user"].as_str().unwrap_or("").to_string();
    let groups: Vec<String> = spec["groups"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if user.is_empty() && groups.is_empty() {
        return Err(invalid(
            "SubjectAccessReview",
            AUTHORIZATION,
            "spec.user",
            "Invalid value: \"\": at least one of user or group must be specified",
        ));
    }
    let mut info = UserInfo::new(user, groups);
    info.uid = spec["uid"].as_str().unwrap_or("").to_string();
    if let Some(extra) = spec["extra"].as_object() {
        for (k, v) in extra {
            let values = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            info.extra.insert(k.clone(), values);
        }
    }
    Ok(info)
}

async fn access_review(
    auth: &Auth,
    info: &RequestInfo,
    mut body: Value,
    kind: &str,
    subject: impl FnOnce(&Value) -> Result<UserInfo, ApiError>,
) -> Result<Value, ApiError> {
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let resource = spec.get("resourceAttributes").filter(|v| v.is_object());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| v.is_object());
    let attrs = match (resource, non_resource) {
        (Some(r), None) => {
            let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
            Attributes {
                verb: s("verb"),
                is_resource_request: true,
                namespace: s("namespace"),
                api_group: s("group"),
                api_version: s("version"),
                resource: s("resource"),
                subresource: s("subresource"),
                name: s("name"),
                path: String::new(),
            }
        }
        (None, Some(n)) => Attributes {
            verb: n["verb"].as_str().unwrap_or("").to_string(),
            path: n["path"].as_str().unwrap_or("").to_string(),
            ..Default::default()
        },
        (Some(_), Some(_)) => {
            return Err(invalid(
                kind,
                AUTHORIZATION,
                "spec.resourceAttributes",
                "Invalid value: \"resourceAttributes\": cannot be specified in combination with nonResourceAttributes",
            ));
        }
        (None, None) => {
            return Err(invalid(
                kind,
                AUTHORIZATION,
                "spec.resourceAttributes",
                "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ));
        }
    };
    let user = subject(&spec)?;
    let decision = auth.authorize(&user, &attrs).await;
    let mut status = json!({"allowed": decision.allowed()});
    if !decision.reason().is_empty() {
        status["reason"] = json!(decision.reason());
    }
    body["apiVersion"] = json!(format!("{AUTHORIZATION}/{}", info.api_version));
    body["kind"] = json!(kind);
    if !body["metadata"].is_object() {
        body["metadata"] = json!({});
    }
    body["metadata"]["creationTimestamp"] = Value::Null;
    body["status"] = status;
    Ok(body)
}

fn strings(v: &[String]) -> Value {
    json!(v)
}

fn rule_json(rule: &PolicyRule) -> Value {
    let mut v = json!({"verbs": strings(&rule.verbs)});
    if let Some(g) = &rule.api_groups {
        v["apiGroups"] = strings(g);
    }
    if let Some(r) = &rule.resources {
        v["resources"] = strings(r);
    }
    if let Some(n) = rule.resource_names.as_ref().filter(|n| !n.is_empty()) {
        v["resourceNames"] = strings(n);
    }
    v
}

async fn rules_review(
    auth: &Auth,
    identity: &Identity,
    info: &RequestInfo,
    mut body: Value,
) -> Result<Value, ApiError> {
    let namespace = body["spec"]["namespace"].as_str().unwrap_or("").to_string();
    if namespace.is_empty() {
        return Err(invalid(
            "SelfSubjectRulesReview",
            AUTHORIZATION,
            "spec.namespace",
            "Required value: namespace is required",
        ));
    }
    auth.rbac.wait_synced().await;
    let summary = auth.rbac.snapshot().rules_for(&identity.user, &namespace);
    let mut resource_rules: Vec<Value> = Vec::new();
    let mut non_resource_rules: Vec<Value> = Vec::new();
    for rule in &summary.rules {
        if rule
            .non_resource_urls
            .as_ref()
            .is_some_and(|u| !u.is_empty())
        {
            non_resource_rules.push(json!({
                "verbs": strings(&rule.verbs),
                "nonResourceURLs": strings(rule.non_resource_urls.as_deref().unwrap_or_default()),
            }));
        }
        if rule.resources.as_ref().is_some_and(|r| !r.is_empty()) {
            resource_rules.push(rule_json(rule));
        }
    }
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": !summary.errors.is_empty(),
    });
    if !summary.errors.is_empty() {
        status["evaluationError"] = json!(summary.errors.join(", "));
    }
    body["apiVersion"] = json!(format!("{AUTHORIZATION}/{}", info.api_version));
    body["kind"] = json!("SelfSubjectRulesReview");
    body["metadata"] = json!({"creationTimestamp": null});
    body["status"] = status;
    Ok(body)
}

async fn token_review(auth: &Auth, info: &RequestInfo, mut body: Value) -> Result<Value, ApiError> {
    let token = body["spec"]["token"].as_str().unwrap_or("").to_string();
    if token.is_empty() {
        return Err(invalid(
            "TokenReview",
            AUTHENTICATION,
            "spec.token",
            "Required value: token is required",
        ));
    }
    let audiences: Vec<String> = body["spec"]["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let status = match super::authn::user_from_token_for(
        &auth.tokens,
        &auth.store,
        &token,
        &audiences,
    )
    .await
    {
        Ok((user, audiences)) => json!({
            "authenticated": true,
            "user": user_info_json(&user),
            "audiences": audiences,
        }),
        Err(e) => json!({"authenticated": false, "error": e.to_string()}),
    };
    body["apiVersion"] = json!(format!("{AUTHENTICATION}/{}", info.api_version));
    body["kind"] = json!("TokenReview");
    body["metadata"] = json!({"creationTimestamp": null});
    body["status"] = status;
    Ok(body)
}

async fn token_request(auth: &Auth, info: &RequestInfo, body: Value) -> Result<Value, ApiError> {
    let (sa, _) = auth
        .store
        .get_existing(
            crate::store::keys::SERVICE_ACCOUNTS,
            &info.namespace,
            &info.name,
        )
        .await?;
    let uid = sa["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let spec = &body["spec"];
    let expiration = match &spec["expirationSeconds"] {
        Value::Null => tokens::DEFAULT_EXPIRATION_SECONDS,
        v => v.as_i64().ok_or_else(|| {
            invalid(
                "TokenRequest",
                AUTHENTICATION,
                "spec.expirationSeconds",
                "Invalid value: must be an integer",
            )
        })?,
    };
    if expiration < tokens::MIN_EXPIRATION_SECONDS {
        return Err(invalid(
            "TokenRequest",
            AUTHENTICATION,
            "spec.expirationSeconds",
            "Invalid value: may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > 1 << 32 {
        return Err(invalid(
            "TokenRequest",
            AUTHENTICATION,
            "spec.expirationSeconds",
            "Invalid value: may not specify a duration larger than 2^32 seconds",
        ));
    }
    let expiration = expiration.min(tokens::MAX_EXPIRATION_SECONDS);
    let audiences: Vec<String> = spec["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let now = Utc::now();
    let (token, claims) = auth.tokens.issue(
        &info.namespace,
        &info.name,
        &uid,
        &audiences,
        expiration,
        now,
    );
    let expires = chrono::DateTime::from_timestamp(claims.exp, 0)
        .unwrap_or(now)
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {
            "name": info.name,
            "namespace": info.namespace,
            "creationTimestamp": now.to_rfc3339_opts(SecondsFormat::Secs, true),
        },
        "spec": {
            "audiences": claims.aud,
            "expirationSeconds": expiration,
            "boundObjectRef": spec.get("boundObjectRef").cloned().unwrap_or(Value::Null),
        },
        "status": {"token": token, "expirationTimestamp": expires},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: http::Method, path: &str) -> RequestInfo {
        crate::request_info::parse(&method, path, &Default::default())
    }

    #[test]
    fn virtual_resources_are_recognised() {
        let p = http::Method::POST;
        assert!(is_virtual(&info(
            p.clone(),
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        )));
        assert!(is_virtual(&info(
            p.clone(),
            "/apis/authentication.k8s.io/v1beta1/selfsubjectreviews"
        )));
        assert!(is_virtual(&info(
            p.clone(),
            "/api/v1/namespaces/ci/serviceaccounts/builder/token"
        )));
        assert!(is_virtual(&info(
            p.clone(),
            "/apis/authorization.k8s.io/v1/namespaces/x/localsubjectaccessreviews"
        )));
        assert!(!is_virtual(&info(
            p.clone(),
            "/api/v1/namespaces/ci/serviceaccounts"
        )));
        assert!(!is_virtual(&info(p, "/api/v1/namespaces/ci/configmaps")));
    }
}
