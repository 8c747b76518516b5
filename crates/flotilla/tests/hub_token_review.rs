//! TokenReview audiences: a review naming audiences authenticates a token only for one of
//! them and echoes the ones it shares in `status.audiences`; without audiences the API
//! server's own apply. Driven by kubectl (1.27, 1.33) and kube-rs.

mod support;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use support::{Server, kubectl_dir, kubectl_with, stderr, stdout, temp_dir};

/// Creates a TokenReview with kubectl `version` and returns its status.
fn review_with_kubectl(hub: &Server, version: &str, token: &str, audiences: &[&str]) -> Value {
    let file = hub
        .data_dir
        .join(format!("review-{}.json", audiences.join("-")));
    let review = json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token, "audiences": audiences},
    });
    std::fs::write(&file, review.to_string()).unwrap();
    let bin = kubectl_dir().join(format!("kubectl.{version}"));
    let out = kubectl_with(
        &bin,
        &hub.kubeconfig,
        &["create", "-f", file.to_str().unwrap(), "-o", "json"],
    );
    assert!(out.status.success(), "kubectl {version}: {}", stderr(&out));
    serde_json::from_str::<Value>(&stdout(&out)).unwrap()["status"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_reviews_echo_the_requested_audiences() {
    let dir = temp_dir("hub-token-review");
    let hub = Server::hub(&dir);
    let vault_token = hub
        .kubectl_ok(&[
            "create",
            "token",
            "default",
            "-n",
            "default",
            "--audience",
            "vault",
            "--audience",
            "other",
        ])
        .trim()
        .to_string();
    let api_token = hub
        .kubectl_ok(&["create", "token", "default", "-n", "default"])
        .trim()
        .to_string();

    for version in ["1.27", "1.33"] {
        let status = review_with_kubectl(&hub, version, &vault_token, &["vault", "elsewhere"]);
        assert_eq!(status["authenticated"], true, "{version}: {status}");
        assert_eq!(status["audiences"], json!(["vault"]), "{version}: {status}");
        assert_eq!(
            status["user"]["username"],
            "system:serviceaccount:default:default"
        );

        // A token for vault is not good for a review that names other audiences...
        let status = review_with_kubectl(&hub, version, &vault_token, &["elsewhere"]);
        assert_eq!(status["authenticated"], json!(false), "{version}: {status}");
        assert!(
            status["error"].as_str().unwrap().contains("elsewhere"),
            "{status}"
        );
        // ... nor for the API server itself.
        let status = review_with_kubectl(&hub, version, &vault_token, &[]);
        assert_eq!(status["authenticated"], json!(false), "{version}: {status}");
    }

    // kube-rs: a review without audiences reports the API server's audience.
    let api: Api<TokenReview> = Api::all(hub.kube_client().await);
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: api_token,
            audiences: None,
        },
        ..Default::default()
    };
    let status = api
        .create(&PostParams::default(), &review)
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status.authenticated, Some(true));
    assert_eq!(
        status.audiences,
        Some(vec![
            "https://kubernetes.default.svc.cluster.local".to_string()
        ])
    );
}
