//! Executes a `notification` step: each service's URL (given, or read from a Secret in the
//! application's namespace as the application's user), then one JSON POST per service. A
//! service that cannot be reached or refuses the message fails the step (retried with the
//! other failed steps; services that took the message are sent it again then).

use std::time::Duration;

use flotilla_apis::WorkflowStep;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::super::member_clients::impersonating;
use super::super::notification::{self, Notice, UrlSource};
use super::super::workflow::Outcome;
use super::deploy::Pass;

/// Sends every message of the step.
pub(crate) async fn send(pass: &Pass<'_>, step: &WorkflowStep) -> Outcome {
    let notices = match notification::parse(step) {
        Ok(n) => n,
        Err(e) => return Outcome::Failed(format!("step {}: {e}", step.name)),
    };
    // reqwest is built without a default crypto provider (https:// webhooks).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(format!("notification client: {e}")),
    };
    for notice in &notices {
        if let Err(e) = post(pass, &client, notice).await {
            return Outcome::Failed(format!(
                "step {}: {} notification failed: {e}",
                step.name,
                notice.service.name()
            ));
        }
    }
    Outcome::Succeeded
}

async fn post(pass: &Pass<'_>, client: &reqwest::Client, notice: &Notice) -> Result<(), String> {
    let url = url(pass, &notice.url).await?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err("the URL must be http:// or https://".into());
    }
    let response = client
        .post(&url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(notice.body.to_string())
        .send()
        .await
        .map_err(|e| format!("POST: {e}"))?;
    let status = response.status().as_u16();
    let reply = response.text().await.unwrap_or_default();
    notification::check_reply(notice.service, status, &reply)
}

async fn url(pass: &Pass<'_>, source: &UrlSource) -> Result<String, String> {
    if let Some(value) = &source.value {
        return Ok(value.trim().to_string());
    }
    let Some(secret_ref) = &source.secret_ref else {
        return Err("no url".into());
    };
    let hub_as_user = impersonating(pass.ctx.hub_client.clone(), &pass.identity);
    let secrets: Api<Secret> = Api::namespaced(hub_as_user, &pass.app_namespace);
    let secret = secrets
        .get_opt(&secret_ref.name)
        .await
        .map_err(|e| format!("secret {}: {e}", secret_ref.name))?
        .ok_or_else(|| format!("secret {} not found", secret_ref.name))?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&secret_ref.key))
        .ok_or_else(|| format!("secret {} has no key {}", secret_ref.name, secret_ref.key))?;
    String::from_utf8(bytes.0.clone())
        .map(|s| s.trim().to_string())
        .map_err(|_| {
            format!(
                "secret {} key {} is not text",
                secret_ref.name, secret_ref.key
            )
        })
}
