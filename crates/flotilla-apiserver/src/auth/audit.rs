//! The audit log: `DIR/audit.log`, one `audit.k8s.io/v1` `Event` per line at level
//! `Metadata` (never a request or response body), for every mutating request and every
//! denied one.
//!
//! Requests hand their event to a writer thread over a channel, so no request waits on
//! the disk or on another request; the thread writes and flushes each line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use chrono::{DateTime, SecondsFormat, Utc};
use flotilla_core::status::ApiError;
use flotilla_core::user::UserInfo;
use serde_json::{Value, json};

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
                    while pending.len() < AUDIT_WRITE_BYTES {
                        match receiver.try_recv() {
                            Ok(line) => pending.extend_from_slice(line.as_bytes()),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = file.write_all(&pending).and_then(|_| file.flush()) {
                        tracing::error!(error = %e, "writing the audit log failed");
                    }
                    pending.clear();
                }
            })
            .map_err(|source| Error::Open {
                path: path.clone(),
                source,
            })?;
        Ok(AuditLog { sender })
    }

    /// Queues one event (never blocks).
    pub(super) fn record(&self, event: &Value) {
        let mut line = event.to_string();
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

fn user_json(user: &UserInfo) -> Value {
    let mut v = json!({"username": user.username, "groups": user.groups});
    if !user.uid.is_empty() {
        v["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        v["extra"] = json!(user.extra);
    }
    v
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The `audit.k8s.io/v1 Event` for a finished request.
pub(super) fn event(r: &Record<'_>) -> Value {
    let info = r.info;
    let mut event = json!({
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": r.audit_id,
        "stage": "ResponseComplete",
        "requestURI": r.request_uri,
        "verb": info.verb,
        "user": match r.user {
            Some(u) => user_json(u),
            None => json!({}),
        },
    });
    if let Some(imp) = r.impersonated {
        event["impersonatedUser"] = user_json(imp);
    }
    if let Some(ip) = &r.source_ip {
        event["sourceIPs"] = json!([ip]);
    }
    if let Some(ua) = r.user_agent {
        event["userAgent"] = json!(ua);
    }
    if info.is_resource_request {
        let mut object_ref = serde_json::Map::new();
        let mut put = |k: &str, v: &str| {
            if !v.is_empty() {
                object_ref.insert(k.into(), json!(v));
            }
        };
        put("resource", &info.resource);
        put("namespace", &info.namespace);
        put(
            "name",
            if info.name.is_empty() {
                r.object_name.unwrap_or("")
            } else {
                &info.name
            },
        );
        put("apiGroup", &info.api_group);
        put("apiVersion", &info.api_version);
        put("subresource", &info.subresource);
        event["objectRef"] = Value::Object(object_ref);
    }
    let mut status = json!({"metadata": {}, "code": r.code});
    if let Some(failure) = r.failure {
        let full = failure.to_status();
        for field in ["status", "message", "reason", "details"] {
            if let Some(v) = full.get(field) {
                status[field] = v.clone();
            }
        }
    }
    event["responseStatus"] = status;
    event["requestReceivedTimestamp"] = json!(timestamp(r.received));
    event["stageTimestamp"] = json!(timestamp(Utc::now()));
    if let Some((decision, reason)) = r.decision {
        let mut annotations = json!({"authorization.k8s.io/decision": decision});
        if !reason.is_empty() {
            annotations["authorization.k8s.io/reason"] = json!(reason);
        }
        event["annotations"] = annotations;
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_shape() {
        let info = crate::request_info::parse(
            &http::Method::POST,
            "/api/v1/namespaces/demo/configmaps",
            &Default::default(),
        );
        let alice = UserInfo::new("alice", vec!["system:authenticated".into()]);
        let bob = UserInfo::new("bob", vec!["system:authenticated".into()]);
        let e = event(&Record {
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
        });
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
        let e = event(&Record {
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
        });
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
