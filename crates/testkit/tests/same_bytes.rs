//! Same bytes, same answer: both twins, started side by side in this process, are sent the same
//! raw byte streams — what RFC 9112 requires of a server, the bad-input catalogue, and heads
//! generated at random — and must answer alike: the same statuses, bodies and header names, the
//! same connection closed or kept. Where RFC 9112 says MUST, the rows say what both must do.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use testkit::wire::{differences, exchange, Exchange, Send};
use twin_core::{Config, ServerKind};

/// One pool and one event loop for every test here, 2 workers each, T = 100 ms.
fn twins() -> (SocketAddr, SocketAddr) {
    static TWINS: OnceLock<(SocketAddr, SocketAddr)> = OnceLock::new();
    *TWINS.get_or_init(|| start_twins(|_| {}))
}

/// A pool and an event loop with `set` applied to their configuration, serving until the test
/// process ends.
fn start_twins(set: impl Fn(&mut Config)) -> (SocketAddr, SocketAddr) {
    let listen = || TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let config = |kind| {
        let mut c = Config::for_tests(kind, 2, 100);
        set(&mut c);
        c
    };
    let pool = pool_server::start(listen(), config(ServerKind::Pool)).expect("start the pool");
    let event_loop =
        async_server::start(listen(), config(ServerKind::EventLoop)).expect("start the event loop");
    let addrs = (
        twin_core::run::Twin::addr(&pool),
        twin_core::run::Twin::addr(&event_loop),
    );
    std::mem::forget(pool);
    std::mem::forget(event_loop);
    addrs
}

/// Send `bytes` to both twins; both exchanges.
fn both(bytes: &[u8], how: Send) -> (Exchange, Exchange) {
    let (pool, event_loop) = twins();
    let (p, e) = std::thread::scope(|s| {
        let p = s.spawn(|| exchange(pool, bytes, how));
        let e = s.spawn(|| exchange(event_loop, bytes, how));
        (p.join(), e.join())
    });
    (
        p.expect("the pool's exchange"),
        e.expect("the event loop's exchange"),
    )
}

/// What both twins must do with a byte stream.
#[derive(Debug, Clone, Copy)]
struct Must {
    /// The statuses of the answers, in order.
    statuses: &'static [u16],
    /// The connection is closed after them (else it is kept open).
    closed: bool,
}

const fn answer(statuses: &'static [u16]) -> Must {
    Must {
        statuses,
        closed: true,
    }
}

fn rows() -> Vec<(&'static str, Vec<u8>, Must)> {
    let get = |target: &str, extra: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n").into_bytes()
    };
    let smuggled =
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 41\r\n\r\n\
GET /io?ms=1 HTTP/1.1\r\nHost: t\r\n\r\n"
            .to_vec();
    let mut rows = vec![
        ("two Content-Lengths, a request in the body", smuggled, answer(&[400])),
        ("Transfer-Encoding: gzip", get("/healthz", "Transfer-Encoding: gzip\r\n"), answer(&[400])),
        ("Transfer-Encoding: xchunked", get("/healthz", "Transfer-Encoding: xchunked\r\n"), answer(&[400])),
        (
            "Transfer-Encoding: chunked, identity",
            get("/healthz", "Transfer-Encoding: chunked, identity\r\n"),
            answer(&[400]),
        ),
        (
            "Transfer-Encoding in HTTP/1.0",
            b"GET /healthz HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            answer(&[400]),
        ),
        ("Content-Length: -1", get("/healthz", "Content-Length: -1\r\n"), answer(&[400])),
        ("Content-Length: +5", get("/healthz", "Content-Length: +5\r\n"), answer(&[400])),
        ("Content-Length: 5, 5", get("/healthz", "Content-Length: 5, 5\r\n"), answer(&[400])),
        (
            "Transfer-Encoding and Content-Length: chunked wins, then closed",
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
0\r\n\r\n"
                .to_vec(),
            answer(&[200]),
        ),
        ("a NUL in a header value", get("/healthz", "X-A: a\0b\r\n"), answer(&[400])),
        ("a bare CR in a header value", get("/healthz", "X-A: a\rb\r\n"), answer(&[400])),
        (
            "HTTP/1.1 without Host",
            b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
            answer(&[400]),
        ),
        ("HTTP/1.1 with two Hosts", get("/healthz", "Host: u\r\n"), answer(&[400])),
        (
            "HTTP/1.0 without Host",
            b"GET /healthz HTTP/1.0\r\n\r\n".to_vec(),
            answer(&[200]),
        ),
        (
            "HTTP/2.0 in the request line",
            b"GET /healthz HTTP/2.0\r\nHost: t\r\n\r\n".to_vec(),
            answer(&[400]),
        ),
        (
            "the HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            answer(&[400]),
        ),
        (
            "a TLS ClientHello",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03hello\r\n\r\n".to_vec(),
            answer(&[400]),
        ),
        (
            "a TLS ClientHello with no blank line (curl https:// by mistake)",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x8a\x1f".to_vec(),
            answer(&[400]),
        ),
        (
            "a chunked body nobody reads, then a second request",
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n\
GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                .to_vec(),
            answer(&[200, 200]),
        ),
        (
            "a body nobody reads, then a second request",
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                .to_vec(),
            answer(&[200, 200]),
        ),
        (
            "a body declared and cut short, then nothing",
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhe".to_vec(),
            answer(&[200]),
        ),
        (
            "HEAD /favicon.ico",
            b"HEAD /favicon.ico HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec(),
            answer(&[204]),
        ),
        (
            "HEAD /events",
            b"HEAD /events HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec(),
            answer(&[200]),
        ),
        (
            "POST /events",
            b"POST /events HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec(),
            answer(&[404]),
        ),
        (
            "bare LF line ends",
            b"GET /healthz HTTP/1.1\nHost: t\nConnection: close\n\n".to_vec(),
            answer(&[200]),
        ),
        (
            "a non-ASCII byte in the path",
            "GET /h\u{e9} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".as_bytes().to_vec(),
            answer(&[400]),
        ),
        (
            "a non-ASCII byte in the query",
            "GET /io?ms=\u{e9} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".as_bytes().to_vec(),
            answer(&[400]),
        ),
        (
            "a non-ASCII byte in X-Request-Id",
            get("/healthz", "X-Request-Id: caf\u{e9}\r\n"),
            answer(&[400]),
        ),
        ("a fragment in the target", get("/io?ms=5#frag", ""), answer(&[200])),
        ("an absolute-form target", get("http://t/io?ms=5", ""), answer(&[200])),
        ("a 204 for /favicon.ico", get("/favicon.ico", ""), answer(&[204])),
        ("a 404", get("/nowhere", ""), answer(&[404])),
        (
            "a 405",
            b"DELETE /io HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec(),
            answer(&[405]),
        ),
        ("HEAD /healthz", b"HEAD /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec(), answer(&[200])),
        ("Expect: something else", get("/healthz", "Expect: tea\r\n"), answer(&[200])),
        ("Upgrade: h2c", get("/healthz", "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n"), answer(&[200])),
        (
            "Connection: close, then a second request",
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
                .to_vec(),
            answer(&[200]),
        ),
        (
            "two requests on one connection",
            b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                .to_vec(),
            answer(&[200, 200]),
        ),
        (
            "HTTP/1.0 keep-alive, then a last request",
            b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /healthz HTTP/1.0\r\n\r\n".to_vec(),
            answer(&[200, 200]),
        ),
        (
            "HTTP/1.1 kept alive",
            b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            Must {
                statuses: &[200],
                closed: false,
            },
        ),
        (
            "a 431 (too many headers)",
            get("/healthz", &(0..150).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()),
            answer(&[431]),
        ),
        (
            "a 431 (a 64 KiB head)",
            get("/healthz", &format!("X-Big: {}\r\n", "a".repeat(64 * 1024))),
            answer(&[431]),
        ),
    ];
    // The existing bad-input catalogue, held to the same rule.
    for (name, bytes, _) in testkit::bad_inputs() {
        rows.push((name, bytes, answer(&[])));
    }
    rows
}

#[test]
fn every_row_gets_the_same_answer_from_both_twins() {
    let mut failures = Vec::new();
    for (name, bytes, must) in rows() {
        let quiet = if must.closed {
            Duration::from_secs(2)
        } else {
            Duration::from_millis(400)
        };
        let (pool, event_loop) = both(
            &bytes,
            Send {
                quiet,
                ..Send::default()
            },
        );
        for d in differences(&pool, &event_loop) {
            failures.push(format!("{name}: {d}"));
        }
        if !must.statuses.is_empty() {
            let got: Vec<u16> = pool.answers.iter().map(|a| a.status).collect();
            if got != must.statuses || pool.closed != must.closed {
                failures.push(format!(
                    "{name}: must answer {:?} and {}, the pool answered {got:?}, {}",
                    must.statuses,
                    if must.closed { "close" } else { "stay open" },
                    if pool.closed { "closed" } else { "stayed open" },
                ));
            }
        }
        if pool.answers.is_empty() || pool.leftover > 0 {
            failures.push(format!(
                "{name}: every stream gets a whole answer; {} answers, {} bytes left",
                pool.answers.len(),
                pool.leftover
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_answer_has_the_headers_a_measurement_needs() {
    let (pool, event_loop) = twins();
    for addr in [pool, event_loop] {
        for target in [
            "/healthz",
            "/io?ms=1",
            "/",
            "/nowhere",
            "/io?ms=-1",
            "/favicon.ico",
        ] {
            let req = format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            let ex = exchange(addr, req.as_bytes(), Send::default());
            let a = &ex.answers[0];
            assert_eq!(
                a.header("cache-control"),
                Some("no-store"),
                "{target} {a:?}"
            );
            assert!(a.header("date").is_some(), "{target} {a:?}");
            assert!(a.header("server").is_some(), "{target} {a:?}");
            assert_eq!(a.header("connection"), Some("close"), "echoed: {target}");
            if a.status == 204 {
                assert_eq!(a.header("content-length"), None, "RFC 9110 §8.6 MUST NOT");
            }
            if let Some(timing) = a.header("server-timing") {
                for metric in timing.split(',') {
                    assert!(metric.contains("desc="), "{timing}");
                }
            }
        }
    }
}

#[test]
fn a_client_that_shuts_its_sending_side_still_gets_its_answer() {
    let (pool, event_loop) = both(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        Send {
            half_close: true,
            ..Send::default()
        },
    );
    for (twin, ex) in [("pool", &pool), ("event loop", &event_loop)] {
        assert_eq!(ex.answers.len(), 1, "{twin}: {ex:?}");
        assert_eq!(ex.answers[0].status, 200, "{twin}");
    }
}

/// Eight pipelined requests on one connection run one after another, in order, as a sync worker
/// reads them: 8 × 50 ms, not 50 ms on several workers at once.
#[test]
fn pipelined_requests_run_one_at_a_time_in_order() {
    let mut bytes = Vec::new();
    for i in 0..8 {
        let close = if i == 7 { "Connection: close\r\n" } else { "" };
        bytes.extend_from_slice(
            format!("GET /io?ms=50 HTTP/1.1\r\nHost: t\r\nX-Request-Id: p{i}\r\n{close}\r\n")
                .as_bytes(),
        );
    }
    let (pool, event_loop) = twins();
    for addr in [pool, event_loop] {
        let t = std::time::Instant::now();
        let ex = exchange(addr, &bytes, Send::default());
        let took = t.elapsed();
        let ids: Vec<&str> = ex
            .answers
            .iter()
            .filter_map(|a| a.header("x-request-id"))
            .collect();
        assert_eq!(
            ids,
            ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"],
            "{addr}"
        );
        assert!(took >= Duration::from_millis(8 * 50), "{addr}: {took:?}");
        assert!(
            took < Duration::from_millis(8 * 50 + 1500),
            "{addr}: {took:?}"
        );
    }
}

/// Twins with short timeouts: an idle keep-alive connection goes after 0.3 s, a head must be in
/// within 0.8 s.
fn impatient_twins() -> (SocketAddr, SocketAddr) {
    static TWINS: OnceLock<(SocketAddr, SocketAddr)> = OnceLock::new();
    *TWINS.get_or_init(|| {
        start_twins(|c| {
            c.timeout_keep_alive_s = 0.3;
            c.timeout_header_s = 0.8;
        })
    })
}

/// How long after `from` the server closed `s` (reading nothing but the close), and what it
/// sent first.
fn closed_after(s: &mut TcpStream, from: Instant) -> (Duration, Vec<u8>) {
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return (from.elapsed(), got),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The timeouts, the same on both: a connection that never sends, a slowloris that sends a byte
/// every 100 ms, and a keep-alive connection left idle after its answer are each let go
/// without an answer once their timeout has passed — and not before.
#[test]
fn slow_and_idle_connections_are_let_go_after_the_timeouts() {
    let (pool, event_loop) = impatient_twins();
    let (keep_alive, header) = (Duration::from_millis(300), Duration::from_millis(800));
    // Well past the timeout on 2 busy cores, yet well short of the next timeout's length.
    let slack = Duration::from_millis(600);
    for (twin, addr) in [("pool", pool), ("event loop", event_loop)] {
        std::thread::scope(|scope| {
            let never = scope.spawn(|| {
                let mut s = TcpStream::connect(addr).expect("connect");
                closed_after(&mut s, Instant::now())
            });
            let slowloris = scope.spawn(|| {
                let mut s = TcpStream::connect(addr).expect("connect");
                let t = Instant::now();
                let head = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa";
                for b in head.chunks(1) {
                    if s.write_all(b).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                closed_after(&mut s, t)
            });
            let idle = scope.spawn(|| {
                let mut s = TcpStream::connect(addr).expect("connect");
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                    .expect("send");
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).expect("the answer");
                assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{twin}");
                // A request sent before the timeout is served on the same connection.
                std::thread::sleep(keep_alive / 3);
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                    .expect("send again");
                let n = s.read(&mut buf).expect("the second answer");
                assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{twin}: kept alive");
                closed_after(&mut s, Instant::now())
            });
            for (what, limit, joined) in [
                ("never sent", header, never.join()),
                ("slowloris", header, slowloris.join()),
                ("idle after an answer", keep_alive, idle.join()),
            ] {
                let (after, sent) = joined.expect(what);
                assert!(
                    after + Duration::from_millis(50) >= limit && after < limit + slack,
                    "{twin}, {what}: closed after {after:?}; the timeout is {limit:?}"
                );
                assert!(
                    sent.is_empty(),
                    "{twin}, {what}: closed without an answer: {sent:?}"
                );
            }
        });
    }
}

/// A `GET /events` stream is no request head waiting to come: it outlives both timeouts.
#[test]
fn an_events_stream_outlives_the_timeouts() {
    let (pool, event_loop) = impatient_twins();
    for (twin, addr) in [("pool", pool), ("event loop", event_loop)] {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("send");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).expect("the stream's head");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{twin}");
        let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
        for name in ["server: ", "date: ", "cache-control: no-store"] {
            assert!(
                head.contains(name),
                "{twin}: every answer has {name}: {head}"
            );
        }
        // Past the header timeout (0.8 s) and the keep-alive one (0.3 s), twice over.
        std::thread::sleep(Duration::from_millis(1600));
        s.set_nonblocking(true).expect("non-blocking");
        loop {
            match s.read(&mut buf) {
                Ok(0) => panic!("{twin}: the stream was closed"),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{twin}: the stream failed: {e}"),
            }
        }
    }
}

/// `ab -k`: HTTP/1.0 clients that ask to keep their connection get `Connection: keep-alive` and
/// the connection kept, so 16 of them at once, 4 requests each, all finish at once.
#[test]
fn http10_keep_alive_clients_all_finish() {
    let (pool, event_loop) = twins();
    for addr in [pool, event_loop] {
        let t = Instant::now();
        std::thread::scope(|scope| {
            let clients: Vec<_> = (0..16)
                .map(|_| {
                    scope.spawn(move || {
                        let mut s = TcpStream::connect(addr).expect("connect");
                        s.set_read_timeout(Some(Duration::from_secs(5)))
                            .expect("timeout");
                        for _ in 0..4 {
                            s.write_all(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                                .expect("send");
                            let mut buf = Vec::new();
                            let mut chunk = [0u8; 1024];
                            let answer = loop {
                                let n = s.read(&mut chunk).expect("an answer, not a hang");
                                assert!(n > 0, "closed: the client asked to keep it");
                                buf.extend_from_slice(&chunk[..n]);
                                let (answers, _) = testkit::wire::parse_all(&buf, false);
                                if let Some(a) = answers.into_iter().next() {
                                    break a;
                                }
                            };
                            assert_eq!(answer.status, 200);
                            assert_eq!(answer.header("connection"), Some("keep-alive"));
                        }
                    })
                })
                .collect();
            for c in clients {
                c.join().expect("a keep-alive client");
            }
        });
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "{addr}: {:?}",
            t.elapsed()
        );
    }
}

/// A head: method, target, version, the separators between them, header lines, line ends.
fn heads() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![
        Just("GET".to_owned()),
        Just("HEAD".to_owned()),
        Just("POST".to_owned()),
        Just("OPTIONS".to_owned()),
        Just("get".to_owned()),
        "[A-Z!#$%&'*+.^_`|~-]{1,8}",
        "[ -~]{0,6}",
    ];
    let target = prop_oneof![
        Just("/healthz".to_owned()),
        Just("/io?ms=0".to_owned()),
        Just("/".to_owned()),
        Just("*".to_owned()),
        Just("http://t/healthz".to_owned()),
        Just("/healthz#f".to_owned()),
        Just("//healthz".to_owned()),
        "/[ -~]{0,12}",
        "[ -~]{0,12}",
    ];
    let version = prop_oneof![
        Just("HTTP/1.1"),
        Just("HTTP/1.0"),
        Just("HTTP/1.2"),
        Just("HTTP/2.0"),
        Just("http/1.1"),
        Just("HTTP/1"),
        Just(""),
    ];
    let sep = prop_oneof![Just(" "), Just(" "), Just(" "), Just("  "), Just("\t")];
    let name = prop_oneof![
        Just("Host".to_owned()),
        Just("Content-Length".to_owned()),
        Just("Transfer-Encoding".to_owned()),
        Just("Connection".to_owned()),
        Just("X-Request-Id".to_owned()),
        Just("Expect".to_owned()),
        "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,10}",
        "[ -~]{0,8}",
    ];
    let value = prop_oneof![
        Just(b"close".to_vec()),
        Just(b"keep-alive".to_vec()),
        Just(b"chunked".to_vec()),
        Just(b"0".to_vec()),
        Just(b"3".to_vec()),
        Just(b"t".to_vec()),
        proptest::collection::vec(
            prop_oneof![
                8 => 0x21u8..0x7f,
                1 => Just(b' '),
                1 => Just(b'\t'),
                1 => Just(0x00u8),
                1 => Just(b'\r'),
                1 => Just(0xe9u8),
                1 => Just(b','),
            ],
            0..12
        ),
    ];
    let line_end = prop_oneof![8 => Just("\r\n"), 1 => Just("\n")];
    let fields = proptest::collection::vec((name, value, line_end.clone()), 0..6);
    (
        method,
        sep.clone(),
        target,
        sep,
        version,
        line_end.clone(),
        fields,
        line_end,
    )
        .prop_map(|(method, s1, target, s2, version, end, fields, last)| {
            let mut head = format!("{method}{s1}{target}{s2}{version}{end}").into_bytes();
            for (name, value, end) in fields {
                head.extend_from_slice(name.as_bytes());
                head.extend_from_slice(b": ");
                head.extend_from_slice(&value);
                head.extend_from_slice(end.as_bytes());
            }
            // Each connection ends after its first answer, whatever the head asked for.
            head.extend_from_slice(b"Connection: close\r\n");
            head.extend_from_slice(last.as_bytes());
            head
        })
}

proptest! {
    // No file of failures is kept: a failing case is printed, and the next run draws afresh.
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    /// Generated heads get the same answer from both twins: status, body, header names.
    #[test]
    fn generated_heads_get_the_same_answer(head in heads()) {
        let (pool, event_loop) = both(&head, Send { quiet: Duration::from_millis(600), ..Send::default() });
        prop_assert_eq!(
            differences(&pool, &event_loop),
            Vec::<String>::new(),
            "{:?}",
            String::from_utf8_lossy(&head)
        );
    }
}

/// Connections accepted before a drain — one new, one kept alive after an answer — whose
/// requests come 50 ms after the drain began, get the JSON 503 from both: the same answer, not a
/// close.
#[test]
fn a_request_sent_just_after_the_drain_began_gets_the_same_503() {
    fn late<T: twin_core::run::Twin + std::marker::Send + 'static>(twin: T) -> Vec<Exchange> {
        let addr = twin.addr();
        let fresh = TcpStream::connect(addr).expect("connect");
        let mut kept = TcpStream::connect(addr).expect("connect");
        // Served before the drain: the twin has taken this connection.
        kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("send");
        let mut buf = [0u8; 1024];
        let n = kept.read(&mut buf).expect("the first answer");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        let drain = std::thread::spawn(move || twin.shutdown(Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(50));
        let out = [fresh, kept]
            .into_iter()
            .map(|mut s| {
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                    .expect("send during the drain");
                s.set_read_timeout(Some(Duration::from_secs(3)))
                    .expect("timeout");
                let mut got = Vec::new();
                let _ = s.read_to_end(&mut got);
                let (answers, leftover) = testkit::wire::parse_all(&got, false);
                Exchange {
                    answers,
                    closed: true,
                    leftover,
                }
            })
            .collect();
        drain.join().expect("the drain");
        out
    }
    let listen = || TcpListener::bind("127.0.0.1:0").expect("bind");
    let pool = pool_server::start(listen(), Config::for_tests(ServerKind::Pool, 2, 100))
        .expect("start the pool");
    let event_loop =
        async_server::start(listen(), Config::for_tests(ServerKind::EventLoop, 2, 100))
            .expect("start the event loop");
    let (pool, event_loop) = (late(pool), late(event_loop));
    for (which, (p, e)) in ["new", "kept alive"]
        .iter()
        .zip(pool.iter().zip(&event_loop))
    {
        assert_eq!(differences(p, e), Vec::<String>::new(), "{which}");
        let statuses: Vec<u16> = p.answers.iter().map(|a| a.status).collect();
        assert_eq!(statuses, [503], "{which}: {p:?}");
    }
}
