//! LIST: a range read of the store, filtered by label and field selectors, paginated with
//! `limit`/`continue`.

use axum::response::Response;
use base64::Engine;
use flotilla_core::selector::{FieldSelector, LabelSelector, supported_field_labels};
use flotilla_core::status::ApiError;
use flotilla_storage::Revision;
use http::StatusCode;
use serde_json::{Value, json};

use super::Req;
use crate::codec::{Output, json_bytes_response, negotiate_output};
use crate::registry::ResourceInfo;
use crate::state::{ApiState, SharedState};
use crate::{objects, table};

/// The label and field selectors of a list or watch.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    /// Parses `labelSelector` and `fieldSelector` (400 BadRequest when invalid).
    pub(crate) fn from_req(req: &Req) -> Result<Filter, ApiError> {
        let labels = match req.q("labelSelector") {
            Some(s) if !s.trim().is_empty() => {
                LabelSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?
            }
            _ => LabelSelector::everything(),
        };
        let fields = match req.q("fieldSelector") {
            Some(s) if !s.trim().is_empty() => {
                let f =
                    FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?;
                let supported =
                    supported_field_labels(crate::strategy::of(&req.resource).field_labels);
                f.check_supported(&supported)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                f
            }
            _ => FieldSelector::everything(),
        };
        Ok(Filter { labels, fields })
    }

    pub(crate) fn matches(&self, obj: &Value) -> bool {
        (self.labels.is_everything() || self.labels.matches_object(obj))
            && (self.fields.is_everything() || self.fields.matches(obj))
    }

    pub(crate) fn is_everything(&self) -> bool {
        self.labels.is_everything() && self.fields.is_everything()
    }
}

/// A page of objects.
pub(crate) struct Page {
    pub items: Vec<Value>,
    pub revision: Revision,
    /// The continue token when more objects follow.
    pub continue_token: Option<String>,
}

fn encode_continue(key: &str, revision: Revision) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": key});
    base64::engine::general_purpose::STANDARD.encode(token.to_string())
}

fn decode_continue(token: &str, prefix: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    if !start.starts_with(prefix) {
        return Err(bad());
    }
    Ok(start.to_string())
}

/// Reads one page of `info` in `namespace` (all namespaces when empty).
pub(crate) async fn read_page(
    state: &ApiState,
    info: &ResourceInfo,
    namespace: &str,
    filter: &Filter,
    limit: usize,
    continue_token: Option<&str>,
) -> Result<Page, ApiError> {
    let prefix = info.namespace_prefix(namespace);
    // A pinned name is a point read.
    if let Some(name) = filter.fields.exact_value("metadata.name") {
        if info.namespaced && namespace.is_empty() {
            // fall through to a scan across namespaces
        } else {
            let revision = state.store.current_revision().await?;
            let mut items = Vec::new();
            if let Some(kv) = state.store.get_kv(info, namespace, name).await? {
                let obj = objects::decode(&kv)?;
                if filter.matches(&obj) {
                    items.push(obj);
                }
            }
            return Ok(Page {
                items,
                revision,
                continue_token: None,
            });
        }
    }
    let mut start = match continue_token {
        Some(t) if !t.is_empty() => Some(decode_continue(t, &prefix)?),
        _ => None,
    };
    let mut items = Vec::new();
    let mut revision = 0;
    let page_size = if limit > 0 { limit.max(50) } else { 1000 };
    loop {
        let page = state
            .store
            .range(info, namespace, start.as_deref(), page_size)
            .await?;
        if revision == 0 {
            revision = page.revision;
        }
        let mut last_key = None;
        for kv in &page.kvs {
            last_key = Some(kv.key.clone());
            // Most objects of a labelled list fail the selector: skip decoding those.
            if !filter.labels.may_match_json(&kv.value) {
                continue;
            }
            let obj = objects::decode(kv)?;
            if filter.matches(&obj) {
                items.push(obj);
                if limit > 0 && items.len() >= limit {
                    let more = page.more
                        || kv.key != page.kvs.last().map(|k| k.key.clone()).unwrap_or_default();
                    let token = more.then(|| encode_continue(&kv.key, revision));
                    return Ok(Page {
                        items,
                        revision,
                        continue_token: token,
                    });
                }
            }
        }
        if !page.more || page.kvs.is_empty() {
            break;
        }
        start = last_key;
    }
    Ok(Page {
        items,
        revision,
        continue_token: None,
    })
}

/// A page of stored objects as served JSON bytes, for unfiltered lists: the bytes are
/// spliced with their resourceVersion rather than decoded and re-encoded.
async fn read_page_raw(
    state: &ApiState,
    info: &ResourceInfo,
    namespace: &str,
    limit: usize,
    continue_token: Option<&str>,
) -> Result<(Vec<Vec<u8>>, Revision, Option<String>), ApiError> {
    let prefix = info.namespace_prefix(namespace);
    let start = match continue_token {
        Some(t) if !t.is_empty() => Some(decode_continue(t, &prefix)?),
        _ => None,
    };
    let page = state
        .store
        .range(info, namespace, start.as_deref(), limit)
        .await?;
    let mut items = Vec::with_capacity(page.kvs.len());
    for kv in &page.kvs {
        match objects::splice_resource_version(&kv.value, kv.mod_revision) {
            Some(bytes) => items.push(bytes),
            None => items.push(serde_json::to_vec(&objects::decode(kv)?).unwrap_or_default()),
        }
    }
    let token = (limit > 0 && page.more)
        .then(|| {
            page.kvs
                .last()
                .map(|kv| encode_continue(&kv.key, page.revision))
        })
        .flatten();
    Ok((items, page.revision, token))
}

/// `GET .../{resource}` (no `watch`).
pub(crate) async fn list(state: SharedState, req: Req) -> Result<Response, ApiError> {
    let filter = Filter::from_req(&req)?;
    let limit = match req.q("limit") {
        Some(l) if !l.is_empty() => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?
            .max(0) as usize,
        _ => 0,
    };
    let output = negotiate_output(&req.headers);
    if filter.is_everything()
        && output == Output::Object
        && req.resource.version == req.resource.storage_version
    {
        let (items, revision, token) = read_page_raw(
            &state,
            &req.resource,
            &req.info.namespace,
            limit,
            req.q("continue"),
        )
        .await?;
        let mut list_meta = json!({"resourceVersion": revision.to_string()});
        if let Some(token) = &token {
            list_meta["continue"] = json!(token);
        }
        let head = json!({
            "kind": req.resource.list_kind(),
            "apiVersion": req.resource.api_version(),
            "metadata": list_meta,
        });
        let mut body = serde_json::to_vec(&head).unwrap_or_default();
        body.pop(); // the closing brace
        body.extend_from_slice(b",\"items\":[");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(item);
        }
        body.extend_from_slice(b"]}");
        return Ok(json_bytes_response(
            StatusCode::OK,
            body,
            "application/json",
        ));
    }
    let page = read_page(
        &state,
        &req.resource,
        &req.info.namespace,
        &filter,
        limit,
        req.q("continue"),
    )
    .await?;
    let mut list_meta = json!({"resourceVersion": page.revision.to_string()});
    if let Some(token) = &page.continue_token {
        list_meta["continue"] = json!(token);
    }
    let items: Vec<Value> = page
        .items
        .into_iter()
        .map(|o| crate::convert::to_served(&req.resource, o))
        .collect();
    let body = match output {
        Output::Object => json!({
            "kind": req.resource.list_kind(),
            "apiVersion": req.resource.api_version(),
            "metadata": list_meta,
            "items": items,
        }),
        Output::Table { version } => table::table(
            &req.resource,
            &items,
            &version,
            table::include_object(&req.query),
            list_meta,
            true,
        ),
        Output::Metadata { version } => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": format!("meta.k8s.io/{version}"),
            "metadata": list_meta,
            "items": items.iter().map(|o| table::partial_metadata(o, &version)).collect::<Vec<_>>(),
        }),
    };
    Ok(json_bytes_response(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
        "application/json",
    ))
}
