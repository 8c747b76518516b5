//! Content negotiation: decoding request bodies (JSON, YAML) and choosing the response
//! shape from `Accept` (plain objects, `meta.k8s.io` Tables, PartialObjectMetadata).

use axum::response::{IntoResponse, Response};
use flotilla_core::status::ApiError;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::Value;

/// The largest request body accepted (as kube-apiserver: 3 MiB).
pub(crate) const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// How much of an oversized body is read (and dropped) before answering 413, so clients
/// that are still sending see the Status rather than a broken connection.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Reads a request body of at most [`MAX_BODY_BYTES`]; a larger one is answered 413
/// (after draining up to [`DRAIN_LIMIT`] bytes).
pub(crate) async fn read_body(mut body: axum::body::Body) -> Result<bytes::Bytes, ApiError> {
    use http_body_util::BodyExt;
    let mut buf = bytes::BytesMut::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len();
        if total > DRAIN_LIMIT {
            break;
        }
        if total <= MAX_BODY_BYTES {
            buf.extend_from_slice(&data);
        }
    }
    if total > MAX_BODY_BYTES {
        return Err(ApiError::too_large());
    }
    Ok(buf.freeze())
}

/// What the client asked to receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Output {
    /// The object(s) themselves.
    Object,
    /// A `meta.k8s.io` Table (`version` is `v1` or `v1beta1`).
    Table { version: String },
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata { version: String },
}

/// One media range of an `Accept` header with its parameters.
#[derive(Debug, Clone, Default)]
pub(crate) struct MediaRange {
    pub mime: String,
    pub params: Vec<(String, String)>,
}

impl MediaRange {
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses an `Accept` header into media ranges, in the order given.
pub(crate) fn parse_accept(headers: &HeaderMap) -> Vec<MediaRange> {
    let mut out = Vec::new();
    for value in headers.get_all(header::ACCEPT) {
        let Ok(text) = value.to_str() else { continue };
        for part in text.split(',') {
            let mut pieces = part.split(';');
            let mime = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            if mime.is_empty() {
                continue;
            }
            let params = pieces
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
                })
                .collect();
            out.push(MediaRange { mime, params });
        }
    }
    out
}

/// Chooses the response shape for a resource request.
pub(crate) fn negotiate_output(headers: &HeaderMap) -> Output {
    for range in parse_accept(headers) {
        if range.mime != "application/json" && range.mime != "*/*" {
            continue;
        }
        let group = range.param("g").unwrap_or("");
        let version = range.param("v").unwrap_or("").to_string();
        match range.param("as") {
            Some("Table")
                if group == "meta.k8s.io" && (version == "v1" || version == "v1beta1") =>
            {
                return Output::Table { version };
            }
            Some("PartialObjectMetadata") | Some("PartialObjectMetadataList")
                if group == "meta.k8s.io" && (version == "v1" || version == "v1beta1") =>
            {
                return Output::Metadata { version };
            }
            Some(_) => continue,
            None => return Output::Object,
        }
    }
    Output::Object
}

/// The request body formats accepted for create/update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFormat {
    Json,
    Yaml,
    /// Kubernetes protobuf (`application/vnd.kubernetes.protobuf`).
    Protobuf,
}

/// The media type of the request body (without parameters), lower-cased.
pub(crate) fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Decodes a create/update body (JSON or YAML) into one JSON object.
pub(crate) fn decode_object(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = content_type(headers);
    let format = match ct.as_str() {
        "" | "application/json" | "*/*" => BodyFormat::Json,
        "application/yaml" | "application/x-yaml" | "text/yaml" => BodyFormat::Yaml,
        "application/vnd.kubernetes.protobuf" => BodyFormat::Protobuf,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    decode_bytes(format, body)
}

/// The body format named by a request's Content-Type (JSON when absent or unknown).
pub(crate) fn body_format(headers: &HeaderMap) -> BodyFormat {
    let ct = content_type(headers);
    if ct.contains("protobuf") {
        BodyFormat::Protobuf
    } else if ct.contains("yaml") {
        BodyFormat::Yaml
    } else {
        BodyFormat::Json
    }
}

/// Decodes bytes of a known format into one JSON object.
pub(crate) fn decode_bytes(format: BodyFormat, body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = match format {
        BodyFormat::Protobuf => crate::proto::decode(body).map_err(|e| {
            ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
        })?,
        BodyFormat::Json => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?,
        BodyFormat::Yaml => {
            let text = std::str::from_utf8(body)
                .map_err(|e| ApiError::bad_request(format!("invalid YAML: {e}")))?;
            serde_yaml_ng::from_str(text).map_err(|e| {
                ApiError::bad_request(format!("error converting YAML to JSON: yaml: {e}"))
            })?
        }
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "couldn't get version/kind; json parse error: expected an object".to_string(),
        ));
    }
    Ok(value)
}

/// A JSON response.
pub(crate) fn json_response(code: StatusCode, value: &Value) -> Response {
    json_bytes_response(
        code,
        serde_json::to_vec(value).unwrap_or_default(),
        "application/json",
    )
}

/// A response from already-serialized JSON with a given content type.
pub(crate) fn json_bytes_response(code: StatusCode, body: Vec<u8>, content_type: &str) -> Response {
    let mut resp = (code, body).into_response();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        h
    }

    #[test]
    fn kubectl_table_accept() {
        let h = headers(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
        );
        assert_eq!(
            negotiate_output(&h),
            Output::Table {
                version: "v1".into()
            }
        );
        assert_eq!(
            negotiate_output(&headers("application/json")),
            Output::Object
        );
        assert_eq!(
            negotiate_output(&headers(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
            )),
            Output::Metadata {
                version: "v1".into()
            }
        );
    }

    #[test]
    fn bodies() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/yaml"),
        );
        let v = decode_object(&h, b"kind: ConfigMap\napiVersion: v1\n").unwrap();
        assert_eq!(v["kind"], "ConfigMap");
        assert_eq!(decode_object(&h, b"- a\n").unwrap_err().code, 400);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert_eq!(decode_object(&h, b"{nope").unwrap_err().code, 400);
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(decode_object(&h, b"{}").unwrap_err().code, 415);
    }
}
