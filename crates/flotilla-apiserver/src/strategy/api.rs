//! The API machinery's own kinds: `apiregistration.k8s.io` APIService,
//! `certificates.k8s.io` CertificateSigningRequest and `apiextensions.k8s.io`
//! CustomResourceDefinition (its serving side is in `crate::crd`, signing in `crate::csr`).

use flotilla_core::status::StatusCause;
use serde_json::{Value, json};

use super::print::{age, arr, human_duration, i, name, s};
use super::{NameRule, PrintColumn, Strategy};
use crate::validation::cause;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;

/// APIService, CertificateSigningRequest, CustomResourceDefinition.
pub(crate) const STRATEGIES: &[Strategy] = &[
    // `v1.` names the core group's APIService.
    Strategy::described::<APIService>()
        .status()
        .names(NameRule::Path)
        .columns(&[
            PrintColumn::new("Name", name),
            PrintColumn::new("Service", |o| {
                json!(
                    match (s(o, "/spec/service/namespace"), s(o, "/spec/service/name")) {
                        (_, "") => "Local".to_string(),
                        (ns, n) => format!("{ns}/{n}"),
                    }
                )
            }),
            PrintColumn::new("Available", |o| json!(apiservice_available(o))),
            PrintColumn::new("Age", age),
        ]),
    Strategy::described::<CertificateSigningRequest>()
        .short_names(&["csr"])
        .status()
        .field_labels(&["spec.signerName"])
        .on_create(crate::csr::prepare_create)
        .validate_update(|old, new, causes| {
            if old.get("spec") != new.get("spec") {
                causes.push(cause(
                    "FieldValueForbidden",
                    "spec",
                    "Forbidden: field is immutable",
                ));
            }
        })
        .columns(CSR_COLUMNS),
    Strategy::typed::<CustomResourceDefinition>()
        .short_names(&["crd", "crds"])
        .status()
        .on_create(|o, _| {
            crate::crd::set_initial_status(o);
            Ok(())
        })
        .validate(validate_crd)
        .generation(),
];

fn validate_crd(obj: &Value, old: Option<&Value>, causes: &mut Vec<StatusCause>) {
    causes.extend(crate::crd::validate_definition(obj, old));
}

const CSR_COLUMNS: &[PrintColumn] = &[
    PrintColumn::new("Name", name),
    PrintColumn::new("Age", age),
    PrintColumn::new("SignerName", |o| json!(s(o, "/spec/signerName"))),
    PrintColumn::new("Requestor", |o| json!(s(o, "/spec/username"))),
    PrintColumn::new("RequestedDuration", |o| {
        json!(match i(o, "/spec/expirationSeconds") {
            0 => "<none>".to_string(),
            secs => human_duration(chrono::Duration::seconds(secs)),
        })
    }),
    PrintColumn::new("Condition", |o| json!(csr_condition(o))),
];

/// `True`, or `False (reason)`, as kubectl prints an APIService's availability.
fn apiservice_available(obj: &Value) -> String {
    let available = arr(obj, "/status/conditions")
        .iter()
        .find(|c| s(c, "/type") == "Available");
    match available {
        None => "Unknown".into(),
        Some(c) if s(c, "/status") == "True" => "True".into(),
        Some(c) => format!("{} ({})", s(c, "/status"), s(c, "/reason")),
    }
}

/// `Approved,Issued`, `Denied`, `Pending`, ... as kubectl prints a CSR's state.
fn csr_condition(obj: &Value) -> String {
    let mut parts: Vec<String> = arr(obj, "/status/conditions")
        .iter()
        .filter(|c| s(c, "/status") == "True" || s(c, "/status").is_empty())
        .map(|c| s(c, "/type").to_string())
        .collect();
    if !s(obj, "/status/certificate").is_empty() {
        parts.push("Issued".into());
    }
    if parts.is_empty() {
        "Pending".into()
    } else {
        parts.join(",")
    }
}
