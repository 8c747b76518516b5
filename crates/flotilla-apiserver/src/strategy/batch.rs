//! `batch/v1`: Job and CronJob.

use chrono::{DateTime, Utc};
use flotilla_core::status::StatusCause;
use serde_json::{Value, json};

use super::apps::check_non_negative;
use super::pods::{default_pod_spec, validate_pod_template};
use super::print::{
    age, age_of, arr, container_images, container_names, human_duration, i, name, s, selector_text,
};
use super::{Aggregate, PrintColumn, Strategy, get, obj_at, set_default};
use crate::validation::required;
use flotilla_core::kinds::{JOB_TEMPLATE, POD_TEMPLATE};
use k8s_openapi::api::batch::v1 as batch;

/// Job and CronJob.
pub(crate) const STRATEGIES: &[Strategy] = &[
    Strategy::typed::<batch::Job>()
        .in_all()
        .status()
        .patch(POD_TEMPLATE)
        .aggregate(Aggregate::ViewEdit)
        .field_labels(&["status.successful"])
        .defaults(default_job)
        .validate(validate_job)
        .columns(JOB_COLUMNS)
        .generation(),
    Strategy::typed::<batch::CronJob>()
        .short_names(&["cj"])
        .in_all()
        .status()
        .patch(JOB_TEMPLATE)
        .aggregate(Aggregate::ViewEdit)
        .defaults(default_cronjob)
        .validate(validate_cronjob)
        .columns(CRONJOB_COLUMNS)
        .generation(),
];

fn default_job(obj: &mut Value) {
    if let Some(spec) = obj_at(obj, &["spec"]) {
        set_default(spec, "backoffLimit", json!(6));
        set_default(spec, "completions", json!(1));
        set_default(spec, "parallelism", json!(1));
        set_default(spec, "completionMode", json!("NonIndexed"));
        set_default(spec, "suspend", json!(false));
    }
    if let Some(tpl) = obj_at(obj, &["spec", "template", "spec"]) {
        set_default(tpl, "restartPolicy", json!("Never"));
    }
    default_pod_spec(obj_at(obj, &["spec", "template", "spec"]));
}

fn default_cronjob(obj: &mut Value) {
    if let Some(spec) = obj_at(obj, &["spec"]) {
        set_default(spec, "concurrencyPolicy", json!("Allow"));
        set_default(spec, "suspend", json!(false));
        set_default(spec, "successfulJobsHistoryLimit", json!(3));
        set_default(spec, "failedJobsHistoryLimit", json!(1));
    }
    default_pod_spec(obj_at(
        obj,
        &["spec", "jobTemplate", "spec", "template", "spec"],
    ));
}

fn validate_job(obj: &Value, _old: Option<&Value>, causes: &mut Vec<StatusCause>) {
    check_non_negative(obj, &["spec", "parallelism"], causes);
    check_non_negative(obj, &["spec", "completions"], causes);
    check_non_negative(obj, &["spec", "backoffLimit"], causes);
    validate_pod_template(obj, "spec.template.spec", causes);
}

fn validate_cronjob(obj: &Value, _old: Option<&Value>, causes: &mut Vec<StatusCause>) {
    if get(obj, &["spec", "schedule"])
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        causes.push(required("spec.schedule"));
    }
    if let Some(tpl) = get(obj, &["spec", "jobTemplate"]) {
        validate_pod_template(tpl, "spec.jobTemplate.spec.template.spec", causes);
    } else {
        causes.push(required("spec.jobTemplate"));
    }
}

const JOB_CONTAINERS: &str = "/spec/template/spec/containers";
const CRONJOB_CONTAINERS: &str = "/spec/jobTemplate/spec/template/spec/containers";

const JOB_COLUMNS: &[PrintColumn] = &[
    PrintColumn::new("Name", name),
    PrintColumn::new("Status", |o| json!(job_status(o))),
    PrintColumn::new("Completions", |o| {
        json!(
            match o.pointer("/spec/completions").and_then(Value::as_i64) {
                Some(c) => format!("{}/{c}", i(o, "/status/succeeded")),
                None => format!(
                    "{}/1 of {}",
                    i(o, "/status/succeeded"),
                    o.pointer("/spec/parallelism")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                ),
            }
        )
    }),
    PrintColumn::new("Duration", |o| json!(job_duration(o))),
    PrintColumn::new("Age", age),
    PrintColumn::new("Containers", |o| container_names(o, JOB_CONTAINERS)).wide(),
    PrintColumn::new("Images", |o| container_images(o, JOB_CONTAINERS)).wide(),
    PrintColumn::new("Selector", |o| {
        json!(selector_text(o.pointer("/spec/selector")))
    })
    .wide(),
];

const CRONJOB_COLUMNS: &[PrintColumn] = &[
    PrintColumn::new("Name", name),
    PrintColumn::new("Schedule", |o| json!(s(o, "/spec/schedule"))),
    PrintColumn::new("Timezone", |o| {
        json!(match s(o, "/spec/timeZone") {
            "" => "<none>",
            x => x,
        })
    }),
    PrintColumn::new("Suspend", |o| {
        json!(
            o.pointer("/spec/suspend")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        )
    })
    .typed("boolean"),
    PrintColumn::new("Active", |o| json!(arr(o, "/status/active").len())).typed("integer"),
    PrintColumn::new("Last Schedule", |o| {
        match o
            .pointer("/status/lastScheduleTime")
            .and_then(Value::as_str)
        {
            Some(t) => age_of(Some(t)),
            None => json!("<none>"),
        }
    }),
    PrintColumn::new("Age", age),
    PrintColumn::new("Containers", |o| container_names(o, CRONJOB_CONTAINERS)).wide(),
    PrintColumn::new("Images", |o| container_images(o, CRONJOB_CONTAINERS)).wide(),
    PrintColumn::new("Selector", |o| {
        json!(selector_text(o.pointer("/spec/jobTemplate/spec/selector")))
    })
    .wide(),
];

fn job_duration(obj: &Value) -> String {
    let start = s(obj, "/status/startTime");
    let Ok(start) = DateTime::parse_from_rfc3339(start) else {
        return String::new();
    };
    let end = DateTime::parse_from_rfc3339(s(obj, "/status/completionTime"))
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now());
    human_duration(end.signed_duration_since(start.with_timezone(&Utc)))
}

fn job_status(obj: &Value) -> String {
    let conds = arr(obj, "/status/conditions");
    let has = |t: &str| {
        conds
            .iter()
            .any(|c| s(c, "/type") == t && s(c, "/status") == "True")
    };
    if has("Failed") {
        "Failed".into()
    } else if has("Complete") {
        "Complete".into()
    } else if has("Suspended") {
        "Suspended".into()
    } else if has("FailureTarget") {
        "FailureTarget".into()
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet".into()
    } else {
        "Running".into()
    }
}
