//! The audit log: `DIR/audit.log`, one `audit.k8s.io/v1` `Event` per line at level
//! `Metadata` (never a request or response body), for every mutating request and every
//! denied one.
//!
//! Requests hand their event to a writer thread over a channel, so no request waits on
//! the disk or on another request; the thread writes the lines queued at once in one
//! write, and when busy waits a moment for more.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use chrono::{DateTime, SecondsFormat, Utc};
use flotilla_core::status::ApiError;
use flotilla_core::user::UserInfo;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::request_info::RequestInfo;

/// The file name inside the data dir.
pub(crate) const AUDIT_FILE: &str = "audit.log";

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("audit log {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The most the writer thread gathers into one write.
const AUDIT_WRITE_BYTES: usize = 256 * 1024;

/// How long the writer thread lets lines gather after a write of several: under load it
/// then wakes a few hundred times a second instead of once per request; a quiet server's
/// lines are still written at once.
const AUDIT_BUSY_LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// Verbs whose requests are always audited.
pub(super) const MUTATING_VERBS: &[&str] =
    &["create", "update", "patch", "delete", "deletecollection"];

/// Appends audit events to a file from a background thread.
#[derive(Debug)]
pub(super) struct AuditLog {
    sender: mpsc::Sender<String>,
}

impl AuditLog {
    /// Opens (appending) `DIR/audit.log` and starts its writer thread.
    pub(super) fn open(data_dir: &Path) -> Result<AuditLog, Error> {
        let path = data_dir.join(AUDIT_FILE);
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(|source| Error::Open {
            path: path.clone(),
            source,
        })?;
        let (sender, receiver) = mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || {
                let mut pending = Vec::new();
                while let Ok(line) = receiver.recv() {
                    // The lines queued meanwhile go out with it, in one write: whole lines,
                    // never interleaved, one system call however busy the server is.
                    pending.extend_from_slice(line.as_bytes());
                    let mut lines = 1;
                    while pending.len() < AUDIT_WRITE_BYTES {
                        match receiver.try_recv() {
                            Ok(line) => pending.extend_from_slice(line.as_bytes()),
                            Err(_) => break,
                        }
                        lines += 1;
                    }
                    if let Err(e) = file.write_all(&pending).and_then(|_| file.flush()) {
                        tracing::error!(error = %e, "writing the audit log failed");
                    }
                    pending.clear();
                    if lines > 1 {
                        // Busy: let the next lines gather instead of waking for each one
                        // (a sleeping receiver costs every sender a wake-up).
                        std::thread::sleep(AUDIT_BUSY_LINGER);
                    }
                }
            })
            .map_err(|source| Error::Open {
                path: path.clone(),
                source,
            })?;
        Ok(AuditLog { sender })
    }

    /// Queues one event (never blocks).
    pub(super) fn record(&self, event: &impl Serialize) {
        let mut line = match serde_json::to_string(event) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(error = %e, "an audit event could not be serialized");
                return;
            }
        };
        line.push('\n');
        if self.sender.send(line).is_err() {
            tracing::error!("the audit log writer has stopped");
        }
    }
}

/// Whether a request with this outcome is audited.
pub(super) fn should_audit(info: &RequestInfo, status: u16) -> bool {
    status == 401 || status == 403 || MUTATING_VERBS.contains(&info.verb.as_str())
}

/// Everything an event says about one request.
#[derive(Debug, Clone)]
pub(super) struct Record<'a> {
    pub audit_id: &'a str,
    pub request_uri: &'a str,
    pub info: &'a RequestInfo,
    /// The authenticated caller (`None` when authentication failed).
    pub user: Option<&'a UserInfo>,
    /// The impersonated user, when impersonating.
    pub impersonated: Option<&'a UserInfo>,
    pub source_ip: Option<String>,
    pub user_agent: Option<&'a str>,
    /// The object's name when the path does not carry it (create), if the handler told.
    pub object_name: Option<&'a str>,
    pub code: u16,
    /// For failures: the Status the response carries.
    pub failure: Option<&'a ApiError>,
    /// `authorization.k8s.io/decision` and `.../reason` annotations.
    pub decision: Option<(&'a str, &'a str)>,
    pub received: DateTime<Utc>,
}

/// A user as an audit event names it (`{}` when authentication failed).
#[derive(Debug, Default, Serialize)]
pub(super) struct AuditUser<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<&'a [String]>,
    #[serde(skip_serializing_if = "str::is_empty")]
    uid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    extra: Option<&'a BTreeMap<String, Vec<String>>>,
}

impl<'a> AuditUser<'a> {
    fn of(user: Option<&'a UserInfo>) -> Self {
        let Some(user) = user else {
            return AuditUser::default();
        };
        AuditUser {
            username: Some(&user.username),
            groups: Some(&user.groups),
            uid: &user.uid,
            extra: (!user.extra.is_empty()).then_some(&user.extra),
        }
    }
}

/// The object a request named; empty parts are left out.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ObjectRef<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    resource: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    namespace: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    api_group: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    api_version: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    subresource: &'a str,
}

/// An empty JSON object.
#[derive(Debug, Serialize)]
pub(super) struct Empty {}

/// The response's Status: its code, and for failures what the Status body says.
#[derive(Debug, Serialize)]
pub(super) struct ResponseStatus {
    metadata: Empty,
    code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Value>,
}

/// The authorizer's decision and reason.
#[derive(Debug, Serialize)]
pub(super) struct Annotations<'a> {
    #[serde(rename = "authorization.k8s.io/decision")]
    decision: &'a str,
    #[serde(
        rename = "authorization.k8s.io/reason",
        skip_serializing_if = "str::is_empty"
    )]
    reason: &'a str,
}

/// The `audit.k8s.io/v1 Event` of one request, serialized straight from the request's
/// parts (one line of the log; no intermediate JSON tree).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Event<'a> {
    kind: &'static str,
    api_version: &'static str,
    level: &'static str,
    #[serde(rename = "auditID")]
    audit_id: &'a str,
    stage: &'static str,
    #[serde(rename = "requestURI")]
    request_uri: &'a str,
    verb: &'a str,
    user: AuditUser<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    impersonated_user: Option<AuditUser<'a>>,
    #[serde(rename = "sourceIPs", skip_serializing_if = "Option::is_none")]
    source_ips: Option<[&'a str; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object_ref: Option<ObjectRef<'a>>,
    response_status: ResponseStatus,
    request_received_timestamp: String,
    stage_timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<Annotations<'a>>,
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn response_status(code: u16, failure: Option<&ApiError>) -> ResponseStatus {
    let mut status = ResponseStatus {
        metadata: Empty {},
        code,
        status: None,
        message: None,
        reason: None,
        details: None,
    };
    if let Some(failure) = failure {
        let full = failure.to_status();
        status.status = full.get("status").cloned();
        status.message = full.get("message").cloned();
        status.reason = full.get("reason").cloned();
        status.details = full.get("details").cloned();
    }
    status
}

/// The `audit.k8s.io/v1 Event` for a finished request.
pub(super) fn event<'a>(r: &'a Record<'a>) -> Event<'a> {
    let info = r.info;
    let name = if info.name.is_empty() {
        r.object_name.unwrap_or("")
    } else {
        &info.name
    };
    Event {
        kind: "Event",
        api_version: "audit.k8s.io/v1",
        level: "Metadata",
        audit_id: r.audit_id,
        stage: "ResponseComplete",
        request_uri: r.request_uri,
        verb: &info.verb,
        user: AuditUser::of(r.user),
        impersonated_user: r.impersonated.map(|u| AuditUser::of(Some(u))),
        source_ips: r.source_ip.as_deref().map(|ip| [ip]),
        user_agent: r.user_agent,
        object_ref: info.is_resource_request.then(|| ObjectRef {
            resource: &info.resource,
            namespace: &info.namespace,
            name,
            api_group: &info.api_group,
            api_version: &info.api_version,
            subresource: &info.subresource,
        }),
        response_status: response_status(r.code, r.failure),
        request_received_timestamp: timestamp(r.received),
        stage_timestamp: timestamp(Utc::now()),
        annotations: r
            .decision
            .map(|(decision, reason)| Annotations { decision, reason }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_shape() {
        let info = crate::request_info::parse(
            &http::Method::POST,
            "/api/v1/namespaces/demo/configmaps",
            &Default::default(),
        );
        let alice = UserInfo::new("alice", vec!["system:authenticated".into()]);
        let bob = UserInfo::new("bob", vec!["system:authenticated".into()]);
        let record = Record {
            audit_id: "id-1",
            request_uri: "/api/v1/namespaces/demo/configmaps?fieldManager=kubectl",
            info: &info,
            user: Some(&alice),
            impersonated: Some(&bob),
            source_ip: Some("127.0.0.1".into()),
            user_agent: Some("kubectl/v1.33"),
            object_name: Some("cfg"),
            code: 201,
            failure: None,
            decision: Some(("allow", "")),
            received: Utc::now(),
        };
        let e = serde_json::to_value(event(&record)).unwrap();
        assert_eq!(e["verb"], "create");
        assert_eq!(e["user"]["username"], "alice");
        assert_eq!(e["impersonatedUser"]["username"], "bob");
        assert_eq!(
            e["objectRef"],
            json!({"resource":"configmaps","namespace":"demo","name":"cfg","apiVersion":"v1"})
        );
        assert_eq!(e["responseStatus"]["code"], 201);
        assert_eq!(e["sourceIPs"], json!(["127.0.0.1"]));
        assert!(
            e["requestReceivedTimestamp"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
        assert!(should_audit(&info, 201));
        // The line keeps the field order the log always had.
        let line = serde_json::to_string(&event(&record)).unwrap();
        let head = concat!(
            r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"id-1","#,
            r#""stage":"ResponseComplete","#,
            r#""requestURI":"/api/v1/namespaces/demo/configmaps?fieldManager=kubectl","verb":"create","#,
            r#""user":{"username":"alice","groups":["system:authenticated"]},"#,
            r#""impersonatedUser":{"username":"bob","groups":["system:authenticated"]},"#,
            r#""sourceIPs":["127.0.0.1"],"userAgent":"kubectl/v1.33","#,
            r#""objectRef":{"resource":"configmaps","namespace":"demo","name":"cfg","apiVersion":"v1"},"#,
            r#""responseStatus":{"metadata":{},"code":201},"requestReceivedTimestamp":""#,
        );
        assert!(line.starts_with(head), "{line}");
        assert!(
            line.ends_with(r#""annotations":{"authorization.k8s.io/decision":"allow"}}"#),
            "{line}"
        );
    }

    #[test]
    fn a_failure_carries_its_status() {
        let info = crate::request_info::parse(
            &http::Method::POST,
            "/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings",
            &Default::default(),
        );
        let mut refused = ApiError::forbidden("not held");
        refused.name = Some("root".into());
        let record = Record {
            audit_id: "id-2",
            request_uri: "/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings",
            info: &info,
            user: None,
            impersonated: None,
            source_ip: None,
            user_agent: None,
            object_name: Some("root"),
            code: 403,
            failure: Some(&refused),
            decision: Some(("allow", "RBAC: allowed by ...")),
            received: Utc::now(),
        };
        let e = serde_json::to_value(event(&record)).unwrap();
        let status = &e["responseStatus"];
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["reason"], "Forbidden");
        assert_eq!(status["code"], 403);
        assert_eq!(status["message"], refused.message);
        assert_eq!(status["details"]["name"], "root");
        assert!(status.get("kind").is_none());
        assert_eq!(e["annotations"]["authorization.k8s.io/decision"], "allow");
        assert_eq!(
            e["annotations"]["authorization.k8s.io/reason"],
            "RBAC: allowed by ..."
        );
    }

    #[test]
    fn lines_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.record(&json!({"a": 1}));
        log.record(&json!({"b": 2}));
        let path = dir.path().join(AUDIT_FILE);
        for _ in 0..200 {
            let text = std::fs::read_to_string(&path).unwrap();
            if text.lines().count() == 2 {
                assert_eq!(text, "{\"a\":1}\n{\"b\":2}\n");
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("audit lines not written");
    }
}
