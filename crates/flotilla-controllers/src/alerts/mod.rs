//! Fleet alerts: the rules of ConfigMap `vela-system/flotilla-alerts` ([`rules`]) evaluated
//! every round ([`evaluate`]) against the hub's ManagedClusters and Applications; every
//! firing or resolved alert becomes an Event and a webhook message ([`notify`]).
//!
//! Calling order each round: read the rule set → observe clusters and applications →
//! evaluate each rule → notify. The state (since when a condition holds, what is firing)
//! lives in this hub process's memory.

pub(crate) mod evaluate;
pub(crate) mod notify;
pub(crate) mod rules;

use std::collections::BTreeSet;
use std::time::Duration;

use flotilla_apis::Application;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};

use crate::cluster::managed_cluster;
use evaluate::{AlertState, Subject};
use rules::{Rule, RuleSet, RuleType};

/// Evaluates the rules every `interval` until the future is dropped.
pub(crate) async fn run(hub_client: kube::Client, interval: Duration) -> anyhow::Result<()> {
    let mut state = AlertState::default();
    loop {
        match load(&hub_client).await {
            Ok(set) => round(&hub_client, &mut state, &set).await,
            Err(e) => tracing::warn!(error = %e, "alert rules not loaded"),
        }
        tokio::time::sleep(interval).await;
    }
}

/// The rule set (empty when the ConfigMap does not exist).
async fn load(hub_client: &kube::Client) -> anyhow::Result<RuleSet> {
    let configmaps: Api<ConfigMap> = Api::namespaced(hub_client.clone(), rules::NAMESPACE);
    let Some(cm) = configmaps.get_opt(rules::CONFIGMAP).await? else {
        return Ok(RuleSet::default());
    };
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(rules::KEY))
        .cloned()
        .unwrap_or_default();
    Ok(rules::parse(&text)?)
}

async fn round(hub_client: &kube::Client, state: &mut AlertState, set: &RuleSet) {
    state.retain_rules(&set.rules.iter().map(|r| r.name.clone()).collect());
    let now = chrono::Utc::now().timestamp();
    for rule in &set.rules {
        let bad = match observe(hub_client, rule.rule_type).await {
            Ok(bad) => bad,
            Err(e) => {
                tracing::debug!(error = %e, rule = %rule.name, "observing for an alert rule");
                continue;
            }
        };
        for transition in state.step(now, rule, &bad) {
            announce(hub_client, set, rule, &transition).await;
        }
    }
}

async fn announce(
    hub_client: &kube::Client,
    set: &RuleSet,
    rule: &Rule,
    transition: &evaluate::Transition,
) {
    let text = notify::message(transition, &humantime(rule.for_duration));
    tracing::info!(alert = %text, "alert");
    if let Err(e) = notify::event(hub_client, transition, &text).await {
        tracing::warn!(error = %e, "alert Event");
    }
    for webhook in &set.webhooks {
        if let Err(e) = notify::post(webhook, &text).await {
            tracing::warn!(error = %e, "alert webhook");
        }
    }
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// The subjects whose condition holds now.
async fn observe(
    hub_client: &kube::Client,
    rule_type: RuleType,
) -> anyhow::Result<BTreeSet<Subject>> {
    Ok(match rule_type {
        RuleType::ClusterUnavailable => managed_cluster::api(hub_client)
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|c| !managed_cluster::is_available(c))
            .filter_map(|c| c.metadata.name.clone().map(Subject::Cluster))
            .collect(),
        RuleType::ApplicationUnhealthy => Api::<Application>::all(hub_client.clone())
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|a| unhealthy(a))
            .map(|a| {
                Subject::Application(
                    a.metadata.namespace.clone().unwrap_or_default(),
                    a.metadata.name.clone().unwrap_or_default(),
                )
            })
            .collect(),
    })
}

/// Phase `unhealthy`, or a dispatched service (or trait) that is not healthy.
fn unhealthy(app: &Application) -> bool {
    let Some(status) = &app.status else {
        return false;
    };
    status.status.as_deref() == Some("unhealthy")
        || status
            .services
            .iter()
            .any(|s| !s.healthy || s.traits.iter().any(|t| !t.healthy))
}
