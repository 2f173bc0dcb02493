//! What both twins must do, as one check each that each twin's tests call: the drain, running
//! out of descriptors, idle connections, the head limits, `HEAD`, `--log-finish`, and `/events`.

use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::events;
use crate::http::{get, raw_exchange};
use crate::process::{parse_log_line, wait_for, ServerProcess};
use crate::waves::{assert_waves, done_times, fire_ok};

/// A drain cut off by `--graceful-timeout 1`: `bin` must exit 1 and say one request was still in
/// flight. `slow_path` is a request that outlasts the timeout.
pub fn assert_drain_timeout_is_reported(bin: &str, slow_path: &str) {
    let mut server = ServerProcess::start(bin, &["--workers", "1", "--graceful-timeout", "1"]);
    let addr = server.addr;
    let request = format!("GET {slow_path} HTTP/1.0\r\n\r\n");
    let _slow =
        thread::spawn(move || raw_exchange(addr, request.as_bytes(), Duration::from_secs(8)));
    server
        .log_line(Duration::from_secs(5))
        .expect("the slow request was picked up");
    server.signal("TERM");
    let status = server
        .wait(Duration::from_secs(5))
        .expect("exits after the timeout");
    assert_eq!(status.code(), Some(1));
    assert!(
        server.stderr().contains("with 1 request still in flight"),
        "{}",
        server.stderr()
    );
}

/// Under `ulimit -n 64`, 80 idle connections exhaust `bin`'s descriptors. While it is out of
/// them, its thread count stays flat (nothing is restarted or leaked) and no connection it
/// accepted is closed unanswered; a request sent meanwhile waits in the listen queue and is
/// answered once the idle connections close; the server is still running.
pub fn assert_recovers_from_descriptor_exhaustion(bin: &str) {
    let mut server = ServerProcess::start_with(
        "bash",
        &[
            "-c",
            &format!("ulimit -n 64 && exec {bin} --port 0 --workers 2"),
        ],
    );
    let addr = server.addr;
    let idle: Vec<_> = (0..80)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    // While exhausted, a request cannot be accepted; it waits in the listen queue.
    let waiting = thread::spawn(move || get(addr, "/io?ms=0"));
    wait_for("the server to run out of descriptors", || {
        server.stderr().contains("accept failed")
    });
    let threads = || thread_count(server.pid());
    let before = threads();
    let watched = Instant::now();
    let mut most = before;
    while watched.elapsed() < Duration::from_millis(600) {
        most = most.max(threads());
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        most <= before,
        "out of descriptors, the thread count grew from {before:?} to {most:?}"
    );
    for s in &idle {
        s.set_nonblocking(true).expect("non-blocking");
        let mut b = [0u8; 1];
        let peeked = s.peek(&mut b);
        assert!(
            matches!(&peeked, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "an idle connection was closed or answered while descriptors ran out: {peeked:?}"
        );
    }
    assert_eq!(
        server.stderr().matches("accept failed").count(),
        1,
        "said once, not once a retry: {}",
        server.stderr()
    );
    drop(idle);
    let r = waiting.join().expect("the waiting request");
    assert_eq!(r.status, 200, "recovered once descriptors were free");
    wait_for("the server to say it accepts again", || {
        server.stderr().contains("accepting connections again")
    });
    assert_eq!(get(addr, "/healthz").status, 200);
    assert!(
        server.wait(Duration::from_millis(10)).is_none(),
        "still running"
    );
}

/// How many threads process `pid` has (Linux; `None` elsewhere).
fn thread_count(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()
        .map(|d| d.count())
}

/// A thousand connections that send nothing must not keep `addr` from answering at once.
pub fn assert_idle_connections_do_not_block(addr: SocketAddr) {
    let idle: Vec<_> = (0..1000)
        .map(|_| TcpStream::connect(addr).expect("an idle connection"))
        .collect();
    let t = Instant::now();
    assert_eq!(get(addr, "/io?ms=0").status, 200);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    drop(idle);
}

/// A head with more than 100 fields, and one over 32 KiB, get the shared JSON 431 — the same
/// body on both twins, whichever part of the server refused it.
pub fn assert_head_limits_answer_the_shared_431(addr: SocketAddr) {
    let shared = twin_core::limits::head_too_large().body;
    let many: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    let big = format!("X-Big: {}\r\n", "a".repeat(40 * 1024));
    for (what, extra) in [("101 header fields", many), ("a 40 KiB head", big)] {
        let request =
            format!("GET /healthz HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n");
        let r = raw_exchange(addr, request.as_bytes(), Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(r.status, 431, "{what}: {r:?}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
        assert_eq!(r.body, shared, "{what}");
    }
}

/// `HEAD` is answered as `GET` without the body: the same status and headers, the work done.
pub fn assert_head_is_get_without_a_body(addr: SocketAddr) {
    let get_r = get(addr, "/io?ms=20");
    let req = format!("HEAD /io?ms=20 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let head = raw_exchange(addr, req.as_bytes(), Duration::from_secs(5)).expect("an answer");
    assert_eq!(head.status, 200, "{head:?}");
    assert!(head.body.is_empty(), "no body: {head:?}");
    assert_eq!(head.header("content-type"), get_r.header("content-type"));
    assert!(
        head.header("server-timing")
            .is_some_and(|t| t.starts_with("app;dur=2")),
        "{head:?}"
    );
}

/// `--log-ms --log-finish` on `bin`: the pick-up line has milliseconds, and a second line says the
/// status and the time from pick-up — written once the response was sent, so never shorter than
/// the server's own `Server-Timing` for the request.
pub fn assert_log_finish_after_the_response(bin: &str) {
    let server = ServerProcess::start(bin, &["--workers", "1", "--log-ms", "--log-finish"]);
    let r = get(server.addr, "/io?ms=20");
    let app: f64 = r
        .header("server-timing")
        .and_then(|v| burst::client::server_timing(v, "app"))
        .expect("Server-Timing app;dur");
    let start = server
        .log_line(Duration::from_secs(5))
        .expect("a pick-up line");
    assert!(parse_log_line(&start, true).is_some(), "{start:?}");
    let finish = server
        .log_line(Duration::from_secs(5))
        .expect("a finish line");
    let who = format!("] [{}-worker0] 200 GET /io?ms=20 ", server.pid());
    assert!(finish.contains(&who), "{finish:?}");
    let ms: f64 = finish
        .rsplit(' ')
        .next()
        .and_then(|s| s.strip_suffix("ms"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("finish line ends in a duration: {finish:?}"));
    assert!((20.0..1000.0).contains(&ms), "{finish:?}");
    assert!(
        ms >= app,
        "finished {ms} ms after pick-up, before the response's {app} ms"
    );
}

/// `GET /events` follows one request through `steps` (e.g. `queued`, `picked-up`, `finished`):
/// the `picked-up` time is the access-log line's (`server` runs with `--log-ms`) and the body's
/// `started`; the request's `X-Request-Id` is kept and echoed, one is made for a request without
/// it, a bad one gets a 400 — and `/events` itself is not in the access log.
pub fn assert_a_request_s_life_is_published(server: &ServerProcess, steps: &[&str]) {
    let addr = server.addr;
    let (watcher, hello) = events::Watcher::open(addr);
    assert!(
        watcher.head.contains("text/event-stream"),
        "{}",
        watcher.head
    );
    assert!(
        hello.data["workers"].as_u64().is_some(),
        "hello is GET /: {:?}",
        hello.data
    );
    let ask = format!("GET /io?ms=50 HTTP/1.1\r\nHost: {addr}\r\nX-Request-Id: life-1\r\nConnection: close\r\n\r\n");
    let r = raw_exchange(addr, ask.as_bytes(), Duration::from_secs(10)).expect("an answer");
    assert_eq!(r.header("x-request-id"), Some("life-1"), "{}", r.head);
    let body: serde_json::Value = serde_json::from_str(&r.body).expect("a JSON body");
    assert_eq!(body["request_id"], "life-1", "{body}");
    let seen = watcher.until("finished", |e| e.id() == "life-1");
    let life: Vec<&events::Seen> = seen.iter().filter(|e| e.id() == "life-1").collect();
    let names: Vec<&str> = life.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, steps, "{life:#?}");
    let picked = life
        .iter()
        .find(|e| e.name == "picked-up")
        .expect("picked-up");
    assert_eq!(picked.data["started"], body["started"], "{picked:?}");
    assert_eq!(picked.data["worker"], body["worker"], "{picked:?}");
    assert_eq!(picked.data["route"], "/io");
    let finished = life.last().expect("finished");
    assert_eq!(finished.data["status"], 200);
    assert!(
        finished.data["elapsed_us"].as_u64().unwrap_or(0) >= 50_000,
        "{finished:?}"
    );
    assert!(
        life.windows(2).all(|w| w[0].t_us() <= w[1].t_us()),
        "{life:#?}"
    );
    // The log has this request's line — at the picked-up time — and none for /events.
    let lines = server.log_lines_until_quiet(Duration::from_millis(300));
    assert_eq!(lines.len(), 1, "{lines:?}");
    let at = std::time::UNIX_EPOCH + Duration::from_micros(picked.t_us());
    let stamp = twin_core::timefmt::log_stamp(at, true);
    assert!(
        lines[0].starts_with(&format!("[{stamp}]")),
        "{} vs {stamp}",
        lines[0]
    );

    // No id: one is made, echoed and published.
    let r = get(addr, "/async-io?ms=10");
    let id = r.header("x-request-id").expect("a made id").to_owned();
    assert!(
        r.body.contains(&format!("\"request_id\":\"{id}\"")),
        "{}",
        r.body
    );
    watcher.until("finished", |e| e.id() == id);
    // A bad one: the 400 says what is allowed.
    let ask = format!("GET /io?ms=1 HTTP/1.1\r\nHost: {addr}\r\nX-Request-Id: has\tspace\r\nConnection: close\r\n\r\n");
    let r = raw_exchange(addr, ask.as_bytes(), Duration::from_secs(10)).expect("an answer");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("\"error\":\"bad request id\"") && r.body.contains("128"),
        "{}",
        r.body
    );
}

/// Watching does not perturb the experiment: with the default cap's worth of watchers (16),
/// twelve that read and four that never do, `n` at `path` still come in waves of `per_wave`
/// every `period` — and each reading watcher saw every one of them finish.
pub fn assert_watchers_do_not_perturb(
    addr: SocketAddr,
    path: &str,
    n: usize,
    per_wave: usize,
    period: Duration,
) {
    let stalled: Vec<events::Stalled> = (0..4).map(|_| events::Stalled::open(addr)).collect();
    let watchers: Vec<events::Watcher> = (0..12).map(|_| events::Watcher::open(addr).0).collect();
    let b = fire_ok(addr, path, n);
    assert_waves(&done_times(&b), per_wave, period);
    let prefix = format!("{}-", b.run);
    for w in &watchers {
        let mut finished = 0;
        while finished < n {
            let e = w
                .next(Duration::from_secs(5))
                .unwrap_or_else(|| panic!("a watcher saw only {finished} of {n} finish"));
            if e.name == "finished" && e.id().starts_with(&prefix) {
                finished += 1;
            }
        }
    }
    drop(stalled);
}

/// A watcher that stalls holds the server to its buffer: it is told how many events it missed
/// (`lagged`) once it reads again, and it never gets more than were published. Fires `bursts`
/// bursts of `n` at `path` (a server with a small `events_buffer`), whose requests publish
/// `per_request` events each.
pub fn assert_a_stalled_watcher_is_told_what_it_missed(
    addr: SocketAddr,
    path: &str,
    n: usize,
    bursts: usize,
    per_request: usize,
) {
    let stalled = events::Stalled::open(addr);
    // Its hello is out before the bursts begin: a reading watcher opened after it has its own.
    let _ = events::Watcher::open(addr);
    for _ in 0..bursts {
        fire_ok(addr, path, n);
    }
    let got = stalled.read_all(Duration::from_millis(1000));
    let missed: u64 = got
        .iter()
        .filter(|(name, _)| name == "lagged")
        .map(|(_, d)| d["missed"].as_u64().unwrap_or(0))
        .sum();
    let steps = ["queued", "picked-up", "slot", "finished"];
    let requests = got
        .iter()
        .filter(|(name, _)| steps.contains(&name.as_str()))
        .count();
    assert!(
        missed > 0,
        "a stalled watcher lost nothing: it got {requests} events"
    );
    let published = per_request * n * bursts;
    assert!(
        requests as u64 + missed >= published as u64 - 10 && requests < published,
        "got {requests}, told {missed} missed, of about {published} published"
    );
}
