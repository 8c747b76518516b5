//! The gateway's HTTP/1 server: one task per client connection reads each request head into
//! a reusable buffer (a buffer may already hold the next, pipelined request), answers the
//! reserved paths (`/metrics`, `/healthz`, `/readyz`), routes by host and path, reads the
//! request body by its framing and hands the request to [`crate::forward`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Gateway;
use crate::forward::{self, MAX_BODY};
use crate::http1_answer::{self, TEXT};
use crate::http1_framing::{self, BodyLength, FramingError, ReadBuf};
use crate::http1_head::{self, HeadError, RequestHead};

/// Longest wait for a whole request head, idle keep-alive time included (hyper's default).
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// A request body buffer larger than this is not kept for the connection's next request.
const KEPT_BODY_BUFFER: usize = 1 << 20;
/// Content type of `/metrics`.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves one client connection until it closes.
pub(crate) async fn serve(gateway: Arc<Gateway>, mut tcp: TcpStream, peer: SocketAddr) {
    // Answers go out as soon as they are written, not held back for the client's ACK.
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "setting TCP_NODELAY");
    }
    serve_io(&gateway, &mut tcp, peer).await;
}

/// Serves the requests that come on `client` from `peer`.
pub(crate) async fn serve_io<C>(gateway: &Gateway, client: &mut C, peer: SocketAddr)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = ReadBuf::default();
    let mut body = Vec::new();
    loop {
        let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(client, &mut buf, peer)).await
        {
            Ok(Ok(Some(head))) => head,
            Ok(Ok(None)) | Err(_) => return,
            Ok(Err(ReadError::Io(e))) => {
                tracing::debug!(error = %e, %peer, "client connection ended");
                return;
            }
            Ok(Err(ReadError::Head(e))) => {
                let status = match e {
                    HeadError::Malformed => 400,
                    HeadError::TooLarge => 431,
                };
                let answer = http1_answer::local_closing(status, format!("{e}\n").as_bytes());
                let _ = client.write_all(&answer).await;
                let _ = client.shutdown().await;
                return;
            }
        };
        body.clear();
        if body.capacity() > KEPT_BODY_BUFFER {
            body = Vec::new();
        }
        if !serve_request(gateway, client, &mut buf, &mut body, &head).await {
            let _ = client.shutdown().await;
            return;
        }
    }
}

#[derive(Debug)]
enum ReadError {
    Head(HeadError),
    Io(std::io::Error),
}

/// The next request head; `None` when the client closed the connection between requests.
async fn read_head<C>(
    client: &mut C,
    buf: &mut ReadBuf,
    peer: SocketAddr,
) -> Result<Option<RequestHead>, ReadError>
where
    C: AsyncRead + Unpin,
{
    loop {
        if !buf.filled().is_empty() {
            let parsed = http1_head::parse_request(buf.filled(), peer).map_err(ReadError::Head)?;
            if let Some((head, used)) = parsed {
                buf.consume(used);
                return Ok(Some(head));
            }
        }
        if buf.fill(client).await.map_err(ReadError::Io)? == 0 {
            return Ok(None);
        }
    }
}

/// Serves one request; returns whether the connection stays open.
async fn serve_request<C>(
    gateway: &Gateway,
    client: &mut C,
    buf: &mut ReadBuf,
    body: &mut Vec<u8>,
    head: &RequestHead,
) -> bool
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    match head.path() {
        "/metrics" => {
            let text = gateway.metrics.render();
            return answer_local(client, head, 200, OPENMETRICS, text.as_bytes()).await;
        }
        "/healthz" | "/readyz" => return answer_local(client, head, 200, TEXT, b"ok").await,
        _ => {}
    }
    let route = gateway.routes.read().route(&head.host, head.path());
    let Some(backend) = route else {
        forward::count(gateway, "none", 404);
        let text = format!(
            "no Ingress of class flotilla routes host {:?} path {:?}\n",
            head.host,
            head.path()
        );
        return answer_local(client, head, 404, TEXT, text.as_bytes()).await;
    };
    if head.expect_continue && head.body != BodyLength::Empty {
        let sent = client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
        if sent.is_err() || client.flush().await.is_err() {
            return false;
        }
    }
    match http1_framing::read_body(client, buf, head.body, MAX_BODY, body).await {
        Ok(()) => forward::serve(gateway, &backend, head, body, client).await,
        Err(FramingError::Io(_) | FramingError::Truncated) => false,
        Err(e) => {
            let status = if matches!(e, FramingError::TooLong(_)) {
                413
            } else {
                400
            };
            let text = format!("request body: {e}\n");
            let answer = http1_answer::local(status, TEXT, text.as_bytes(), true, head);
            let _ = client.write_all(&answer).await;
            false
        }
    }
}

/// One of the gateway's own answers. A request body not read yet is not skipped: the
/// connection closes after the answer.
async fn answer_local<C>(
    client: &mut C,
    head: &RequestHead,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> bool
where
    C: AsyncWrite + Unpin,
{
    let close = !head.keep_alive || head.body != BodyLength::Empty;
    let answer = http1_answer::local(status, content_type, body, close, head);
    client.write_all(&answer).await.is_ok() && client.flush().await.is_ok() && !close
}

#[cfg(test)]
#[path = "http1_server_tests.rs"]
mod tests;
