//! HTTP/1 message heads for the gateway's relay, parsed with `httparse`: the client's
//! request (what routing, framing and the member's request need) and the member's answer
//! (what the client's answer head needs).

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::http1_framing::BodyLength;

/// Most header lines in a head (as hyper's server).
pub(crate) const MAX_HEADERS: usize = 100;
/// Longest head accepted, in bytes; a longer request head is answered 431.
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// Headers that belong to one connection, never relayed.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Why a head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    /// Not HTTP/1 (or framing headers that contradict each other): 400.
    #[error("malformed request")]
    Malformed,
    /// Longer than [`MAX_HEAD`] or more than [`MAX_HEADERS`] lines: 431.
    #[error("request header fields too large")]
    TooLarge,
}

/// What the relay keeps of a client's request head.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub method: String,
    /// The path and query (origin form; from an absolute-form target, its path and query).
    pub path_and_query: String,
    /// The Host header, else the target's authority, else empty.
    pub host: String,
    /// HTTP/1.0.
    pub http10: bool,
    /// Whether the client keeps the connection after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    pub body: BodyLength,
    /// The client's headers as the member gets them: hop-by-hop, Host, credentials,
    /// impersonation and Content-Length dropped, `X-Forwarded-*` set; `name: value\r\n` each.
    pub forwarded: Vec<u8>,
}

impl RequestHead {
    /// The path alone.
    pub(crate) fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(p, _)| p)
    }

    /// Whether the answer to this request has no body (RFC 9112 section 6.3).
    pub(crate) fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

/// Parses a request head at the start of `input`: `None` while incomplete, else the head
/// and its length in bytes.
pub(crate) fn parse_request(
    input: &[u8],
    peer: SocketAddr,
) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let used = match request.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if input.len() > MAX_HEAD => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed),
    };
    if used > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let method = request.method.ok_or(HeadError::Malformed)?;
    let target = request.path.ok_or(HeadError::Malformed)?;
    let http10 = request.version == Some(0);
    let (authority, path_and_query) = split_target(target)?;
    let framing = request_framing(request.headers)?;
    let host = header(request.headers, "host")
        .and_then(ascii)
        .or(authority)
        .unwrap_or("")
        .to_string();
    let connection = tokens(request.headers, "connection");
    let keep_alive = if http10 {
        connection
            .iter()
            .any(|t| t.eq_ignore_ascii_case("keep-alive"))
    } else {
        !connection.iter().any(|t| t.eq_ignore_ascii_case("close"))
    };
    let expect_continue = !http10
        && header(request.headers, "expect")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
    let head = RequestHead {
        method: method.to_string(),
        path_and_query: path_and_query.to_string(),
        forwarded: forwarded(request.headers, &host, peer),
        host,
        http10,
        keep_alive,
        expect_continue,
        body: framing,
    };
    Ok(Some((head, used)))
}

/// The authority (absolute form only) and the path and query of a request target.
fn split_target(target: &str) -> Result<(Option<&str>, &str), HeadError> {
    if target.starts_with('/') || target == "*" {
        return Ok((None, target));
    }
    let rest = ["http://", "https://"]
        .iter()
        .find_map(|scheme| {
            (target.len() > scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme))
                .then(|| &target[scheme.len()..])
        })
        .ok_or(HeadError::Malformed)?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let path = &rest[end..];
    Ok((Some(&rest[..end]), if path.is_empty() { "/" } else { path }))
}

/// A request's body length (RFC 9112 section 6.3): chunked, Content-Length, or none.
fn request_framing(headers: &[httparse::Header<'_>]) -> Result<BodyLength, HeadError> {
    let encodings = tokens(headers, "transfer-encoding");
    let lengths = content_lengths(headers)?;
    if !encodings.is_empty() {
        let chunked_last = encodings
            .last()
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
        let chunked_once = encodings
            .iter()
            .filter(|t| t.eq_ignore_ascii_case("chunked"))
            .count()
            == 1;
        // Only `chunked` alone can be relayed; both framings at once is a smuggling attempt.
        if !chunked_last || !chunked_once || encodings.len() > 1 || lengths.is_some() {
            return Err(HeadError::Malformed);
        }
        return Ok(BodyLength::Chunked);
    }
    Ok(match lengths {
        Some(0) | None => BodyLength::Empty,
        Some(n) => BodyLength::Length(n),
    })
}

/// The Content-Length (every value the same), if any.
fn content_lengths(headers: &[httparse::Header<'_>]) -> Result<Option<u64>, HeadError> {
    let mut length = None;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
    {
        for v in h.value.split(|b| *b == b',') {
            let v = v.trim_ascii();
            if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
                return Err(HeadError::Malformed);
            }
            let n: u64 = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(HeadError::Malformed)?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::Malformed);
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// The first value of header `name`.
fn header<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fn ascii(value: &[u8]) -> Option<&str> {
    std::str::from_utf8(value).ok().filter(|s| s.is_ascii())
}

/// The comma-separated tokens of every `name` header, trimmed, empty ones skipped.
fn tokens<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> Vec<&'h str> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .filter_map(|h| ascii(h.value))
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// The client's headers as the member gets them (see [`RequestHead::forwarded`]).
fn forwarded(headers: &[httparse::Header<'_>], host: &str, peer: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    for h in headers {
        let n = h.name;
        let dropped = is_hop_by_hop(n)
            || ["host", "authorization", "content-length"]
                .iter()
                .chain(&["x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"])
                .any(|d| d.eq_ignore_ascii_case(n))
            || (n.len() >= 12 && n[..12].eq_ignore_ascii_case("impersonate-"));
        if dropped {
            continue;
        }
        put_header(&mut out, n, h.value);
    }
    let mut line = String::with_capacity(64);
    if let Some(prior) = header(headers, "x-forwarded-for").and_then(ascii) {
        let _ = write!(line, "{prior}, ");
    }
    let _ = write!(line, "{}", peer.ip());
    put_header(&mut out, "x-forwarded-for", line.as_bytes());
    put_header(&mut out, "x-forwarded-host", host.as_bytes());
    put_header(&mut out, "x-forwarded-proto", b"http");
    out
}

/// Appends `name: value\r\n`.
pub(crate) fn put_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// What the relay keeps of a member's answer head.
#[derive(Debug)]
pub(crate) struct AnswerHead {
    pub status: u16,
    pub reason: String,
    pub body: BodyLength,
    /// Whether the member keeps the connection after this answer.
    pub keep_alive: bool,
    /// The member's headers as the client gets them: hop-by-hop and
    /// `x-flotilla-gateway-cluster` dropped, Content-Length kept only for bodiless answers.
    pub headers: Vec<u8>,
}

/// Parses an answer head at the start of `input` (to a HEAD request when `head`): `None`
/// while incomplete, else the head and its length.
pub(crate) fn parse_answer(
    input: &[u8],
    head: bool,
) -> Result<Option<(AnswerHead, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut answer = httparse::Response::new(&mut headers);
    let used = match answer.parse(input) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
        Ok(httparse::Status::Partial) if input.len() <= MAX_HEAD => return Ok(None),
        Ok(_) | Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed),
    };
    let status = answer.code.ok_or(HeadError::Malformed)?;
    let connection = tokens(answer.headers, "connection");
    let keep_alive = if answer.version == Some(0) {
        connection
            .iter()
            .any(|t| t.eq_ignore_ascii_case("keep-alive"))
    } else {
        !connection.iter().any(|t| t.eq_ignore_ascii_case("close"))
    };
    let body = answer_framing(answer.headers, status, head)?;
    let mut out = Vec::with_capacity(512);
    for h in answer.headers.iter() {
        let n = h.name;
        let content_length = n.eq_ignore_ascii_case("content-length");
        if is_hop_by_hop(n)
            || n.eq_ignore_ascii_case(CLUSTER_HEADER)
            || (content_length && body != BodyLength::Empty)
        {
            continue;
        }
        put_header(&mut out, n, h.value);
    }
    let head = AnswerHead {
        status,
        reason: answer.reason.unwrap_or("").to_string(),
        body,
        keep_alive,
        headers: out,
    };
    Ok(Some((head, used)))
}

/// The answer header naming the member that answered.
pub(crate) const CLUSTER_HEADER: &str = "x-flotilla-gateway-cluster";

/// An answer's body length (RFC 9112 section 6.3).
fn answer_framing(
    headers: &[httparse::Header<'_>],
    status: u16,
    head: bool,
) -> Result<BodyLength, HeadError> {
    if head || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(BodyLength::Empty);
    }
    let encodings = tokens(headers, "transfer-encoding");
    if !encodings.is_empty() {
        let chunked = encodings
            .last()
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
        return Ok(if chunked {
            BodyLength::Chunked
        } else {
            BodyLength::UntilClose
        });
    }
    Ok(match content_lengths(headers)? {
        Some(n) => BodyLength::Length(n),
        None => BodyLength::UntilClose,
    })
}

#[cfg(test)]
#[path = "http1_head_tests.rs"]
mod tests;
