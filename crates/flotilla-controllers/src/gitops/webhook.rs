//! Push notifications (GitHub and Gitea payloads) for `POST /api/webhook`: which repositories
//! changed. A notification only makes the controller fetch those repositories at once; nothing
//! in the payload is trusted beyond the repository URLs. With a shared secret configured,
//! requests must carry a valid HMAC-SHA256 signature (`X-Hub-Signature-256: sha256=<hex>` from
//! GitHub, `X-Gitea-Signature: <hex>` from Gitea).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use http::HeaderMap;
use serde_json::Value;

/// Why a notification was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Error {
    /// The body is not a JSON push payload.
    #[error("not a push payload: {0}")]
    Payload(String),
    /// A secret is configured and the signature is missing or wrong.
    #[error("webhook signature missing or invalid")]
    Signature,
}

/// `Result` of reading a notification.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// What a notification says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notification {
    /// Something was pushed to a repository known by these URLs.
    Push {
        /// `clone_url`, `html_url`, `git_url`, `ssh_url` of the repository.
        repo_urls: Vec<String>,
    },
    /// Any other event (`ping`, ...): acknowledged, ignored.
    Ignored(String),
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn verify(headers: &HeaderMap, body: &[u8], secret: &str) -> Result<()> {
    let signature = header(headers, "x-hub-signature-256")
        .and_then(|s| s.strip_prefix("sha256="))
        .or_else(|| header(headers, "x-gitea-signature"))
        .and_then(decode_hex)
        .ok_or(Error::Signature)?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(&key, body, &signature).map_err(|_| Error::Signature)
}

/// Reads one notification; `secret`, when set, must have signed the body.
pub(crate) fn parse(
    headers: &HeaderMap,
    body: &[u8],
    secret: Option<&str>,
) -> Result<Notification> {
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        verify(headers, body, secret)?;
    }
    let event = header(headers, "x-github-event")
        .or_else(|| header(headers, "x-gitea-event"))
        .unwrap_or("push");
    if event != "push" {
        return Ok(Notification::Ignored(event.to_string()));
    }
    let payload: Value = serde_json::from_slice(body).map_err(|e| Error::Payload(e.to_string()))?;
    let repository = payload
        .get("repository")
        .ok_or_else(|| Error::Payload("no repository".into()))?;
    let repo_urls: Vec<String> = ["clone_url", "html_url", "git_url", "ssh_url", "url"]
        .iter()
        .filter_map(|k| repository.get(*k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if repo_urls.is_empty() {
        return Err(Error::Payload("the repository has no URL".into()));
    }
    Ok(Notification::Push { repo_urls })
}

/// A repository URL reduced to host and path, so `https://host/o/r.git`, `git://host:9418/o/r`
/// and `git@host:o/r.git` compare equal: lower-case, no scheme, user, port, `.git` or
/// trailing `/`.
pub(crate) fn normalize_repo_url(url: &str) -> String {
    let lower = url.trim().to_ascii_lowercase();
    let rest = match lower.split_once("://") {
        Some((_, rest)) => rest.to_string(),
        // scp-like `git@host:o/r`
        None => lower.replacen(':', "/", 1),
    };
    let rest = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(&rest);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.split(':').next().unwrap_or(host);
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    format!("{host}/{path}")
}

/// Notifications waiting for the controller, shared by the webhook handler (in the API
/// server) and the controller (cloneable; the binary wires both ends).
#[derive(Clone, Default)]
pub struct PushQueue {
    inner: Arc<(Mutex<VecDeque<Vec<String>>>, tokio::sync::Notify)>,
}

impl std::fmt::Debug for PushQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushQueue")
    }
}

/// Most notifications kept while the controller is busy or not running (oldest dropped).
const QUEUE_LIMIT: usize = 1000;

impl PushQueue {
    /// Queues the URLs of one pushed repository.
    pub(crate) fn push(&self, repo_urls: Vec<String>) {
        let (queue, notify) = &*self.inner;
        if let Ok(mut q) = queue.lock() {
            if q.len() >= QUEUE_LIMIT {
                q.pop_front();
            }
            q.push_back(repo_urls);
        }
        notify.notify_one();
    }

    /// Waits for notifications and returns the normalized URLs of all queued ones.
    pub(crate) async fn next(&self) -> Vec<String> {
        let (queue, notify) = &*self.inner;
        loop {
            let drained: Vec<String> = match queue.lock() {
                Ok(mut q) => q
                    .drain(..)
                    .flatten()
                    .map(|u| normalize_repo_url(&u))
                    .collect(),
                Err(_) => Vec::new(),
            };
            if !drained.is_empty() {
                return drained;
            }
            notify.notified().await;
        }
    }

    /// The handler for `POST /api/webhook`: `(code, message)` for the reply.
    pub fn handle(&self, headers: &HeaderMap, body: &[u8], secret: Option<&str>) -> (u16, String) {
        match parse(headers, body, secret) {
            Ok(Notification::Push { repo_urls }) => {
                let message = format!("refreshing applications of {}", repo_urls[0]);
                self.push(repo_urls);
                (200, message)
            }
            Ok(Notification::Ignored(event)) => (200, format!("event {event:?} ignored")),
            Err(Error::Signature) => (401, Error::Signature.to_string()),
            Err(e) => (400, e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn urls_compare_across_schemes() {
        for url in [
            "https://Git.example.com/o/r.git",
            "git://git.example.com:9418/o/r",
            "git@git.example.com:o/r.git",
            "https://user:pw@git.example.com/o/r/",
        ] {
            assert_eq!(normalize_repo_url(url), "git.example.com/o/r", "{url}");
        }
    }

    #[test]
    fn github_and_gitea_payloads() {
        let body = br#"{"ref":"refs/heads/main","repository":{"clone_url":"https://h/o/r.git","html_url":"https://h/o/r"}}"#;
        let got = parse(&headers(&[("x-github-event", "push")]), body, None).unwrap();
        assert_eq!(
            got,
            Notification::Push {
                repo_urls: vec!["https://h/o/r.git".into(), "https://h/o/r".into()]
            }
        );
        let got = parse(&headers(&[("x-gitea-event", "push")]), body, None).unwrap();
        assert!(matches!(got, Notification::Push { .. }));
        let ping = parse(&headers(&[("x-github-event", "ping")]), b"{}", None).unwrap();
        assert_eq!(ping, Notification::Ignored("ping".into()));
        assert!(parse(&HeaderMap::new(), b"nope", None).is_err());
    }

    #[test]
    fn a_configured_secret_requires_a_signature() {
        let body = br#"{"repository":{"clone_url":"https://h/o/r.git"}}"#;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret");
        let tag: String = ring::hmac::sign(&key, body)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let github = headers(&[("x-hub-signature-256", &format!("sha256={tag}"))]);
        assert!(parse(&github, body, Some("s3cret")).is_ok());
        let gitea = headers(&[("x-gitea-signature", &tag)]);
        assert!(parse(&gitea, body, Some("s3cret")).is_ok());
        assert_eq!(
            parse(&github, body, Some("other")).unwrap_err(),
            Error::Signature
        );
        assert_eq!(
            parse(&HeaderMap::new(), body, Some("s3cret")).unwrap_err(),
            Error::Signature
        );
    }
}
