//! The gateway's answers to its clients: a member's answer relayed with its own framing
//! (Content-Length copied, chunked copied as it came or decoded for HTTP/1.0 clients, a
//! close-delimited body read to the member's close and ended by closing the client's
//! connection), and the gateway's own short answers.

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::forward::MAX_BODY;
use crate::http1_framing::{self, BodyLength, ChunkedOut, ReadBuf};
use crate::http1_head::{AnswerHead, CLUSTER_HEADER, RequestHead, put_header};
use crate::member_stream::{MemberConn, MemberStreams};
use crate::members::Member;

/// Content type of the gateway's own text answers.
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";

/// A member's answer: its head and where its body is.
pub(crate) struct Answer {
    pub head: AnswerHead,
    pub body: AnswerBody,
}

/// Where an answer's body is.
pub(crate) enum AnswerBody {
    /// Still on the member's connection, framed as `head.body` says.
    OnConnection(MemberConn),
    /// Read off the connection (`head.body` is then its length, or empty).
    Buffered(Vec<u8>),
}

/// Reads the answer's body off its connection (at most [`MAX_BODY`], decoded) and puts the
/// connection back when it can carry another request.
pub(crate) async fn buffered(
    answer: Answer,
    streams: &MemberStreams,
) -> Result<Answer, http1_framing::FramingError> {
    let Answer { mut head, body } = answer;
    let mut conn = match body {
        AnswerBody::OnConnection(conn) => conn,
        buffered @ AnswerBody::Buffered(_) => {
            return Ok(Answer {
                head,
                body: buffered,
            });
        }
    };
    let mut data = Vec::new();
    let MemberConn { io, buf } = &mut conn;
    http1_framing::read_body(io, buf, head.body, MAX_BODY, &mut data).await?;
    if reusable(&head, &conn.buf) {
        streams.put_back(conn);
    }
    if head.body != BodyLength::Empty {
        head.body = BodyLength::Length(data.len() as u64);
    }
    Ok(Answer {
        head,
        body: AnswerBody::Buffered(data),
    })
}

/// Whether the member's connection can carry another request after this answer.
fn reusable(head: &AnswerHead, buf: &ReadBuf) -> bool {
    head.keep_alive && head.body != BodyLength::UntilClose && buf.filled().is_empty()
}

/// Relays `answer` from `member` to the client of `request`; returns whether the client's
/// connection stays open.
pub(crate) async fn relay<C>(
    answer: Answer,
    member: &Member,
    request: &RequestHead,
    client: &mut C,
) -> bool
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let Answer { head, body } = answer;
    let decode = head.body == BodyLength::Chunked && request.http10;
    let close = !request.keep_alive || head.body == BodyLength::UntilClose || decode;
    let mut out = client_head(&head, &member.name, request, close);
    let mut conn = match body {
        AnswerBody::Buffered(data) => {
            out.extend_from_slice(&data);
            return client.write_all(&out).await.is_ok() && client.flush().await.is_ok() && !close;
        }
        AnswerBody::OnConnection(conn) => conn,
    };
    // A body already read whole goes out with the head in one write.
    let mut rest = head.body;
    if let BodyLength::Length(n) = head.body
        && let Ok(n) = usize::try_from(n)
        && conn.buf.filled().len() >= n
    {
        out.extend_from_slice(&conn.buf.filled()[..n]);
        conn.buf.consume(n);
        rest = BodyLength::Empty;
    }
    if client.write_all(&out).await.is_err() {
        return false;
    }
    let chunked_out = if decode {
        ChunkedOut::Decoded
    } else {
        ChunkedOut::Verbatim
    };
    let MemberConn { io, buf } = &mut conn;
    if let Err(e) = http1_framing::copy_body(io, buf, client, rest, chunked_out).await {
        tracing::debug!(cluster = %member.name, error = %e, "relaying an answer body");
        return false;
    }
    if reusable(&head, &conn.buf) {
        member.relay.put_back(conn);
    }
    !close
}

/// The client's answer head for a member's answer.
fn client_head(head: &AnswerHead, cluster: &str, request: &RequestHead, close: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + head.headers.len());
    status_line(&mut out, head.status, &head.reason);
    out.extend_from_slice(&head.headers);
    put_header(&mut out, CLUSTER_HEADER, cluster.as_bytes());
    match head.body {
        BodyLength::Length(n) => put_header(&mut out, "content-length", n.to_string().as_bytes()),
        BodyLength::Chunked if !request.http10 => {
            put_header(&mut out, "transfer-encoding", b"chunked")
        }
        BodyLength::Empty | BodyLength::Chunked | BodyLength::UntilClose => {}
    }
    connection_header(&mut out, request, close);
    out.extend_from_slice(b"\r\n");
    out
}

fn status_line(out: &mut Vec<u8>, status: u16, reason: &str) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn connection_header(out: &mut Vec<u8>, request: &RequestHead, close: bool) {
    if close {
        put_header(out, "connection", b"close");
    } else if request.http10 {
        put_header(out, "connection", b"keep-alive");
    }
}

/// One of the gateway's own answers (status, content type, body), closing the connection
/// when `close`. Without a request (it could not be read), HTTP/1.1 framing.
pub(crate) fn local(
    status: u16,
    content_type: &str,
    body: &[u8],
    close: bool,
    request: &RequestHead,
) -> Vec<u8> {
    local_answer(
        status,
        content_type,
        body,
        close,
        request.http10 && !close,
        request.is_head(),
    )
}

/// [`local`] for a request that could not be read (always closing).
pub(crate) fn local_closing(status: u16, body: &[u8]) -> Vec<u8> {
    local_answer(status, TEXT, body, true, false, false)
}

fn local_answer(
    status: u16,
    content_type: &str,
    body: &[u8],
    close: bool,
    keep_alive_10: bool,
    head: bool,
) -> Vec<u8> {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut out = Vec::with_capacity(128 + body.len());
    status_line(&mut out, status, reason);
    put_header(&mut out, "content-type", content_type.as_bytes());
    put_header(
        &mut out,
        "content-length",
        body.len().to_string().as_bytes(),
    );
    if close {
        put_header(&mut out, "connection", b"close");
    } else if keep_alive_10 {
        put_header(&mut out, "connection", b"keep-alive");
    }
    out.extend_from_slice(b"\r\n");
    if !head {
        out.extend_from_slice(body);
    }
    out
}
