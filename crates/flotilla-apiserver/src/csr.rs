//! `certificates.k8s.io/v1` CertificateSigningRequests, the standard way to hand a user a
//! client certificate: a create records who asked (spec.username/uid/groups/extra) and
//! checks the PEM request; `/approval` takes the Approved / Denied conditions (what
//! `kubectl certificate approve|deny` writes); an approved request for the
//! `kubernetes.io/kube-apiserver-client` signer is signed by the cluster CA in the same
//! write, so `status.certificate` authenticates against this server at once.

use std::time::Duration;

use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flotilla_core::status::{ApiError, StatusCause};
use flotilla_core::user::UserInfo;
use http::StatusCode;
use serde_json::{Value, json};

use crate::handlers::patch::{ParsedPatch, apply_patch, parse_patch};
use crate::handlers::{Req, with_warnings};
use crate::objects::{meta_str, now_rfc3339};
use crate::registry::ResourceInfo;
use crate::state::SharedState;
use crate::store::update::update_with;
use crate::validation::{cause, invalid, required};

pub(crate) const GROUP: &str = "certificates.k8s.io";
pub(crate) const KIND: &str = "CertificateSigningRequest";
/// The signer whose certificates authenticate to this API server.
pub(crate) const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
/// The shortest validity a request may ask for (ten minutes, as Kubernetes).
pub(crate) const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest validity handed out (one year, kube-controller-manager's default).
pub(crate) const MAX_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// The key usages Kubernetes accepts in `spec.usages`.
const KNOWN_USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// Whether `info` is the CertificateSigningRequest resource.
pub(crate) fn is_csr(info: &ResourceInfo) -> bool {
    info.is_builtin() && info.group == GROUP && info.kind == KIND
}

/// On create: records the requesting user in the spec (as kube-apiserver does, whatever
/// the body said) and validates the spec.
pub(crate) fn prepare_create(obj: &mut Value, user: &UserInfo) -> Result<(), ApiError> {
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    spec["username"] = json!(user.username);
    spec["uid"] = json!(user.uid);
    spec["groups"] = json!(user.groups);
    match user.extra.is_empty() {
        true => {
            if let Some(m) = spec.as_object_mut() {
                m.remove("extra");
            }
        }
        false => spec["extra"] = json!(user.extra),
    }
    let causes = spec_causes(&obj["spec"]);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            GROUP,
            KIND,
            meta_str(obj, "name"),
            causes,
        ))
    }
}

/// The PEM text of `spec.request` (base64 in JSON), if it decodes.
fn request_pem(spec: &Value) -> Option<String> {
    let b64 = spec["request"].as_str()?;
    let bytes = STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes).ok()
}

/// What is wrong with a request's spec (empty when nothing is).
fn spec_causes(spec: &Value) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    match spec.get("request") {
        None | Some(Value::Null) => causes.push(required("spec.request")),
        Some(v) => match request_pem(spec) {
            None => causes.push(invalid(
                "spec.request",
                v,
                "PEM block type must be CERTIFICATE REQUEST",
            )),
            Some(pem) => {
                if let Err(e) = rcgen::CertificateSigningRequestParams::from_pem(&pem) {
                    causes.push(invalid(
                        "spec.request",
                        v,
                        &format!("certificate request is not valid: {e}"),
                    ));
                }
            }
        },
    }
    let signer = spec["signerName"].as_str().unwrap_or("");
    if signer.is_empty() {
        causes.push(required("spec.signerName"));
    } else if !signer.contains('/') {
        causes.push(invalid(
            "spec.signerName",
            &json!(signer),
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
    }
    let usages = spec["usages"].as_array().cloned().unwrap_or_default();
    if usages.is_empty() {
        causes.push(required("spec.usages"));
    }
    for (i, u) in usages.iter().enumerate() {
        if !u.as_str().is_some_and(|u| KNOWN_USAGES.contains(&u)) {
            causes.push(cause(
                "FieldValueNotSupported",
                &format!("spec.usages[{i}]"),
                format!("Unsupported value: {u}"),
            ));
        }
    }
    if let Some(seconds) = spec["expirationSeconds"].as_i64()
        && seconds < MIN_EXPIRATION_SECONDS
    {
        causes.push(invalid(
            "spec.expirationSeconds",
            &json!(seconds),
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    causes
}

fn condition_true(status: &Value, kind: &str) -> bool {
    status["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

/// The conditions an `/approval` write asks for, checked against the current ones:
/// Approved and Denied exclude each other, must be True, and stay once set.
fn requested_conditions(
    name: &str,
    current: &Value,
    requested: &Value,
) -> Result<Vec<Value>, ApiError> {
    let mut causes = Vec::new();
    let mut out: Vec<Value> = Vec::new();
    let list = requested["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, c) in list.into_iter().enumerate() {
        let field = format!("status.conditions[{i}]");
        let kind = c["type"].as_str().unwrap_or("").to_string();
        if kind.is_empty() {
            causes.push(required(&format!("{field}.type")));
            continue;
        }
        if out.iter().any(|o| o["type"] == kind.as_str()) {
            causes.push(cause(
                "FieldValueDuplicate",
                &format!("{field}.type"),
                format!("Duplicate value: {kind:?}"),
            ));
        }
        let status = c["status"].as_str().unwrap_or("");
        if ["Approved", "Denied", "Failed"].contains(&kind.as_str()) && status != "True" {
            causes.push(cause(
                "FieldValueNotSupported",
                &format!("{field}.status"),
                format!("Unsupported value: {status:?}: supported values: \"True\""),
            ));
        }
        let mut c = c;
        for time in ["lastUpdateTime", "lastTransitionTime"] {
            if c[time].is_null() {
                c[time] = json!(now_rfc3339());
            }
        }
        out.push(c);
    }
    let has = |kind: &str| out.iter().any(|c| c["type"] == kind);
    if has("Approved") && has("Denied") {
        causes.push(cause(
            "FieldValueInvalid",
            "status.conditions",
            "Invalid value: \"Approved\": Approved and Denied conditions are mutually exclusive",
        ));
    }
    for kind in ["Approved", "Denied", "Failed"] {
        if condition_true(&current["status"], kind) && !has(kind) {
            causes.push(cause(
                "FieldValueForbidden",
                "status.conditions",
                format!("Forbidden: updates may not remove a condition of type {kind:?}"),
            ));
        }
    }
    if causes.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::invalid(GROUP, KIND, name, causes))
    }
}

/// What the cluster signer adds to an approved request: the certificate, or a Failed
/// condition saying why there is none. `None` when it is not this signer's to sign.
fn signed_status(state: &SharedState, obj: &Value) -> Option<Result<String, String>> {
    let spec = &obj["spec"];
    let status = &obj["status"];
    if spec["signerName"] != KUBE_APISERVER_CLIENT
        || !condition_true(status, "Approved")
        || condition_true(status, "Failed")
        || status["certificate"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    {
        return None;
    }
    let usages: Vec<&str> = spec["usages"]
        .as_array()
        .map(|u| u.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !usages.contains(&"client auth") {
        return Some(Err(format!(
            "usages {usages:?} do not include \"client auth\", which {KUBE_APISERVER_CLIENT} requires"
        )));
    }
    let validity = spec["expirationSeconds"]
        .as_u64()
        .map(Duration::from_secs)
        .unwrap_or(MAX_VALIDITY)
        .min(MAX_VALIDITY);
    let pem = request_pem(spec).unwrap_or_default();
    Some(
        state
            .pki
            .sign_client_request(&pem, validity)
            .map(|cert| STANDARD.encode(cert))
            .map_err(|e| e.to_string()),
    )
}

/// `current` with the requested approval conditions and, when the request is approved
/// for this cluster's client signer, the certificate (or a Failed condition).
fn approve(state: &SharedState, current: &Value, requested: &Value) -> Result<Value, ApiError> {
    let name = meta_str(current, "name");
    let conditions = requested_conditions(name, current, requested)?;
    let mut next = current.clone();
    next["status"]["conditions"] = json!(conditions);
    match signed_status(state, &next) {
        None => {}
        Some(Ok(certificate)) => next["status"]["certificate"] = json!(certificate),
        Some(Err(why)) => {
            let now = now_rfc3339();
            if let Some(list) = next["status"]["conditions"].as_array_mut() {
                list.push(json!({
                    "type": "Failed", "status": "True", "reason": "SignerValidationFailure",
                    "message": why, "lastUpdateTime": now, "lastTransitionTime": now,
                }));
            }
        }
    }
    Ok(next)
}

/// The object an `/approval` request asks for: a whole one (PUT) or a patch (PATCH).
enum Requested {
    Object(Value),
    Patch(ParsedPatch),
}

impl Requested {
    fn from_req(req: &Req) -> Result<Requested, ApiError> {
        match req.info.verb.as_str() {
            "update" => Ok(Requested::Object(crate::codec::decode_object(
                &req.headers,
                &req.body,
            )?)),
            "patch" => match parse_patch(req, &req.resource)? {
                ParsedPatch::Apply(_) => Err(ApiError::unsupported_media_type(
                    "application/apply-patch+yaml",
                )),
                patch => Ok(Requested::Patch(patch)),
            },
            _ => Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            )),
        }
    }

    fn object(&self, info: &ResourceInfo, current: &Value) -> Result<Value, ApiError> {
        match self {
            Requested::Object(v) => Ok(v.clone()),
            Requested::Patch(p) => apply_patch(info, current, p),
        }
    }
}

/// kube-apiserver's CertificateApproval admission: writing `/approval` also needs verb
/// `approve` on `signers` (certificates.k8s.io) named the request's `spec.signerName` or its
/// domain's wildcard `<domain>/*`. The signer name cannot change, so the stored one decides.
async fn may_approve(state: &SharedState, user: &UserInfo, csr: &Value) -> Result<(), ApiError> {
    let signer = csr["spec"]["signerName"].as_str().unwrap_or_default();
    let mut names = vec![signer.to_string()];
    if let Some((domain, _)) = signer.split_once('/') {
        names.push(format!("{domain}/*"));
    }
    for name in names {
        let attrs = crate::auth::Attributes {
            verb: "approve".into(),
            is_resource_request: true,
            api_group: GROUP.into(),
            resource: "signers".into(),
            name,
            ..Default::default()
        };
        if state.auth.authorize(user, &attrs).await.allowed() {
            return Ok(());
        }
    }
    let name = meta_str(csr, "name");
    let mut e = ApiError::forbidden(format!(
        "certificatesigningrequests.{GROUP} {name:?} is forbidden: user not permitted to \
         approve requests with signerName {signer:?}"
    ));
    e.group = Some(GROUP.into());
    e.kind = Some("certificatesigningrequests".into());
    e.name = Some(name.to_string());
    Err(e)
}

/// `PUT|PATCH /apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval`
pub(crate) async fn approval(state: SharedState, req: Req) -> Result<Response, ApiError> {
    let requested = Requested::from_req(&req)?;
    let opts = req.write_options()?;
    let (body_name, pinned_rv) = match &requested {
        Requested::Object(v) => (
            meta_str(v, "name").to_string(),
            meta_str(v, "resourceVersion").to_string(),
        ),
        Requested::Patch(_) => (String::new(), String::new()),
    };
    if !body_name.is_empty() && body_name != req.info.name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({})",
            req.info.name
        )));
    }
    let (current, _) = state
        .store
        .get_existing(&req.resource, "", &req.info.name)
        .await?;
    may_approve(&state, &req.user, &current).await?;
    let updated = update_with(
        &state,
        &req.resource,
        "",
        &req.info.name,
        &opts,
        "status",
        &req.user,
        false,
        |current| {
            let current = current.ok_or_else(|| {
                ApiError::not_found(GROUP, "certificatesigningrequests", &req.info.name)
            })?;
            if !pinned_rv.is_empty() && pinned_rv != meta_str(current, "resourceVersion") {
                return Err(ApiError::stale(
                    GROUP,
                    "certificatesigningrequests",
                    &req.info.name,
                ));
            }
            let requested = requested.object(&req.resource, current)?;
            approve(&state, current, &requested)
        },
    )
    .await?;
    let out = crate::convert::to_served(&req.resource, updated.object);
    Ok(with_warnings(
        crate::metadata_only::object_response(&req.headers, StatusCode::OK, &out),
        &updated.warnings,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_b64(cn: &str) -> String {
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let csr = params.serialize_request(&key).unwrap();
        STANDARD.encode(csr.pem().unwrap())
    }

    #[test]
    fn create_records_the_requester_and_checks_the_request() {
        let mut user = UserInfo::new("alice".to_string(), vec!["devs".to_string()]);
        user.uid = "u1".into();
        let mut obj = json!({"metadata": {"name": "a"}, "spec": {
            "request": request_b64("alice"), "signerName": KUBE_APISERVER_CLIENT,
            "usages": ["client auth"], "username": "mallory",
        }});
        prepare_create(&mut obj, &user).unwrap();
        assert_eq!(obj["spec"]["username"], "alice");
        assert_eq!(obj["spec"]["groups"], json!(["devs"]));

        let mut bad = json!({"metadata": {"name": "b"}, "spec": {
            "request": STANDARD.encode("not pem"), "usages": ["flying"],
            "expirationSeconds": 5,
        }});
        let err = prepare_create(&mut bad, &user).unwrap_err();
        assert_eq!(err.code, 422);
        let text = err.message;
        for field in [
            "spec.request",
            "spec.signerName",
            "spec.usages[0]",
            "spec.expirationSeconds",
        ] {
            assert!(text.contains(field), "{field} in {text}");
        }
    }

    #[test]
    fn approval_conditions_are_exclusive_and_stay() {
        let approved = json!({"status": {"conditions": [{"type": "Approved", "status": "True"}]}});
        let both = json!({"status": {"conditions": [
            {"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}]}});
        assert!(requested_conditions("a", &json!({}), &both).is_err());
        assert!(requested_conditions("a", &approved, &json!({})).is_err());
        let out = requested_conditions("a", &json!({}), &approved).unwrap();
        assert!(out[0]["lastTransitionTime"].is_string());
        let not_true = json!({"status": {"conditions": [{"type": "Denied", "status": "False"}]}});
        assert!(requested_conditions("a", &json!({}), &not_true).is_err());
    }
}
