//! `?watch=true`: newline-delimited JSON events, from the shared per-resource feed.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use flotilla_core::status::ApiError;
use flotilla_storage::Revision;
use futures::StreamExt;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::Req;
use super::list::{Filter, read_page};
use crate::codec::{Output, negotiate_output};
use crate::registry::ResourceInfo;
use crate::state::SharedState;
use crate::table;
use crate::watch::{EventType, Served, Subscription, WatchEvent, decode_event};

/// How often a BOOKMARK is sent when the client allows them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(15);
/// The longest a watch stays open when the client gives no `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Encoder {
    info: Arc<ResourceInfo>,
    output: Output,
    include: table::IncludeObject,
    headers_sent: bool,
}

impl Encoder {
    fn line(&mut self, kind: &str, obj: &Value, prebuilt: Option<&Served>) -> Bytes {
        let mut out = Vec::with_capacity(32 + prebuilt.map_or(224, Served::len));
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        match (&self.output, prebuilt) {
            (Output::Object, Some(served)) if self.info.version == self.info.storage_version => {
                served.write_to(&mut out)
            }
            (Output::Object, _) => {
                let served = crate::convert::to_served(&self.info, obj.clone());
                out.extend_from_slice(&serde_json::to_vec(&served).unwrap_or_default());
            }
            (Output::Table { version }, _) => {
                let served = crate::convert::to_served(&self.info, obj.clone());
                let rv = crate::objects::meta_str(&served, "resourceVersion").to_string();
                let t = table::table(
                    &self.info,
                    std::slice::from_ref(&served),
                    version,
                    self.include,
                    json!({"resourceVersion": rv}),
                    !self.headers_sent,
                );
                self.headers_sent = true;
                out.extend_from_slice(&serde_json::to_vec(&t).unwrap_or_default());
            }
            (Output::Metadata { version }, _) => {
                out.extend_from_slice(
                    &serde_json::to_vec(&table::partial_metadata(obj, version)).unwrap_or_default(),
                );
            }
        }
        out.extend_from_slice(b"}\n");
        Bytes::from(out)
    }

    /// The line of a watch event: the shared bytes when they are what is served, else
    /// the object decoded and converted.
    fn event_line(&mut self, kind: &str, ev: &WatchEvent) -> Bytes {
        if matches!(self.output, Output::Object) && self.info.version == self.info.storage_version {
            return self.line(kind, &Value::Null, Some(&ev.json));
        }
        self.line(kind, &ev.object(), None)
    }

    fn bookmark(&self, revision: Revision, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": revision.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let (kind, api_version) = match &self.output {
            Output::Metadata { version } => (
                "PartialObjectMetadata".to_string(),
                format!("meta.k8s.io/{version}"),
            ),
            _ => (self.info.kind.clone(), self.info.api_version()),
        };
        let obj = json!({"kind": kind, "apiVersion": api_version, "metadata": meta});
        let line = json!({"type": "BOOKMARK", "object": obj});
        let mut v = serde_json::to_vec(&line).unwrap_or_default();
        v.push(b'\n');
        Bytes::from(v)
    }
}

fn error_line(e: &ApiError) -> Bytes {
    let mut v =
        serde_json::to_vec(&json!({"type": "ERROR", "object": e.to_status()})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// Decides what a watcher sees for one event given its filter (Kubernetes semantics: an
/// object that stops matching is reported DELETED, one that starts matching ADDED).
fn filtered(ev: &WatchEvent, filter: &Filter, key_prefix: &str) -> Option<&'static str> {
    if !ev.key.starts_with(key_prefix) {
        return None;
    }
    if filter.is_everything() {
        return Some(ev.kind.as_str());
    }
    let now = || filter.matches(&ev.object());
    let before = || ev.prev().is_some_and(|p| filter.matches(&p));
    match ev.kind {
        EventType::Added => now().then_some("ADDED"),
        EventType::Deleted => before().then_some("DELETED"),
        EventType::Modified => {
            let (before, now) = (before(), now());
            match (before, now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            }
        }
    }
}

/// The line a watcher gets for `ev`, if any (skipping revisions already delivered).
fn next_line(
    ev: &WatchEvent,
    last: &mut Revision,
    filter: &Filter,
    key_prefix: &str,
    encoder: &mut Encoder,
) -> Option<Bytes> {
    if ev.revision <= *last {
        return None;
    }
    *last = ev.revision;
    let kind = filtered(ev, filter, key_prefix)?;
    Some(encoder.event_line(kind, ev))
}

/// `GET ...?watch=true`
pub(crate) async fn watch(state: SharedState, req: Req) -> Result<Response, ApiError> {
    let filter = Filter::from_req(&req)?;
    let info = req.resource.clone();
    let timeout = req
        .q("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT);
    let bookmarks = req.q_bool("allowWatchBookmarks");
    let send_initial = req.q("sendInitialEvents").map(|v| v == "true");
    let rv_param = req.q("resourceVersion").unwrap_or("").to_string();
    let namespace = req.info.namespace.clone();
    // A single-object watch (fieldSelector=metadata.name=x) still uses the resource feed.
    let key_prefix = if info.namespaced && !namespace.is_empty() {
        info.namespace_prefix(&namespace)
    } else {
        info.prefix()
    };
    let feed_prefix = info.prefix();
    let mut encoder = Encoder {
        info: info.clone(),
        output: negotiate_output(&req.headers),
        include: table::include_object(&req.query),
        headers_sent: false,
    };
    if send_initial == Some(true) && !bookmarks {
        return Err(streaming_list_needs_bookmarks());
    }
    let start = Start {
        rv_param: &rv_param,
        send_initial,
        feed_prefix: &feed_prefix,
        namespace: &namespace,
    };
    let (mut initial, start_after) = start.initial_events(&state, &filter, &mut encoder).await?;
    let subscription = match state.watches.subscribe(&feed_prefix, start_after).await {
        Ok(s) => Some(s),
        Err(e) if e.code == 410 => {
            // Answered in-stream, as kube-apiserver does.
            initial.push(error_line(&e));
            None
        }
        Err(e) => return Err(e),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let outlet = Outlet {
        tx,
        filter,
        key_prefix,
        encoder,
        last: start_after,
        bookmarks,
    };
    state.metrics.watch_started();
    let guard = WatchGuard(state.clone());
    tokio::spawn(async move {
        let _guard = guard;
        outlet.run(initial, subscription, timeout).await;
    });
    Ok(event_stream_response(rx))
}

/// The Invalid error for `sendInitialEvents=true` without `allowWatchBookmarks`.
fn streaming_list_needs_bookmarks() -> ApiError {
    ApiError::invalid(
        "meta.k8s.io",
        "ListOptions",
        "",
        vec![crate::validation::cause(
            "FieldValueForbidden",
            "allowWatchBookmarks",
            "Forbidden: allowWatchBookmarks required when using streaming list",
        )],
    )
}

/// Where a watch starts, from its `resourceVersion` and `sendInitialEvents`.
struct Start<'a> {
    rv_param: &'a str,
    send_initial: Option<bool>,
    feed_prefix: &'a str,
    namespace: &'a str,
}

impl Start<'_> {
    /// The lines sent before any change (ADDED for each object, the initial-events-end
    /// bookmark) and the revision changes are sent after.
    async fn initial_events(
        &self,
        state: &SharedState,
        filter: &Filter,
        encoder: &mut Encoder,
    ) -> Result<(Vec<Bytes>, Revision), ApiError> {
        let rv = self.rv_param;
        let unset = rv.is_empty() || rv == "0";
        if (unset || self.send_initial == Some(true)) && self.send_initial != Some(false) {
            state.watches.ensure_feed(self.feed_prefix).await?;
            let info = encoder.info.clone();
            let page = read_page(state, &info, self.namespace, filter, 0, None).await?;
            let mut initial: Vec<Bytes> = page
                .items
                .iter()
                .map(|obj| encoder.line("ADDED", obj, None))
                .collect();
            if self.send_initial == Some(true) {
                initial.push(encoder.bookmark(page.revision, true));
            }
            return Ok((initial, page.revision));
        }
        let start_after = if unset {
            state.store.current_revision().await?
        } else {
            rv.parse::<Revision>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?
        };
        Ok((Vec::new(), start_after))
    }
}

/// One watch's way to its client: the events after `last` that pass the filter, as lines,
/// and a BOOKMARK every [`BOOKMARK_EVERY`] when allowed.
struct Outlet {
    tx: mpsc::Sender<Bytes>,
    filter: Filter,
    key_prefix: String,
    encoder: Encoder,
    last: Revision,
    bookmarks: bool,
}

impl Outlet {
    /// Sends the initial lines, then follows the subscription until the timeout, the
    /// client leaving or the feed ending.
    async fn run(mut self, initial: Vec<Bytes>, sub: Option<Subscription>, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        for line in initial {
            if self.tx.send(line).await.is_err() {
                return;
            }
        }
        let Some(sub) = sub else {
            return;
        };
        let _ = tokio::time::timeout_at(deadline, self.follow(sub)).await;
    }

    async fn follow(&mut self, sub: Subscription) {
        let client = self.tx.clone();
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        match sub {
            Subscription::Shared { backlog, mut live } => {
                for ev in backlog {
                    if !self.event(&ev).await {
                        return;
                    }
                }
                loop {
                    let next = tokio::select! {
                        _ = client.closed() => return,
                        _ = ticker.tick(), if self.bookmarks => None,
                        ev = live.recv() => Some(ev),
                    };
                    let alive = match next {
                        None => self.bookmark().await,
                        Some(Ok(ev)) => self.event(&ev).await,
                        Some(Err(broadcast::error::RecvError::Lagged(_))) => {
                            let e = ApiError::expired(format!(
                                "too old resource version: {} (watcher fell behind)",
                                self.last
                            ));
                            let _ = self.tx.send(error_line(&e)).await;
                            false
                        }
                        Some(Err(broadcast::error::RecvError::Closed)) => false,
                    };
                    if !alive {
                        return;
                    }
                }
            }
            Subscription::Direct(mut stream) => loop {
                let next = tokio::select! {
                    _ = client.closed() => return,
                    _ = ticker.tick(), if self.bookmarks => None,
                    batch = stream.next() => Some(batch),
                };
                let alive = match next {
                    None => self.bookmark().await,
                    Some(Some(Ok(batch))) => self.batch(&batch).await,
                    Some(Some(Err(e))) => {
                        let e = crate::error::storage_error(e);
                        let _ = self.tx.send(error_line(&e)).await;
                        false
                    }
                    Some(None) => false,
                };
                if !alive {
                    return;
                }
            },
        }
    }

    /// Sends `ev` if it is new and passes the filter; false once the client is gone.
    async fn event(&mut self, ev: &WatchEvent) -> bool {
        let line = next_line(
            ev,
            &mut self.last,
            &self.filter,
            &self.key_prefix,
            &mut self.encoder,
        );
        match line {
            Some(line) => self.tx.send(line).await.is_ok(),
            None => true,
        }
    }

    /// Sends the events of a storage watch's batch (skipping any that do not decode).
    async fn batch(&mut self, batch: &[flotilla_storage::Event]) -> bool {
        for raw in batch {
            let Ok(ev) = decode_event(raw) else { continue };
            if !self.event(&ev).await {
                return false;
            }
        }
        true
    }

    async fn bookmark(&mut self) -> bool {
        let line = self.encoder.bookmark(self.last, false);
        self.tx.send(line).await.is_ok()
    }
}

/// The streamed `200 OK` of a watch.
fn event_stream_response(rx: mpsc::Receiver<Bytes>) -> Response {
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<Bytes, Infallible>);
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    resp
}

struct WatchGuard(SharedState);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.metrics.watch_ended();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_core::selector::{FieldSelector, LabelSelector};

    const CONFIGMAPS: crate::store::Resource<'static> = crate::store::Resource {
        group: "",
        resource: "configmaps",
        namespaced: true,
    };

    fn ev(kind: EventType, before: Option<&str>, after: &str) -> WatchEvent {
        let obj = |tier: &str| json!({"metadata": {"name": "x", "namespace": "d", "labels": {"tier": tier}}});
        WatchEvent::from_values(
            kind,
            2,
            CONFIGMAPS.key("d", "x"),
            &obj(after),
            before.map(obj).as_ref(),
        )
    }

    #[test]
    fn selector_changes_become_added_and_deleted() {
        let filter = Filter {
            labels: LabelSelector::parse("tier=web").unwrap(),
            fields: FieldSelector::everything(),
        };
        let p = &CONFIGMAPS.namespace_prefix("d");
        assert_eq!(
            filtered(&ev(EventType::Modified, Some("db"), "web"), &filter, p),
            Some("ADDED")
        );
        assert_eq!(
            filtered(&ev(EventType::Modified, Some("web"), "db"), &filter, p),
            Some("DELETED")
        );
        assert_eq!(
            filtered(&ev(EventType::Modified, Some("web"), "web"), &filter, p),
            Some("MODIFIED")
        );
        assert_eq!(
            filtered(&ev(EventType::Modified, Some("db"), "db"), &filter, p),
            None
        );
        assert_eq!(
            filtered(
                &ev(EventType::Added, None, "web"),
                &filter,
                &CONFIGMAPS.namespace_prefix("other")
            ),
            None
        );
        assert_eq!(
            filtered(&ev(EventType::Deleted, Some("web"), "web"), &filter, p),
            Some("DELETED")
        );
    }
}
