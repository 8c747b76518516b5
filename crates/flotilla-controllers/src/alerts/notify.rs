//! Telling people: an Event on the hub for every transition, and a POST to every configured
//! webhook in the message format of the workflow's notification step (slack, dingding, lark).

use k8s_openapi::api::core::v1::{Event, ObjectReference};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::evaluate::{Subject, Transition};
use super::rules::{NAMESPACE, Webhook, WebhookKind};

/// Errors telling people about an alert.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The hub refused the Event.
    #[error("creating the alert Event: {0}")]
    Event(#[source] Box<kube::Error>),
    /// The Event could not be built.
    #[error("building the alert Event: {0}")]
    Build(String),
    /// A webhook URL does not parse.
    #[error("webhook URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The webhook did not take the message.
    #[error("posting to webhook {url}: {source}")]
    Post {
        /// The URL.
        url: String,
        /// The failure.
        #[source]
        source: Box<kube::Error>,
    },
}

/// The one-line text of a transition.
pub(crate) fn message(t: &Transition, for_text: &str) -> String {
    let condition = match &t.subject {
        Subject::Cluster(_) => "unavailable",
        Subject::Application(..) => "unhealthy",
    };
    if t.firing {
        format!(
            "[FIRING] {}: {} {condition} for more than {for_text}",
            t.rule, t.subject
        )
    } else {
        format!(
            "[RESOLVED] {}: {} is no longer {condition}",
            t.rule, t.subject
        )
    }
}

/// The webhook body for `text`, as the notification step sends it.
pub(crate) fn body(kind: WebhookKind, text: &str) -> Value {
    match kind {
        WebhookKind::Slack => json!({"text": text}),
        WebhookKind::Dingding => json!({"msgtype": "text", "text": {"content": text}}),
        WebhookKind::Lark => json!({"msg_type": "text", "content": {"text": text}}),
    }
}

/// Records the transition as an Event about its subject.
pub(crate) async fn event(
    hub_client: &kube::Client,
    t: &Transition,
    text: &str,
) -> Result<(), Error> {
    let (namespace, involved) = match &t.subject {
        Subject::Cluster(name) => (
            NAMESPACE.to_string(),
            ObjectReference {
                api_version: Some("cluster.open-cluster-management.io/v1".into()),
                kind: Some("ManagedCluster".into()),
                name: Some(name.clone()),
                ..Default::default()
            },
        ),
        Subject::Application(ns, name) => (
            ns.clone(),
            ObjectReference {
                api_version: Some("core.oam.dev/v1beta1".into()),
                kind: Some("Application".into()),
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
        ),
    };
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let event: Event = serde_json::from_value(json!({
        "metadata": {"generateName": "flotilla-alert-", "namespace": namespace},
        "involvedObject": involved,
        "reason": if t.firing { "AlertFiring" } else { "AlertResolved" },
        "message": text,
        "type": if t.firing { "Warning" } else { "Normal" },
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "source": {"component": "flotilla-alerts"},
    }))
    .map_err(|e| Error::Build(e.to_string()))?;
    Api::<Event>::namespaced(hub_client.clone(), &namespace)
        .create(&PostParams::default(), &event)
        .await
        .map_err(|e| Error::Event(Box::new(e)))?;
    Ok(())
}

/// POSTs `text` to `webhook` (http or https; https is verified against the system's roots).
pub(crate) async fn post(webhook: &Webhook, text: &str) -> Result<(), Error> {
    let url_error = |reason: String| Error::Url {
        url: webhook.url.clone(),
        reason,
    };
    let uri: http::Uri = webhook.url.parse().map_err(|e| url_error(format!("{e}")))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(url_error("not an absolute http(s) URL".into()));
    };
    if scheme != "http" && scheme != "https" {
        return Err(url_error("not an http(s) URL".into()));
    }
    let origin: http::Uri = format!("{scheme}://{authority}")
        .parse()
        .map_err(|e| url_error(format!("{e}")))?;
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut config = kube::Config::new(origin);
    config.connect_timeout = Some(std::time::Duration::from_secs(5));
    config.read_timeout = Some(std::time::Duration::from_secs(10));
    let client = kube::Client::try_from(config).map_err(|e| url_error(e.to_string()))?;
    let request = http::Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body(webhook.kind, text).to_string().into_bytes())
        .map_err(|e| url_error(e.to_string()))?;
    client
        .request_text(request)
        .await
        .map(|_| ())
        .map_err(|source| Error::Post {
            url: webhook.url.clone(),
            source: Box::new(source),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_follow_each_services_format() {
        assert_eq!(body(WebhookKind::Slack, "hi"), json!({"text": "hi"}));
        assert_eq!(
            body(WebhookKind::Dingding, "hi"),
            json!({"msgtype": "text", "text": {"content": "hi"}})
        );
        assert_eq!(
            body(WebhookKind::Lark, "hi"),
            json!({"msg_type": "text", "content": {"text": "hi"}})
        );
    }

    #[test]
    fn messages_name_the_rule_and_subject() {
        let t = Transition {
            rule: "down".into(),
            subject: Subject::Cluster("prod".into()),
            firing: true,
        };
        assert_eq!(
            message(&t, "30s"),
            "[FIRING] down: cluster prod unavailable for more than 30s"
        );
        let t = Transition {
            firing: false,
            subject: Subject::Application("demo".into(), "web".into()),
            ..t
        };
        assert_eq!(
            message(&t, "30s"),
            "[RESOLVED] down: application demo/web is no longer unhealthy"
        );
    }
}
