//! The `notification` workflow step: KubeVela's properties (`slack`, `dingding`, `lark`, each
//! with `url.value` or `url.secretRef` and a `message`) and what each service is sent and
//! answers. Pure; `reconcile/notification.rs` reads the Secrets and POSTs.

use flotilla_apis::WorkflowStep;
use serde::Deserialize;
use serde_json::{Value, json};

/// Where a webhook URL comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UrlSource {
    /// The URL itself.
    #[serde(default)]
    pub value: Option<String>,
    /// A key of a Secret in the application's namespace holding the URL.
    #[serde(default)]
    pub secret_ref: Option<SecretRef>,
}

/// `url.secretRef`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct SecretRef {
    /// Secret name.
    pub name: String,
    /// Key in the Secret's data.
    pub key: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Channel {
    url: UrlSource,
    #[serde(default)]
    message: Value,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Properties {
    #[serde(default)]
    slack: Option<Channel>,
    #[serde(default)]
    dingding: Option<Channel>,
    #[serde(default)]
    lark: Option<Channel>,
    #[serde(default)]
    email: Option<Value>,
}

/// The services a notification goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    /// A Slack incoming webhook.
    Slack,
    /// A DingTalk robot.
    DingTalk,
    /// A Lark (Feishu) bot.
    Lark,
}

impl Service {
    /// The property name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Service::Slack => "slack",
            Service::DingTalk => "dingding",
            Service::Lark => "lark",
        }
    }
}

/// One message to POST.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Notice {
    /// The service.
    pub service: Service,
    /// Where its URL comes from.
    pub url: UrlSource,
    /// The JSON body, as the service expects it.
    pub body: Value,
}

/// The step's messages, in the order slack, dingding, lark; an error names what is wrong.
pub(crate) fn parse(step: &WorkflowStep) -> Result<Vec<Notice>, String> {
    let props: Properties = match &step.properties {
        None | Some(Value::Null) => Properties::default(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| e.to_string())?,
    };
    if props.email.is_some() {
        return Err("email notifications are not supported (slack, dingding, lark are)".into());
    }
    let mut notices = Vec::new();
    for (service, channel) in [
        (Service::Slack, props.slack),
        (Service::DingTalk, props.dingding),
        (Service::Lark, props.lark),
    ] {
        let Some(channel) = channel else { continue };
        let name = service.name();
        if channel.url.value.is_some() == channel.url.secret_ref.is_some() {
            return Err(format!("{name}.url needs either value or secretRef"));
        }
        let body = body(service, channel.message).map_err(|e| format!("{name}.message: {e}"))?;
        notices.push(Notice {
            service,
            url: channel.url,
            body,
        });
    }
    if notices.is_empty() {
        return Err("a notification needs slack, dingding or lark".into());
    }
    Ok(notices)
}

/// The body each service takes: Slack's payload and DingTalk's message as given (DingTalk's
/// `msgtype` defaulting to `text`), Lark's `{msg_type, content}` with `content` (a JSON
/// string in KubeVela's properties) decoded to the object Lark expects.
fn body(service: Service, message: Value) -> Result<Value, String> {
    let Value::Object(mut message) = message else {
        return Err("must be an object".into());
    };
    match service {
        Service::Slack => {
            if !message.get("text").is_some_and(Value::is_string) {
                return Err("text (a string) is required".into());
            }
        }
        Service::DingTalk => {
            message
                .entry("msgtype")
                .or_insert_with(|| Value::String("text".into()));
        }
        Service::Lark => {
            let msg_type = message.get("msg_type").and_then(Value::as_str);
            let content = message.get("content").and_then(Value::as_str);
            let (Some(msg_type), Some(content)) = (msg_type, content) else {
                return Err("msg_type and content (strings) are required".into());
            };
            let content: Value = serde_json::from_str(content)
                .map_err(|e| format!("content is not a JSON string: {e}"))?;
            return Ok(json!({"msg_type": msg_type, "content": content}));
        }
    }
    Ok(Value::Object(message))
}

/// Whether the service took the message: a 2xx status, and for DingTalk and Lark a zero
/// `errcode` / `code` in the answer.
pub(crate) fn check_reply(service: Service, status: u16, reply: &str) -> Result<(), String> {
    let short: String = reply.trim().chars().take(200).collect();
    if !(200..300).contains(&status) {
        return Err(format!("{} answered {status}: {short}", service.name()));
    }
    let answer: Value = serde_json::from_str(reply).unwrap_or(Value::Null);
    let code = match service {
        Service::Slack => None,
        Service::DingTalk => answer.get("errcode"),
        Service::Lark => answer.get("code").or_else(|| answer.get("StatusCode")),
    };
    match code.and_then(Value::as_i64) {
        Some(code) if code != 0 => Err(format!(
            "{} refused the message ({code}): {short}",
            service.name()
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(properties: Value) -> WorkflowStep {
        WorkflowStep {
            name: "notify".into(),
            step_type: "notification".into(),
            properties: Some(properties),
            ..Default::default()
        }
    }

    #[test]
    fn bodies_are_what_each_service_expects() {
        let notices = parse(&step(json!({
            "lark": {"url": {"value": "http://l"},
                     "message": {"msg_type": "text", "content": "{\"text\":\"hi\"}"}},
            "slack": {"url": {"value": "http://s"}, "message": {"text": "hello"}},
            "dingding": {"url": {"secretRef": {"name": "hooks", "key": "ding"}},
                         "message": {"text": {"content": "hey"}}},
        })))
        .unwrap();
        let services: Vec<Service> = notices.iter().map(|n| n.service).collect();
        assert_eq!(services, [Service::Slack, Service::DingTalk, Service::Lark]);
        assert_eq!(notices[0].body, json!({"text": "hello"}));
        assert_eq!(
            notices[1].body,
            json!({"msgtype": "text", "text": {"content": "hey"}})
        );
        assert_eq!(notices[1].url.secret_ref.as_ref().unwrap().key, "ding");
        assert_eq!(
            notices[2].body,
            json!({"msg_type": "text", "content": {"text": "hi"}})
        );
    }

    #[test]
    fn bad_properties_say_what_is_wrong() {
        let err = |p: Value| parse(&step(p)).unwrap_err();
        assert_eq!(
            err(json!({})),
            "a notification needs slack, dingding or lark"
        );
        assert_eq!(
            err(json!({"slack": {"url": {}, "message": {"text": "x"}}})),
            "slack.url needs either value or secretRef"
        );
        assert_eq!(
            err(json!({"slack": {"url": {"value": "u"}, "message": {}}})),
            "slack.message: text (a string) is required"
        );
        assert!(err(json!({"email": {}})).contains("not supported"));
    }

    #[test]
    fn replies() {
        assert!(check_reply(Service::Slack, 200, "ok").is_ok());
        assert!(check_reply(Service::Slack, 404, "no_service").is_err());
        assert!(check_reply(Service::DingTalk, 200, r#"{"errcode":0}"#).is_ok());
        let refused = check_reply(Service::DingTalk, 200, r#"{"errcode":310000}"#);
        assert!(refused.unwrap_err().contains("310000"));
        assert!(check_reply(Service::Lark, 200, r#"{"code":19001,"msg":"x"}"#).is_err());
        assert!(check_reply(Service::Lark, 200, r#"{"StatusCode":0}"#).is_ok());
    }
}
