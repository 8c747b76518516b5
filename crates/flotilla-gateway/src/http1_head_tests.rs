use super::*;

fn peer() -> SocketAddr {
    "10.1.2.3:4567".parse().unwrap()
}

fn request(text: &str) -> Result<Option<(RequestHead, usize)>, HeadError> {
    parse_request(text.as_bytes(), peer())
}

fn forwarded_text(head: &RequestHead) -> String {
    String::from_utf8(head.forwarded.clone()).unwrap()
}

#[test]
fn a_request_head_is_read_and_its_headers_prepared_for_the_member() {
    let text = "GET /cart/7?x=1 HTTP/1.1\r\nHost: shop.example.com:8080\r\nConnection: keep-alive, Upgrade\r\n\
        Upgrade: websocket\r\nAuthorization: Bearer t\r\nImpersonate-User: admin\r\nX-Forwarded-For: 1.1.1.1\r\n\
        X-Custom: a\r\nX-Custom: b\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello";
    let (head, used) = request(text).unwrap().unwrap();
    assert_eq!(&text[used..], "5\r\nhello");
    assert_eq!(head.method, "GET");
    assert_eq!(head.path_and_query, "/cart/7?x=1");
    assert_eq!(head.path(), "/cart/7");
    assert_eq!(head.host, "shop.example.com:8080");
    assert!(head.keep_alive && !head.http10 && !head.expect_continue);
    assert_eq!(head.body, BodyLength::Chunked);
    assert_eq!(
        forwarded_text(&head),
        "X-Custom: a\r\nX-Custom: b\r\nx-forwarded-for: 1.1.1.1, 10.1.2.3\r\n\
         x-forwarded-host: shop.example.com:8080\r\nx-forwarded-proto: http\r\n"
    );
}

#[test]
fn an_incomplete_head_waits_for_more() {
    assert!(request("GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
    assert!(request("GE").unwrap().is_none());
}

#[test]
fn pipelined_requests_are_read_one_after_the_other() {
    let text = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    let (first, used) = request(text).unwrap().unwrap();
    assert_eq!(first.path(), "/a");
    let (second, rest) = request(&text[used..]).unwrap().unwrap();
    assert_eq!(second.path(), "/b");
    assert_eq!(used + rest, text.len());
}

#[test]
fn keep_alive_follows_the_version_and_connection_header() {
    let keep = |t: &str| request(t).unwrap().unwrap().0.keep_alive;
    assert!(keep("GET / HTTP/1.1\r\n\r\n"));
    assert!(!keep("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n"));
    assert!(!keep("GET / HTTP/1.0\r\n\r\n"));
    assert!(keep("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
}

#[test]
fn expect_continue_and_body_lengths_are_recognised() {
    let (head, _) =
        request("PUT /x HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 12\r\n\r\n")
            .unwrap()
            .unwrap();
    assert!(head.expect_continue);
    assert_eq!(head.body, BodyLength::Length(12));
    let (head, _) = request("POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(head.body, BodyLength::Empty);
}

#[test]
fn an_absolute_form_target_routes_on_its_path_and_authority() {
    let (head, _) = request("GET http://shop.example.com/cart?q HTTP/1.1\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(head.host, "shop.example.com");
    assert_eq!(head.path_and_query, "/cart?q");
    let (head, _) = request("GET http://shop.example.com HTTP/1.1\r\nHost: other\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!((head.host.as_str(), head.path()), ("other", "/"));
}

#[test]
fn bad_requests_are_refused() {
    for bad in [
        "GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        "CONNECT example.com:443 HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        "GET /\0 HTTP/1.1\r\n\r\n",
    ] {
        assert_eq!(request(bad).unwrap_err(), HeadError::Malformed, "{bad:?}");
    }
}

#[test]
fn oversized_heads_are_too_large() {
    let long = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n", "a".repeat(MAX_HEAD));
    assert_eq!(request(&long).unwrap_err(), HeadError::TooLarge);
    let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
    assert_eq!(request(&many).unwrap_err(), HeadError::TooLarge);
}

fn answer(text: &str, head: bool) -> (AnswerHead, usize) {
    parse_answer(text.as_bytes(), head).unwrap().unwrap()
}

#[test]
fn answer_framing_follows_the_status_the_method_and_the_headers() {
    let text =
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nX-A: 1\r\n\r\nhello";
    let (a, used) = answer(text, false);
    assert_eq!(
        (a.status, a.body, a.keep_alive),
        (200, BodyLength::Length(5), true)
    );
    assert_eq!(&text[used..], "hello");
    assert_eq!(String::from_utf8(a.headers).unwrap(), "X-A: 1\r\n");
    let (a, _) = answer("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true);
    assert_eq!(a.body, BodyLength::Empty);
    assert_eq!(
        String::from_utf8(a.headers).unwrap(),
        "Content-Length: 5\r\n"
    );
    for status in ["204 No Content", "304 Not Modified", "100 Continue"] {
        let (a, _) = answer(
            &format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\n\r\n"),
            false,
        );
        assert_eq!(a.body, BodyLength::Empty, "{status}");
    }
    let (a, _) = answer(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n",
        false,
    );
    assert_eq!(a.body, BodyLength::Chunked);
    assert!(a.headers.is_empty());
    let (a, _) = answer("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", false);
    assert_eq!((a.body, a.keep_alive), (BodyLength::UntilClose, false));
    let (a, _) = answer("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false);
    assert_eq!((a.body, a.keep_alive), (BodyLength::Length(0), false));
    let (a, _) = answer(
        "HTTP/1.1 503 Service Unavailable\r\nX-Flotilla-Gateway-Cluster: spoofed\r\nContent-Length: 0\r\n\r\n",
        false,
    );
    assert_eq!((a.status, a.reason.as_str()), (503, "Service Unavailable"));
    assert!(a.headers.is_empty());
}

#[test]
fn bad_answers_are_refused() {
    assert!(parse_answer(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false).is_err());
    assert!(parse_answer(b"nonsense\r\n\r\n", false).is_err());
    assert!(
        parse_answer(b"HTTP/1.1 200 OK\r\n", false)
            .unwrap()
            .is_none()
    );
}
