//! Plugs the controllers' member forwarding ([`flotilla_controllers::cluster::gateway`]) into
//! the API server's cluster gateway route, so neither crate links the other. The forwarder
//! needs a hub client, which exists only once the server has written its admin kubeconfig:
//! until [`GatewayBackend::connect`] is called the route answers 503.

use std::sync::{Arc, OnceLock};

use flotilla_apiserver::cluster_gateway::{ClusterGatewayBackend, ProxyRequest};
use flotilla_controllers::cluster::gateway::{BoxError, ClusterGateway, Identity};
use flotilla_core::status::ApiError;
use http_body_util::BodyExt as _;

/// The backend registered with the hub's API server.
#[derive(Default)]
pub(crate) struct GatewayBackend {
    gateway: OnceLock<Arc<ClusterGateway>>,
}

impl GatewayBackend {
    /// Starts forwarding through `hub_client` (the hub's own admin client).
    pub(crate) fn connect(&self, hub_client: kube::Client) {
        let _ = self.gateway.set(ClusterGateway::start(hub_client));
    }
}

#[async_trait::async_trait]
impl ClusterGatewayBackend for GatewayBackend {
    async fn clusters(&self) -> Result<Vec<serde_json::Value>, ApiError> {
        match self.gateway.get() {
            Some(gateway) => Ok(gateway.clusters().await),
            None => Err(ApiError::service_unavailable(
                "the cluster gateway is starting; retry in a moment",
            )),
        }
    }

    async fn forward(&self, request: ProxyRequest) -> Result<axum::response::Response, ApiError> {
        let Some(gateway) = self.gateway.get() else {
            return Err(ApiError::service_unavailable(
                "the cluster gateway is starting; retry in a moment",
            ));
        };
        let mut builder = http::Request::builder()
            .method(request.method)
            .uri(&request.path_and_query);
        if let Some(headers) = builder.headers_mut() {
            *headers = request.headers;
        }
        let body = request
            .body
            .map_err(|e| -> BoxError { Box::new(e) })
            .boxed_unsync();
        let member_request = builder
            .body(body)
            .map_err(|e| ApiError::bad_request(format!("invalid proxy request: {e}")))?;
        let identity = Identity {
            user: request.user.username,
            groups: request.user.groups,
            extra: request.user.extra,
            uid: request.user.uid,
        };
        match gateway
            .forward(&request.cluster, member_request, &identity)
            .await
        {
            Ok(response) => Ok(response.map(axum::body::Body::new)),
            Err(e) => Err(match e.code() {
                404 => ApiError::new(404, "NotFound", e.to_string()),
                400 => ApiError::bad_request(e.to_string()),
                _ => ApiError::service_unavailable(e.to_string()),
            }),
        }
    }
}
