//! Serving one routed request: pick a member by the spread, send the request to that
//! member's service proxy (`/api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH`) with the
//! hub's credentials for it, and relay the answer to the client.
//!
//! Failover: a member that refuses, breaks the exchange or answers 5xx has the failure
//! recorded (3 in a row take it out for 10 s, see [`crate::members`]). A request that could
//! not connect is sent once more to another member; so is a safe request (GET, HEAD,
//! OPTIONS) that broke or got a 5xx, since sending it again cannot do harm.

use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::Gateway;
use crate::http1_answer::{self, Answer, AnswerBody};
use crate::http1_head::RequestHead;
use crate::member_stream::{MemberConn, MemberStreams};
use crate::members::Member;
use crate::metrics::{ClusterLabels, ClusterSeries, ErrorLabels, RequestLabels};
use crate::routes::Backend;

/// Largest request body relayed.
pub(crate) const MAX_BODY: usize = 16 << 20;

/// The outcome of one attempt.
enum Attempt {
    /// An answer below 500, its body still on the member's connection.
    Answered(Answer),
    /// A 5xx answer.
    Failed5xx(Answer),
    /// Could not connect.
    Refused(String),
    /// Connected, but the exchange broke.
    Broken(String),
}

/// Relays the request (`head`, its whole `body`) to a member of `backend` and its answer to
/// `client`; returns whether the client's connection stays open.
pub(crate) async fn serve<C>(
    gateway: &Gateway,
    backend: &Backend,
    head: &RequestHead,
    body: &[u8],
    client: &mut C,
) -> bool
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let mut tried: Vec<Arc<Member>> = Vec::new();
    let mut last: Option<(Answer, Arc<Member>)> = None;
    let mut last_error = String::new();
    let retry_safe = matches!(head.method.as_str(), "GET" | "HEAD" | "OPTIONS");
    for attempt in 0..2 {
        let Some(member) = gateway.pick(backend, &tried) else {
            break;
        };
        tried.push(member.clone());
        let started = Instant::now();
        let result = send(&member.relay, backend, head, body).await;
        let cluster = member.name.as_str();
        let series = member
            .series
            .get_or_init(|| ClusterSeries::new(&gateway.metrics, cluster));
        series.observe(started.elapsed().as_secs_f64());
        let (reason, retry) = match result {
            Attempt::Answered(answer) => {
                member.record_success();
                series.count(&gateway.metrics, answer.head.status);
                return http1_answer::relay(answer, &member, head, client).await;
            }
            Attempt::Failed5xx(answer) => {
                last_error = format!("cluster {cluster} answered {}", answer.head.status);
                // Another member may still answer: read this one off its connection first.
                let kept = if retry_safe && attempt == 0 {
                    http1_answer::buffered(answer, &member.relay).await.ok()
                } else {
                    Some(answer)
                };
                last = kept.map(|a| (a, member.clone()));
                ("status_5xx", retry_safe)
            }
            Attempt::Refused(e) => {
                last_error = format!("cluster {cluster}: {e}");
                ("connect", true)
            }
            Attempt::Broken(e) => {
                last_error = format!("cluster {cluster}: {e}");
                ("transport", retry_safe)
            }
        };
        failed(gateway, &member, reason);
        if !retry || attempt == 1 {
            break;
        }
    }
    let last_member = tried.last().map_or("none", |m| m.name.as_str());
    if let Some((answer, member)) = last {
        count(gateway, last_member, answer.head.status);
        return http1_answer::relay(answer, &member, head, client).await;
    }
    let (status, text) = if tried.is_empty() {
        (
            503,
            format!(
                "no available cluster has Service {}/{} (backend of Ingress {})\n",
                backend.namespace, backend.service, backend.ingress
            ),
        )
    } else {
        (
            502,
            format!(
                "no cluster could serve Service {}/{}: {last_error}\n",
                backend.namespace, backend.service
            ),
        )
    };
    count(gateway, last_member, status);
    let close = !head.keep_alive;
    let answer = http1_answer::local(status, http1_answer::TEXT, text.as_bytes(), close, head);
    client.write_all(&answer).await.is_ok() && client.flush().await.is_ok() && !close
}

pub(crate) fn count(gateway: &Gateway, cluster: &str, code: u16) {
    gateway
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            cluster: cluster.to_string(),
            code: code.to_string(),
        })
        .inc();
}

fn failed(gateway: &Gateway, member: &Member, reason: &str) {
    gateway
        .metrics
        .errors
        .get_or_create(&ErrorLabels {
            cluster: member.name.clone(),
            reason: reason.to_string(),
        })
        .inc();
    if member.record_failure(Instant::now()) {
        tracing::warn!(cluster = %member.name, "3 failures in a row: out for 10s");
        gateway
            .metrics
            .ejections
            .get_or_create(&ClusterLabels {
                cluster: member.name.clone(),
            })
            .inc();
    }
}

/// One attempt against one member's service proxy: on an idle connection that is still
/// open, else on a new one.
async fn send(
    streams: &MemberStreams,
    backend: &Backend,
    head: &RequestHead,
    body: &[u8],
) -> Attempt {
    let request = member_request(streams, backend, head, body);
    let mut conn = match streams.take_idle() {
        Some(conn) => conn,
        None => match streams.connect().await {
            Ok(conn) => conn,
            Err(e) => return Attempt::Refused(chain(&e)),
        },
    };
    let exchange = exchange(&mut conn, &request, body, head.is_head());
    match flotilla_controllers::api_connector::within(streams.read_timeout, exchange).await {
        Ok(answer_head) => {
            let failed = answer_head.status >= 500;
            let answer = Answer {
                head: answer_head,
                body: AnswerBody::OnConnection(conn),
            };
            if failed {
                Attempt::Failed5xx(answer)
            } else {
                Attempt::Answered(answer)
            }
        }
        Err(e) => Attempt::Broken(chain(&*e)),
    }
}

/// The member's request head (and the body when small, for one write).
fn member_request(
    streams: &MemberStreams,
    backend: &Backend,
    head: &RequestHead,
    body: &[u8],
) -> Vec<u8> {
    let preamble = streams.preamble();
    let mut out = Vec::with_capacity(1024 + head.forwarded.len() + body.len().min(SMALL_BODY));
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(preamble.base_path.as_bytes());
    out.extend_from_slice(backend.proxy_prefix.as_bytes());
    out.extend_from_slice(head.path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    out.extend_from_slice(&head.forwarded);
    out.extend_from_slice(&preamble.headers);
    let has_body = !body.is_empty() || matches!(head.method.as_str(), "POST" | "PUT" | "PATCH");
    if has_body {
        crate::http1_head::put_header(
            &mut out,
            "content-length",
            body.len().to_string().as_bytes(),
        );
    }
    out.extend_from_slice(b"\r\n");
    if body.len() <= SMALL_BODY {
        out.extend_from_slice(body);
    }
    out
}

/// A body up to this size goes out in the same write as the head.
const SMALL_BODY: usize = 16 * 1024;

/// Writes the request and reads the answer's head (interim 1xx answers skipped: the
/// gateway answered the client's `Expect: 100-continue` itself before reading the body).
async fn exchange(
    conn: &mut MemberConn,
    request: &[u8],
    body: &[u8],
    is_head: bool,
) -> Result<crate::http1_head::AnswerHead, tower::BoxError> {
    conn.io.write_all(request).await?;
    if body.len() > SMALL_BODY {
        conn.io.write_all(body).await?;
    }
    conn.io.flush().await?;
    loop {
        let parsed = crate::http1_head::parse_answer(conn.buf.filled(), is_head)
            .map_err(|e| format!("the member's answer: {e}"))?;
        match parsed {
            Some((head, used)) => {
                conn.buf.consume(used);
                match head.status {
                    101 => return Err("the member switched protocols unasked".into()),
                    100..=199 => continue,
                    _ => return Ok(head),
                }
            }
            None => {
                if conn.buf.fill(&mut conn.io).await? == 0 {
                    return Err("the member closed the connection before answering".into());
                }
            }
        }
    }
}

/// An error and its causes on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
