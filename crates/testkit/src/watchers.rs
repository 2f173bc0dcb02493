//! What watching and giving up cost, checked the same way on both twins: at most
//! `--max-watchers` watchers (a JSON 503 beyond), a closed watcher's place given back at once, a
//! stalled one let go, no wake-ups while nothing happens, `HEAD /events` answered as a head, and
//! requests whose client reset its connection skipped (a `499` line), not served to nobody.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::events::{Stalled, Watcher};
use crate::{raw_exchange, ServerProcess};

const EVENTS: &[u8] =
    b"GET /events HTTP/1.1\r\nHost: twin\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n";

/// Ask for `/events` and read only the status line and what follows it briefly.
fn try_watch(addr: SocketAddr) -> (u16, String) {
    let r = raw_exchange(addr, EVENTS, Duration::from_millis(500));
    r.map_or((0, String::new()), |r| (r.status, r.body))
}

/// With `cap` watchers open, one more gets the JSON 503 that names `--max-watchers`; once one
/// of them closes, a new one gets its place at once (its connection is seen to be gone).
pub fn assert_watchers_are_capped(addr: SocketAddr, cap: usize) {
    let mut held: Vec<Watcher> = (0..cap).map(|_| Watcher::open(addr).0).collect();
    let (status, body) = try_watch(addr);
    assert_eq!(status, 503, "watcher {} of {cap}: {body}", cap + 1);
    assert!(
        body.contains("\"error\":\"overloaded\"")
            && body.contains(&format!("--max-watchers {cap}")),
        "{body}"
    );
    drop(held.pop());
    let end = Instant::now() + Duration::from_secs(2);
    loop {
        let (status, body) = try_watch(addr);
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < end,
            "a closed watcher's place was not given back within 2 s: {status} {body}"
        );
    }
}

/// A watcher that never reads is let go once a write to it has stalled for the server's limit
/// (`events_stall`, short in tests): on a server with one place, the place is free again soon
/// after the events it could not take. `flood` publishes a few hundred kilobytes of events.
pub fn assert_a_stalled_watcher_is_let_go(addr: SocketAddr, stall: Duration, flood: impl Fn()) {
    let stalled = Stalled::open(addr);
    assert_eq!(
        try_watch(addr).0,
        503,
        "the stalled watcher has the only place"
    );
    flood();
    let flooded = Instant::now();
    let end = flooded + stall * 4 + Duration::from_secs(2);
    loop {
        if try_watch(addr).0 == 200 {
            break;
        }
        assert!(
            Instant::now() < end,
            "a stalled watcher still held its place {:?} after the flood",
            flooded.elapsed()
        );
        // More events, until the watcher's socket is full and a write to it stalls.
        flood();
    }
    drop(stalled);
}

/// `HEAD /events` is answered like the stream's head, with no stream, on a connection of its
/// own or after another request; `GET /events` does not invite every web page to read it.
pub fn assert_head_events_and_no_wildcard_cors(addr: SocketAddr) {
    let head = raw_exchange(
        addr,
        b"HEAD /events HTTP/1.1\r\nHost: twin\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .expect("an answer to HEAD /events");
    assert_eq!(head.status, 200, "{}", head.head);
    assert_eq!(
        head.header("content-type"),
        Some("text/event-stream"),
        "{}",
        head.head
    );
    assert!(head.header("location").is_none(), "{}", head.head);
    let (watcher, _) = Watcher::open(addr);
    assert!(
        !watcher
            .head
            .to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "{}",
        watcher.head
    );
}

/// With `watchers` watchers connected and nothing happening, the whole server process sleeps:
/// fewer than a handful of wake-ups in a second (Linux: the threads' voluntary context
/// switches). A watcher that looked at the clock every 10 ms would be 100 a second each.
#[cfg(target_os = "linux")]
pub fn assert_idle_watchers_sleep(server: &ServerProcess, watchers: usize) {
    let held: Vec<Watcher> = (0..watchers)
        .map(|_| Watcher::open(server.addr).0)
        .collect();
    // Let the connections settle (their hellos are written, their threads asleep).
    std::thread::sleep(Duration::from_millis(300));
    let before = wakeups(server.pid());
    std::thread::sleep(Duration::from_secs(1));
    let woke = wakeups(server.pid()).saturating_sub(before);
    assert!(
        woke <= 5,
        "an idle server with {watchers} watchers woke {woke} times in a second"
    );
    drop(held);
}

/// Voluntary context switches of every thread of process `pid`, so far.
#[cfg(target_os = "linux")]
fn wakeups(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the server's threads");
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|n| n.trim().parse::<u64>().ok())
        })
        .sum()
}

/// A client that gives up resets its connections: requests still waiting for a worker are
/// skipped — one `499 … skipped` line each — and the server is free again within about T.
/// `server` runs `workers` workers with T = `t`; `path` holds a worker for T.
pub fn assert_abandoned_requests_are_skipped(
    server: &ServerProcess,
    path: &str,
    workers: usize,
    t: Duration,
) {
    let n = 3 * workers;
    let clients: Vec<TcpStream> = (0..n)
        .map(|i| {
            let mut stream = crate::connect_resetting(server.addr);
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: twin\r\nX-Request-Id: gone-{i}\r\n\r\n");
            stream.write_all(request.as_bytes()).expect("send");
            stream
        })
        .collect();
    // The first `workers` are picked up; the rest wait.
    for _ in 0..workers {
        let line = server
            .log_line(Duration::from_secs(5))
            .expect("a pick-up line");
        assert!(
            line.contains(path.split('?').next().unwrap_or(path)),
            "{line}"
        );
    }
    let gave_up = Instant::now();
    drop(clients);
    let mut skipped = 0;
    while skipped < n - workers {
        let line = server
            .log_line(t * 2 + Duration::from_secs(2))
            .unwrap_or_else(|| panic!("only {skipped} of {} skipped", n - workers));
        assert!(
            line.contains(" 499 GET ") && line.ends_with("client gone before pick-up: skipped"),
            "a request whose client had gone was served: {line}"
        );
        skipped += 1;
    }
    let r = crate::get(server.addr, "/healthz");
    assert_eq!(r.status, 200);
    let free = gave_up.elapsed();
    assert!(
        free < t + Duration::from_millis(700),
        "the server was busy for {free:?} after its clients gave up (T = {t:?})"
    );
}
