//! Resource request handlers: one file per verb family. [`handle`] routes a parsed
//! request to them; every failure comes back as an `ApiError` and is turned into a
//! `Status` by the router.

pub(crate) mod create;
pub(crate) mod delete;
pub(crate) mod get;
pub(crate) mod list;
pub(crate) mod patch;
pub(crate) mod proxy;
pub(crate) mod proxy_remote;
pub(crate) mod scale;
pub(crate) mod update;
pub(crate) mod watch;

use std::collections::HashMap;
use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use flotilla_core::status::ApiError;
use flotilla_core::user::UserInfo;
use http::{HeaderMap, Method};

use crate::registry::ResourceInfo;
use crate::request_info::RequestInfo;
use crate::state::SharedState;
pub(crate) use crate::store::options::{FieldValidation, WriteOptions};

/// One resource request, parsed.
pub(crate) struct Req {
    pub method: Method,
    pub info: RequestInfo,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub resource: Arc<ResourceInfo>,
    pub user: UserInfo,
}

impl Req {
    /// A query parameter.
    pub(crate) fn q(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A boolean query parameter (`true`/`1`).
    pub(crate) fn q_bool(&self, name: &str) -> bool {
        self.q(name).is_some_and(|v| v == "true" || v == "1")
    }

    /// `dryRun=All`.
    pub(crate) fn dry_run(&self) -> Result<bool, ApiError> {
        match self.q("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other}: Only valid value is 'All'"
            ))),
        }
    }

    /// `fieldValidation` (default Warn, as kube-apiserver).
    pub(crate) fn field_validation(&self) -> Result<FieldValidation, ApiError> {
        match self.q("fieldValidation") {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}; acceptable values are: Ignore, Warn, Strict"
            ))),
        }
    }

    /// The field manager: the `fieldManager` parameter, else the user agent's program name.
    pub(crate) fn field_manager(&self) -> String {
        if let Some(m) = self.q("fieldManager").filter(|m| !m.is_empty()) {
            return m.to_string();
        }
        let agent = self
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        flotilla_core::patch::default_field_manager(agent)
    }

    pub(crate) fn write_options(&self) -> Result<WriteOptions, ApiError> {
        Ok(WriteOptions {
            dry_run: self.dry_run()?,
            field_validation: self.field_validation()?,
            field_manager: self.field_manager(),
            keep_managed_fields: false,
        })
    }
}

/// Routes one resource request.
pub(crate) async fn handle(state: SharedState, req: Req) -> Result<Response, ApiError> {
    let r = &req.resource;
    let sub = req.info.subresource.as_str();
    match sub {
        "" => {}
        "status" if r.status => {}
        "scale" if r.scale.is_some() => return scale::handle(state, req).await,
        "proxy" if r.group.is_empty() && ["services", "pods"].contains(&r.resource.as_str()) => {
            return proxy::handle(state, req).await;
        }
        "approval" if crate::csr::is_csr(r) => return crate::csr::approval(state, req).await,
        _ => {
            return Err(ApiError::not_found(
                &r.group,
                &format!("{}/{}", r.resource, sub),
                &req.info.name,
            ));
        }
    }
    if !r.namespaced && !req.info.namespace.is_empty() {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    if r.namespaced && req.info.namespace.is_empty() && !req.info.name.is_empty() {
        return Err(ApiError::not_found(&r.group, &r.resource, &req.info.name));
    }
    match req.info.verb.as_str() {
        "get" => get::get(state, req).await,
        "list" => list::list(state, req).await,
        "watch" => watch::watch(state, req).await,
        "create" => {
            if !req.info.name.is_empty() {
                return Err(ApiError::method_not_allowed(
                    "the server does not allow this method on the requested resource",
                ));
            }
            create::create(state, req).await
        }
        "update" => update::update(state, req).await,
        "patch" => patch::patch(state, req).await,
        "delete" => delete::delete(state, req).await,
        "deletecollection" => delete::delete_collection(state, req).await,
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

/// A `Warning` header value as kube-apiserver formats it.
pub(crate) fn warning_header(text: &str) -> http::HeaderValue {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    http::HeaderValue::from_str(&format!("299 - \"{escaped}\""))
        .unwrap_or_else(|_| http::HeaderValue::from_static("299 - \"warning\""))
}

/// Adds `Warning` headers to a response.
pub(crate) fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        resp.headers_mut()
            .append(http::header::WARNING, warning_header(w));
    }
    resp
}
