//! A list-then-watch of one member resource that keeps only its objects' `namespace/name`.
//!
//! The controller follows every available member with two of these (ServiceExports and
//! ServiceImports), so what one costs while idle is multiplied by the fleet. kube's `watcher`
//! held ~33 KiB per watch on the hub (docs/benchmarks.md, "The hub's memory with 1,000 idle
//! members"): its state machine with the list and watch requests' futures inline, an 8 KiB
//! line buffer and each decoded object. Here an idle watch holds its response body, the
//! resourceVersion and a line buffer that is released whenever no partial line is pending;
//! the requests' futures are boxed only while they run, and events are decoded into the
//! three metadata fields the controller reads.

use std::collections::BTreeSet;
use std::time::Duration;

use http_body_util::BodyExt as _;
use kube::api::{ApiResource, DynamicObject, ListParams, WatchParams};
use serde::Deserialize;

use crate::multiplexed_client::{PlainClient, PlainError};

/// How long the member keeps a watch open before it ends it (the watch then resumes from the
/// last resourceVersion), as kube's `watcher` asks.
const WATCH_TIMEOUT_SECS: u32 = 290;
/// Retries after a failed list or watch wait from this long, doubling up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What a watch learnt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Update {
    /// A (re)list: the objects present now.
    Listed(BTreeSet<String>),
    /// An object was added or changed.
    Applied(String),
    /// An object was deleted.
    Deleted(String),
}

/// A list's objects and the resourceVersion to watch from.
#[derive(Debug)]
pub(crate) struct Listing {
    names: BTreeSet<String>,
    version: String,
}

/// Why a watch stopped.
#[derive(Debug)]
enum End {
    /// The member closed it (its timeout): watch again from the last resourceVersion.
    Closed,
    /// The resourceVersion is too old (410) or unknown: list again.
    Expired,
    /// A transport or protocol failure: list again after a pause.
    Failed(String),
}

#[derive(Debug, Default, Deserialize)]
struct Metadata {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default, rename = "resourceVersion")]
    resource_version: String,
}

impl Metadata {
    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    metadata: Metadata,
    /// A Status (in an ERROR event) carries its HTTP code.
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    items: Vec<Named>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    object: Named,
}

/// The collection URL of `resource` in every namespace.
fn url(resource: &ApiResource) -> String {
    <DynamicObject as kube::Resource>::url_path(resource, None)
}

/// Lists `resource` in every namespace of the member.
pub(crate) async fn list(
    client: &PlainClient,
    resource: &ApiResource,
) -> Result<Listing, PlainError> {
    let request = kube::core::Request::new(url(resource))
        .list(&ListParams::default())
        .map_err(|e| PlainError::Transport(e.to_string()))?;
    // Boxed: the request's future is large and lives only while the list runs.
    let body = Box::pin(client.read(request.map(kube::client::Body::from))).await?;
    let list: List = serde_json::from_slice(&body)
        .map_err(|e| PlainError::Transport(format!("a list of {}: {e}", resource.plural)))?;
    Ok(Listing {
        names: list.items.iter().map(|o| o.metadata.key()).collect(),
        version: list.metadata.resource_version,
    })
}

/// Keeps `resource` of the member followed until the future is dropped: reports `first` (or,
/// if it failed, a list retried after a pause), then every change its watch sees, and a new
/// list whenever the watch cannot resume (`on` gets each [`Update`]).
pub(crate) async fn follow(
    client: &PlainClient,
    resource: &ApiResource,
    first: Result<Listing, PlainError>,
    mut on: impl FnMut(Update),
) {
    let mut backoff = MIN_BACKOFF;
    let mut listing = first;
    loop {
        let mut version = match listing {
            Ok(Listing { names, version }) => {
                on(Update::Listed(names));
                version
            }
            Err(e) => {
                tracing::debug!(error = %e, resource = %resource.plural, "listing a member's resource");
                backoff = pause(backoff).await;
                listing = list(client, resource).await;
                continue;
            }
        };
        loop {
            let started = tokio::time::Instant::now();
            match watch(client, resource, &mut version, &mut on).await {
                // A watch that the member ends at once must not turn into a busy loop.
                End::Closed if !version.is_empty() && started.elapsed() < MIN_BACKOFF => {
                    backoff = pause(backoff).await;
                }
                End::Closed if !version.is_empty() => backoff = MIN_BACKOFF,
                End::Closed | End::Expired => break,
                End::Failed(e) => {
                    tracing::debug!(error = %e, resource = %resource.plural, "watching a member's resource");
                    backoff = pause(backoff).await;
                    break;
                }
            }
        }
        listing = list(client, resource).await;
    }
}

/// Sleeps `backoff`; returns the next one.
async fn pause(backoff: Duration) -> Duration {
    tokio::time::sleep(backoff).await;
    (backoff * 2).min(MAX_BACKOFF)
}

/// One watch request from `version` (advanced by every event) until it ends.
async fn watch(
    client: &PlainClient,
    resource: &ApiResource,
    version: &mut String,
    on: &mut impl FnMut(Update),
) -> End {
    let params = WatchParams::default().timeout(WATCH_TIMEOUT_SECS);
    let request = match kube::core::Request::new(url(resource)).watch(&params, version.as_str()) {
        Ok(r) => r,
        Err(e) => return End::Failed(e.to_string()),
    };
    let response = match Box::pin(client.send(request.map(kube::client::Body::from))).await {
        Ok(r) => r,
        Err(e) => return End::Failed(e.to_string()),
    };
    match response.status() {
        http::StatusCode::GONE => return End::Expired,
        s if !s.is_success() => return End::Failed(format!("HTTP {s}")),
        _ => {}
    }
    let mut body = response.into_body();
    let mut pending: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let data = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
            Err(e) => return End::Failed(e.to_string()),
        };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let outcome = event(&pending[..end], version, on);
            pending.drain(..=end);
            if let Some(stop) = outcome {
                return stop;
            }
        }
        if pending.is_empty() {
            // Nothing half-read: give the buffer back (a large event may have grown it).
            pending = Vec::new();
        }
    }
    End::Closed
}

/// Applies one line of a watch; `Some` when the watch must stop.
fn event(line: &[u8], version: &mut String, on: &mut impl FnMut(Update)) -> Option<End> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let event: Event = match serde_json::from_slice(line) {
        Ok(e) => e,
        Err(e) => return Some(End::Failed(format!("a watch event: {e}"))),
    };
    let object = event.object;
    match event.kind.as_str() {
        "ADDED" | "MODIFIED" => on(Update::Applied(object.metadata.key())),
        "DELETED" => on(Update::Deleted(object.metadata.key())),
        "BOOKMARK" => {}
        "ERROR" if object.code == Some(410) => return Some(End::Expired),
        other => {
            let message = object.message.unwrap_or_default();
            return Some(End::Failed(format!("watch event {other}: {message}")));
        }
    }
    if !object.metadata.resource_version.is_empty() {
        *version = object.metadata.resource_version;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(line: &str, version: &mut String) -> (Vec<Update>, Option<End>) {
        let mut updates = Vec::new();
        let end = event(line.as_bytes(), version, &mut |u| updates.push(u));
        (updates, end)
    }

    #[test]
    fn events_report_names_and_advance_the_version() {
        let mut version = "1".to_string();
        let added = r#"{"type":"ADDED","object":{"kind":"ServiceExport","metadata":{"name":"web","namespace":"shop","resourceVersion":"7"},"spec":{}}}"#;
        let (updates, end) = apply(added, &mut version);
        assert_eq!(updates, [Update::Applied("shop/web".into())]);
        assert!(end.is_none());
        assert_eq!(version, "7");

        let deleted = r#"{"type":"DELETED","object":{"metadata":{"name":"web","namespace":"shop","resourceVersion":"9"}}}"#;
        assert_eq!(
            apply(deleted, &mut version).0,
            [Update::Deleted("shop/web".into())]
        );
        assert_eq!(version, "9");

        let bookmark = r#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"12"}}}"#;
        let (updates, end) = apply(bookmark, &mut version);
        assert!(updates.is_empty() && end.is_none());
        assert_eq!(version, "12");
        assert!(apply("  ", &mut version).1.is_none());
    }

    #[test]
    fn an_expired_version_relists_and_other_errors_fail() {
        let mut version = "3".to_string();
        let gone = r#"{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old"}}"#;
        assert!(matches!(apply(gone, &mut version).1, Some(End::Expired)));
        let other = r#"{"type":"ERROR","object":{"kind":"Status","code":500,"message":"boom"}}"#;
        assert!(matches!(apply(other, &mut version).1, Some(End::Failed(m)) if m.contains("boom")));
        assert!(matches!(
            apply("{not json", &mut version).1,
            Some(End::Failed(_))
        ));
        assert_eq!(version, "3");
    }
}
