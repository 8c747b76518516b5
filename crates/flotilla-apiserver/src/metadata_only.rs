//! Responses to writes (POST, PUT, PATCH, DELETE) in the shape the client asked for: the
//! object, or only its metadata when `Accept` asks for `as=PartialObjectMetadata;
//! g=meta.k8s.io;v=v1` (what kube-rs `Api::patch_metadata` and client-go's metadata client
//! send). GET and LIST negotiate the same way in their own handlers.

use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::codec::{Output, json_response, negotiate_output};

/// `obj` as the client asked for it: metadata only, or whole. A `Status` (what a finished
/// delete returns) is never reshaped.
pub(crate) fn object_response(headers: &HeaderMap, code: StatusCode, obj: &Value) -> Response {
    let is_status = obj.get("kind").and_then(Value::as_str) == Some("Status");
    match negotiate_output(headers) {
        Output::Metadata { version } if !is_status => {
            json_response(code, &crate::table::partial_metadata(obj, &version))
        }
        _ => json_response(code, obj),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(resp: Response) -> Value {
        let bytes = futures::executor::block_on(http_body_util::BodyExt::collect(resp.into_body()))
            .unwrap()
            .to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn metadata_only_when_asked() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
        let mut headers = HeaderMap::new();
        assert_eq!(body(object_response(&headers, StatusCode::OK, &obj)), obj);
        headers.insert(
            http::header::ACCEPT,
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
                .parse()
                .unwrap(),
        );
        let partial = body(object_response(&headers, StatusCode::OK, &obj));
        assert_eq!(partial["kind"], "PartialObjectMetadata");
        assert_eq!(partial["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(partial["metadata"]["name"], "a");
        assert!(partial.get("data").is_none());
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Success"});
        assert_eq!(
            body(object_response(&headers, StatusCode::OK, &status)),
            status
        );
    }
}
