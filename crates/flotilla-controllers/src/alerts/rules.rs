//! The alert rule set: ConfigMap `vela-system/flotilla-alerts`, key `rules.yaml`.
//!
//! ```yaml
//! rules:
//! - name: cluster-down
//!   type: ClusterUnavailable        # a member's ManagedClusterConditionAvailable is not True
//!   for: 30s
//! - name: app-unhealthy
//!   type: ApplicationUnhealthy      # an Application's phase is unhealthy or a service is not healthy
//!   for: 2m
//! webhooks:
//! - type: slack                     # slack | dingding | lark
//!   url: https://hooks.slack.com/services/...
//! ```

use std::time::Duration;

use serde::Deserialize;

/// Namespace of the rule ConfigMap.
pub(crate) const NAMESPACE: &str = "vela-system";
/// Name of the rule ConfigMap.
pub(crate) const CONFIGMAP: &str = "flotilla-alerts";
/// Its data key.
pub(crate) const KEY: &str = "rules.yaml";

/// Errors reading the rule set.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// `rules.yaml` is not valid YAML of the expected shape.
    #[error("ConfigMap {NAMESPACE}/{CONFIGMAP} key {KEY}: {0}")]
    Parse(String),
    /// A rule's `for` is not a duration.
    #[error("rule {rule}: `for: {value}` is not a duration (e.g. 30s, 5m, 1h)")]
    Duration {
        /// The rule's name.
        rule: String,
        /// What was given.
        value: String,
    },
}

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum RuleType {
    /// A member cluster is unavailable.
    ClusterUnavailable,
    /// An application is unhealthy.
    ApplicationUnhealthy,
}

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rule {
    /// Its name (in Events and messages).
    pub name: String,
    /// What it watches.
    pub rule_type: RuleType,
    /// How long the condition must hold before the alert fires.
    pub for_duration: Duration,
}

/// Where alerts are posted, in the notification step's formats.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Webhook {
    /// `slack`, `dingding` or `lark`.
    #[serde(rename = "type")]
    pub kind: WebhookKind,
    /// The webhook URL.
    pub url: String,
}

/// A webhook's message format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum WebhookKind {
    /// `{"text": ...}`
    Slack,
    /// `{"msgtype": "text", "text": {"content": ...}}`
    Dingding,
    /// `{"msg_type": "text", "content": {"text": ...}}`
    Lark,
}

/// The whole rule set.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RuleSet {
    /// The rules.
    pub rules: Vec<Rule>,
    /// The webhooks every alert goes to.
    pub webhooks: Vec<Webhook>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(rename = "type")]
    rule_type: RuleType,
    #[serde(rename = "for", default)]
    for_duration: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRuleSet {
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    webhooks: Vec<Webhook>,
}

/// Parses `rules.yaml`.
pub(crate) fn parse(text: &str) -> Result<RuleSet, Error> {
    let raw: RawRuleSet = if text.trim().is_empty() {
        RawRuleSet::default()
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| Error::Parse(e.to_string()))?
    };
    let rules = raw
        .rules
        .into_iter()
        .map(|r| {
            let value = r.for_duration.unwrap_or_else(|| "0s".into());
            let for_duration = parse_duration(&value).ok_or(Error::Duration {
                rule: r.name.clone(),
                value,
            })?;
            Ok(Rule {
                name: r.name,
                rule_type: r.rule_type,
                for_duration,
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(RuleSet {
        rules,
        webhooks: raw.webhooks,
    })
}

/// `90s`, `5m`, `1h`, `1m30s`.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return None,
        };
    }
    if !number.is_empty() {
        return None;
    }
    Some(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules_and_webhooks() {
        let set = parse(
            "rules:\n- name: down\n  type: ClusterUnavailable\n  for: 1m30s\n\
             webhooks:\n- type: lark\n  url: http://127.0.0.1:1/h\n",
        )
        .unwrap();
        assert_eq!(set.rules[0].for_duration, Duration::from_secs(90));
        assert_eq!(set.rules[0].rule_type, RuleType::ClusterUnavailable);
        assert_eq!(set.webhooks[0].kind, WebhookKind::Lark);
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        let e = parse("rules:\n- name: x\n  type: ClusterUnavailable\n  for: soon\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "rule x: `for: soon` is not a duration (e.g. 30s, 5m, 1h)"
        );
        let e = parse("rules:\n- name: x\n  type: DiskFull\n").unwrap_err();
        assert!(e.to_string().contains("DiskFull"), "{e}");
        assert!(parse("").unwrap().rules.is_empty());
    }
}
