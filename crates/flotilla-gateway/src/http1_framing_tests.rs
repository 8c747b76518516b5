use super::*;

/// A reader that hands out `pieces` one read at a time.
fn pieces(pieces: &[&[u8]]) -> tokio_test_reader::Pieces {
    tokio_test_reader::Pieces::new(pieces)
}

mod tokio_test_reader {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::{AsyncRead, ReadBuf};

    /// Each read returns the next piece whole (as separate TCP segments would).
    pub(super) struct Pieces(VecDeque<Vec<u8>>);

    impl Pieces {
        pub(super) fn new(pieces: &[&[u8]]) -> Self {
            Pieces(pieces.iter().map(|p| p.to_vec()).collect())
        }
    }

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if let Some(piece) = self.0.pop_front() {
                buf.put_slice(&piece);
            }
            Poll::Ready(Ok(()))
        }
    }
}

fn scan_all(input: &[u8]) -> Result<(usize, Vec<u8>, bool), FramingError> {
    let mut scanner = ChunkedScanner::default();
    let mut data = Vec::new();
    let used = scanner.feed(input, &mut |d| data.extend_from_slice(d))?;
    Ok((used, data, scanner.is_done()))
}

#[test]
fn a_chunked_body_ends_after_its_last_chunk_and_trailers() {
    let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nExpires: never\r\n\r\nGET / HTTP/1.1\r\n";
    let (used, data, done) = scan_all(body).unwrap();
    assert!(done);
    assert_eq!(data, b"Wikipedia");
    assert_eq!(&body[used..], b"GET / HTTP/1.1\r\n");
}

#[test]
fn a_chunked_body_split_anywhere_scans_the_same() {
    let body: &[u8] = b"a\r\n0123456789\r\n1F\r\n0123456789012345678901234567890\r\n0\r\n\r\n";
    for split in 0..body.len() {
        let mut scanner = ChunkedScanner::default();
        let mut data = Vec::new();
        let first = scanner
            .feed(&body[..split], &mut |d| data.extend_from_slice(d))
            .unwrap();
        assert_eq!(first, split);
        let second = scanner
            .feed(&body[split..], &mut |d| data.extend_from_slice(d))
            .unwrap();
        assert_eq!(first + second, body.len(), "split at {split}");
        assert!(scanner.is_done());
        assert_eq!(data.len(), 10 + 31);
    }
}

#[test]
fn malformed_chunk_framing_is_refused() {
    for bad in [
        &b"x\r\n"[..],
        b"\r\n",
        b"4\r\nWikiXX",
        b"4\rX",
        b"ffffffffffffffffff\r\n",
        b"0\r\nbad\rX",
    ] {
        assert!(
            matches!(scan_all(bad), Err(FramingError::BadChunk)),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn a_chunked_request_body_split_across_reads_is_decoded_and_the_next_request_kept() {
    let mut io = pieces(&[b"5\r\nhel", b"lo\r\n6\r", b"\n world\r\n0\r\n", b"\r\nNEXT"]);
    let mut buf = ReadBuf::default();
    let mut body = Vec::new();
    read_body(&mut io, &mut buf, BodyLength::Chunked, 1024, &mut body)
        .await
        .unwrap();
    assert_eq!(body, b"hello world");
    // The rest of the last read is the next (pipelined) request's start.
    buf.fill(&mut io).await.unwrap();
    assert_eq!(buf.filled(), b"NEXT");
}

#[tokio::test]
async fn a_content_length_body_stops_at_its_length() {
    let mut io = pieces(&[b"abc", b"defGET /next"]);
    let mut buf = ReadBuf::default();
    let mut body = Vec::new();
    read_body(&mut io, &mut buf, BodyLength::Length(6), 1024, &mut body)
        .await
        .unwrap();
    assert_eq!(body, b"abcdef");
    assert_eq!(buf.filled(), b"GET /next");
}

#[tokio::test]
async fn bodies_over_the_limit_or_cut_short_are_errors() {
    let mut buf = ReadBuf::default();
    let mut body = Vec::new();
    let long = read_body(
        &mut pieces(&[]),
        &mut buf,
        BodyLength::Length(2048),
        1024,
        &mut body,
    )
    .await;
    assert!(matches!(long, Err(FramingError::TooLong(1024))));
    let chunked = read_body(
        &mut pieces(&[b"800\r\n", &[b'x'; 2048]]),
        &mut buf,
        BodyLength::Chunked,
        1024,
        &mut body,
    )
    .await;
    assert!(matches!(chunked, Err(FramingError::TooLong(1024))));
    let mut buf = ReadBuf::default();
    let short = read_body(
        &mut pieces(&[b"abc"]),
        &mut buf,
        BodyLength::Length(6),
        1024,
        &mut Vec::new(),
    )
    .await;
    assert!(matches!(short, Err(FramingError::Truncated)));
}

#[tokio::test]
async fn answers_are_copied_by_their_framing() {
    let chunked: &[u8] = b"3\r\nabc\r\n0\r\n\r\n";
    for (length, input, out, expected, left) in [
        (
            BodyLength::Length(3),
            &[&b"ab"[..], b"cHTTP"][..],
            ChunkedOut::Verbatim,
            &b"abc"[..],
            &b"HTTP"[..],
        ),
        (
            BodyLength::Chunked,
            &[&chunked[..5], &chunked[5..]],
            ChunkedOut::Verbatim,
            chunked,
            b"",
        ),
        (
            BodyLength::Chunked,
            &[&chunked[..5], &chunked[5..]],
            ChunkedOut::Decoded,
            b"abc",
            b"",
        ),
        (
            BodyLength::UntilClose,
            &[&b"to the "[..], b"end"],
            ChunkedOut::Verbatim,
            b"to the end",
            b"",
        ),
        (
            BodyLength::Empty,
            &[&b"HTTP/1.1 200"[..]],
            ChunkedOut::Verbatim,
            b"",
            b"",
        ),
    ] {
        let mut from = pieces(input);
        let mut buf = ReadBuf::default();
        let mut to = Vec::new();
        copy_body(&mut from, &mut buf, &mut to, length, out)
            .await
            .unwrap();
        assert_eq!(to, expected, "{length:?}");
        assert_eq!(buf.filled(), left, "{length:?}");
    }
}

#[tokio::test]
async fn an_answer_cut_short_is_an_error() {
    let mut to = Vec::new();
    let cut = copy_body(
        &mut pieces(&[b"ab"]),
        &mut ReadBuf::default(),
        &mut to,
        BodyLength::Length(3),
        ChunkedOut::Verbatim,
    )
    .await;
    assert!(matches!(cut, Err(FramingError::Truncated)));
    let cut = copy_body(
        &mut pieces(&[b"3\r\nab"]),
        &mut ReadBuf::default(),
        &mut to,
        BodyLength::Chunked,
        ChunkedOut::Verbatim,
    )
    .await;
    assert!(matches!(cut, Err(FramingError::Truncated)));
}
