//! async-server over real loopback HTTP: everyone at once, the thread-pool limit, the pitfalls,
//! the log, the drain.

// Tests may unwrap: a failure here is a test failure with its message.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use testkit::{assert_waves, done_times, fire_ok, get, parse_log_line, wait_for, ServerProcess};
use twin_core::run::Twin;
use twin_core::{Config, ServerKind};

const T: u64 = 300;
const BIN: &str = env!("CARGO_BIN_EXE_async-server");

fn start(workers: u16, threadpool: u32) -> async_server::Running {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = Config::for_tests(ServerKind::EventLoop, workers, T);
    config.threadpool = Some(threadpool);
    async_server::start(listener, config).unwrap()
}

#[test]
fn fifty_async_waits_are_served_all_at_once() {
    let server = start(2, 40);
    let b = fire_ok(server.addr(), "/async-io", 50);
    // One wave: everyone finishes about T after the release.
    assert_waves(&done_times(&b), 50, Duration::from_millis(T));
}

#[test]
fn concurrent_waits_inside_a_request_take_t_over_k() {
    let server = start(1, 40);
    let b = fire_ok(server.addr(), "/async-io-multi?tasks=3", 20);
    assert_waves(&done_times(&b), 20, Duration::from_millis(T / 3));
}

#[test]
fn blocking_routes_queue_beyond_the_thread_pool() {
    // One loop with 2 slots behaves like a pool of 2: 6 requests in 3 waves.
    let server = start(1, 2);
    let b = fire_ok(server.addr(), "/io", 6);
    assert_waves(&done_times(&b), 2, Duration::from_millis(T));
    // The wait for a slot is waiting, not service: the last wave waited two waves' time.
    let mut by_done: Vec<_> = b.results.iter().collect();
    by_done.sort_by_key(|r| r.done);
    for r in &by_done[4..] {
        let waited = r.waiting().unwrap();
        assert!(waited >= Duration::from_millis(2 * T * 8 / 10), "{r:?}");
        assert!(
            r.pool_wait_ms.is_some_and(|w| w >= (2 * T * 8 / 10) as f64),
            "{r:?}"
        );
    }
    // The body says how long each waited for a slot.
    let r = get(server.addr(), "/io?ms=0");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(v["pool_wait_ms"].as_f64().is_some(), "{}", r.body);
}

#[test]
fn within_the_thread_pool_blocking_routes_run_at_once() {
    let server = start(1, 40);
    let b = fire_ok(server.addr(), "/io", 8);
    assert_waves(&done_times(&b), 8, Duration::from_millis(T));
}

#[test]
fn a_blocking_call_in_an_async_handler_freezes_its_event_loop() {
    let server = start(1, 40);
    let addr = server.addr();
    let blocker = thread::spawn(move || get(addr, "/async-io-blocking?ms=500"));
    wait_for("1 in flight", || server.in_flight() >= 1);
    let t = Instant::now();
    assert_eq!(get(addr, "/healthz").status, 200);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "/healthz should wait for the frozen loop, answered after {waited:?}"
    );
    assert_eq!(blocker.join().unwrap().status, 200);
}

#[test]
fn an_async_wait_leaves_the_event_loop_free() {
    let server = start(1, 40);
    let addr = server.addr();
    let waiter = thread::spawn(move || get(addr, "/async-io?ms=500"));
    wait_for("1 in flight", || server.in_flight() >= 1);
    let t = Instant::now();
    assert_eq!(get(addr, "/healthz").status, 200);
    let waited = t.elapsed();
    assert!(
        waited < Duration::from_millis(200),
        "answered after {waited:?}"
    );
    assert_eq!(waiter.join().unwrap().status, 200);
}

#[test]
fn errors_match_the_pool_twin() {
    let server = start(1, 40);
    let r = get(server.addr(), "/async-io-multi?tasks=0");
    assert_eq!(r.status, 400);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["parameter"], "tasks");
    assert_eq!(v["allowed"], "integer number of tasks 1..=1000");
    assert_eq!(get(server.addr(), "/x").status, 404);
    let index: serde_json::Value = serde_json::from_str(&get(server.addr(), "/").body).unwrap();
    assert_eq!(index["kind"], "event-loop");
    assert_eq!(index["threadpool"], 40);
}

#[test]
fn a_drain_finishes_in_flight_work_and_refuses_new_connections() {
    let server = start(2, 40);
    let addr = server.addr();
    let slow = thread::spawn(move || get(addr, "/async-io?ms=400"));
    wait_for("1 in flight", || server.in_flight() >= 1);
    server.begin_shutdown();
    assert!(std::net::TcpStream::connect(addr).is_err());
    let report = server.shutdown(Duration::from_secs(5));
    assert!(report.drained, "{report:?}");
    assert_eq!(slow.join().unwrap().status, 200);
}

// ---- the real binary ----------------------------------------------------------------------

#[test]
fn the_access_log_names_the_event_loop_that_picked_each_request_up() {
    let server = ServerProcess::start(BIN, &["--workers", "2", "--log-healthz"]);
    for path in ["/async-io?ms=5", "/healthz", "/io?ms=1"] {
        get(server.addr, path);
    }
    let lines = server.log_lines_until_quiet(Duration::from_millis(300));
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, path) in lines.iter().zip(["/async-io?ms=5", "/healthz", "/io?ms=1"]) {
        let (pid, worker, method, target) = parse_log_line(line, false).unwrap();
        assert_eq!(
            (pid, method.as_str(), target.as_str()),
            (server.pid(), "GET", path)
        );
        assert!(worker < 2);
    }
}

#[test]
fn sigterm_drains_the_request_in_flight_then_exits_zero() {
    let mut server = ServerProcess::start(BIN, &["--workers", "1", "--threadpool", "3"]);
    assert!(
        server.stderr().contains("3 slots per event loop"),
        "{}",
        server.stderr()
    );
    let addr = server.addr;
    let slow = thread::spawn(move || get(addr, "/async-io?ms=400"));
    server.log_line(Duration::from_secs(5)).unwrap();
    server.signal("INT");
    assert_eq!(slow.join().unwrap().status, 200);
    let status = server
        .wait(Duration::from_secs(10))
        .expect("exits after draining");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
}

// ---- reliability --------------------------------------------------------------------------

#[test]
fn survives_the_bad_input_catalogue() {
    let server = start(2, 40);
    testkit::assert_survives_bad_input(server.addr());
}

#[test]
fn a_client_that_gives_up_mid_wait_is_forgotten() {
    let server = start(1, 40);
    let addr = server.addr();
    {
        // A client that gives up resets its connection (a FIN alone could be a client that
        // only stopped sending and still waits for its answer).
        let mut s = testkit::connect_resetting(addr);
        std::io::Write::write_all(&mut s, b"GET /async-io?ms=5000 HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        wait_for("1 in flight", || server.in_flight() >= 1);
    }
    // The loop sees the reset and drops the handler: nothing stays in flight.
    let end = Instant::now() + Duration::from_secs(3);
    while server.in_flight() > 0 {
        assert!(
            Instant::now() < end,
            "the abandoned request is still in flight"
        );
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(get(addr, "/io?ms=0").status, 200);
}

#[test]
fn limit_concurrency_turns_requests_away_with_a_503() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = Config::for_tests(ServerKind::EventLoop, 2, T);
    config.limit_concurrency = Some(3);
    let server = async_server::start(listener, config).unwrap();
    let addr = server.addr();
    let held: Vec<_> = (0..3)
        .map(|_| thread::spawn(move || get(addr, "/async-io?ms=400")))
        .collect();
    wait_for("3 in flight", || server.in_flight() >= 3);
    let t = Instant::now();
    let r = get(addr, "/async-io?ms=400");
    assert_eq!(r.status, 503);
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "turned away at once"
    );
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["error"], "overloaded");
    assert_eq!(v["limit"], 3);
    for h in held {
        assert_eq!(h.join().unwrap().status, 200);
    }
    assert_eq!(get(addr, "/io?ms=0").status, 200);
}

#[test]
fn sigterm_during_a_burst_completes_every_request_then_exits_zero() {
    let mut server = ServerProcess::start(BIN, &["--workers", "4", "--task-ms", "300"]);
    let url = format!("{}/async-io", server.url);
    let firing = thread::spawn(move || burst::fire_blocking(&url, 100, Duration::from_secs(20)));
    // The event loops pick all 100 up at once; wait for their lines.
    for _ in 0..100 {
        server
            .log_line(Duration::from_secs(10))
            .expect("a pick-up line");
    }
    server.signal("TERM");
    let b = firing.join().unwrap().unwrap();
    for r in &b.results {
        assert_eq!(r.status, Some(200), "{r:?}");
    }
    let status = server.wait(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    assert!(
        std::net::TcpStream::connect(server.addr).is_err(),
        "new connections refused"
    );
}

#[test]
fn a_drain_cut_off_by_the_timeout_exits_non_zero_and_says_what_was_in_flight() {
    testkit::assert_drain_timeout_is_reported(BIN, "/async-io?ms=5000");
}

#[test]
fn out_of_file_descriptors_it_keeps_running_and_recovers() {
    testkit::assert_recovers_from_descriptor_exhaustion(BIN);
}

#[test]
fn a_thousand_idle_connections_do_not_stop_others_being_served() {
    let server = start(2, 40);
    testkit::assert_idle_connections_do_not_block(server.addr());
}

#[test]
fn heads_over_the_limits_get_the_shared_json_431() {
    // hyper refuses these before any handler runs; the answer is still the twins' JSON.
    let server = start(1, 40);
    testkit::assert_head_limits_answer_the_shared_431(server.addr());
}

#[test]
fn sigterm_while_requests_wait_on_a_frozen_loop_answers_each_with_its_response_or_a_503() {
    let mut server = ServerProcess::start(BIN, &["--workers", "1"]);
    let url = format!("{}/async-io-blocking?ms=400", server.url);
    let firing = thread::spawn(move || burst::fire_blocking(&url, 4, Duration::from_secs(20)));
    // The first request froze the loop; the other three wait behind it.
    let first = server
        .log_line(Duration::from_secs(10))
        .expect("a pick-up line");
    assert!(first.ends_with("GET /async-io-blocking?ms=400"), "{first}");
    server.signal("TERM");
    let b = firing.join().unwrap().unwrap();
    let mut statuses: Vec<Option<u16>> = b.results.iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [Some(200), Some(503), Some(503), Some(503)],
        "{:?}",
        b.results
    );
    let status = server.wait(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
}

#[test]
fn head_is_answered_as_get_without_a_body() {
    let server = start(1, 40);
    testkit::assert_head_is_get_without_a_body(server.addr());
}

#[test]
fn the_log_line_is_written_at_pick_up_so_every_line_arrives_at_once() {
    let server = ServerProcess::start(BIN, &["--workers", "2", "--task-ms", "200", "--log-ms"]);
    let times = testkit::pick_up_times(&server, "/async-io", 12);
    let spread = times.iter().max().unwrap() - times.iter().min().unwrap();
    assert!(spread < 100, "all picked up in the same moment: {times:?}");
}

#[test]
fn cpu_work_freezes_its_event_loop() {
    let server = start(1, 40);
    let addr = server.addr();
    // 500 ms of work at the tests' calibration: long enough to see, whatever the core's speed.
    let cpu = thread::spawn(move || get(addr, "/cpu?ms=500"));
    wait_for("1 in flight", || server.in_flight() >= 1);
    let t = Instant::now();
    assert_eq!(get(addr, "/healthz").status, 200);
    let waited = t.elapsed();
    let r = cpu.join().unwrap();
    let cpu_ms: f64 = r
        .header("server-timing")
        .and_then(|v| burst::client::server_timing(v, "cpu"))
        .unwrap();
    assert!(
        waited.as_secs_f64() * 1000.0 >= cpu_ms * 0.5,
        "/healthz waited {waited:?} for a loop computing {cpu_ms} ms"
    );
}

#[test]
fn log_finish_writes_its_line_once_the_response_is_sent_as_on_the_pool() {
    testkit::assert_log_finish_after_the_response(BIN);
}

// ---- GET /events ---------------------------------------------------------------------------

#[test]
fn events_follow_a_request_through_the_loop_and_the_thread_pool() {
    let server = ServerProcess::start(BIN, &["--log-ms", "--workers", "2"]);
    // Picked up by a loop, then waiting for a thread-pool slot, then on one.
    testkit::assert_a_request_s_life_is_published(
        &server,
        &["picked-up", "queued", "slot", "finished"],
    );
}

#[test]
fn a_frozen_loop_is_reported_frozen_within_100_ms_by_a_stream_it_does_not_carry() {
    let server = start(1, 40);
    let addr = server.addr();
    let (watcher, _) = testkit::events::Watcher::open(addr);
    let blocked = thread::spawn(move || get(addr, "/async-io-blocking?ms=400"));
    let seen = watcher.until("frozen", |_| true);
    let picked = seen
        .iter()
        .find(|e| e.name == "picked-up")
        .expect("the blocking request's pick-up");
    let frozen = seen.last().unwrap();
    let after = frozen.t_us().saturating_sub(picked.t_us());
    assert!(
        after <= 100_000,
        "reported frozen {after} µs after the loop blocked"
    );
    assert_eq!(frozen.data["worker"], "worker0");
    // The stream is not carried by the frozen loop: the report came while the loop was still
    // blocked, and the thaw comes when it ends.
    let thawed = watcher.until("thawed", |_| true);
    let thawed = thawed.last().unwrap();
    assert!(thawed.received.duration_since(frozen.received) >= Duration::from_millis(150));
    assert_eq!(blocked.join().unwrap().status, 200);
}

#[test]
fn watchers_do_not_perturb_everyone_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // T as in the tests without watchers, so the tolerance is the same.
    let config = Config::for_tests(ServerKind::EventLoop, 4, T);
    let server = async_server::start(listener, config).unwrap();
    testkit::assert_watchers_do_not_perturb(
        server.addr(),
        "/async-io",
        100,
        100,
        Duration::from_millis(T),
    );
}

#[test]
fn a_stalled_watcher_loses_events_counted_and_holds_no_more_than_its_buffer() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = Config::for_tests(ServerKind::EventLoop, 4, 100);
    config.events_buffer = 64;
    let server = async_server::start(listener, config).unwrap();
    testkit::assert_a_stalled_watcher_is_told_what_it_missed(
        server.addr(),
        "/async-io?ms=0",
        200,
        4,
        2,
    );
}

#[test]
fn watchers_beyond_the_cap_get_a_503_and_a_closed_one_s_place_is_given_back() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = Config::for_tests(ServerKind::EventLoop, 2, T);
    config.max_watchers = 3;
    let server = async_server::start(listener, config).unwrap();
    testkit::watchers::assert_watchers_are_capped(server.addr(), 3);
}

#[test]
fn a_stalled_watcher_is_let_go_after_the_write_stall() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = Config::for_tests(ServerKind::EventLoop, 4, T);
    config.max_watchers = 1;
    config.events_stall = Duration::from_millis(300);
    let server = async_server::start(listener, config).unwrap();
    let addr = server.addr();
    testkit::watchers::assert_a_stalled_watcher_is_let_go(addr, Duration::from_millis(300), || {
        fire_ok(addr, "/async-io?ms=0", 200);
    });
}

#[test]
fn head_events_is_the_stream_s_head_and_no_page_may_read_the_stream() {
    let server = start(2, 40);
    testkit::watchers::assert_head_events_and_no_wildcard_cors(server.addr());
}

#[cfg(target_os = "linux")]
#[test]
fn idle_event_loops_with_their_watchers_sleep() {
    let server = ServerProcess::start(BIN, &["--workers", "4"]);
    testkit::watchers::assert_idle_watchers_sleep(&server, 16);
}

#[test]
fn requests_whose_client_gave_up_behind_a_frozen_loop_are_skipped_not_served() {
    let t = Duration::from_millis(T);
    let server = ServerProcess::start(BIN, &["--workers", "2", "--task-ms", "300"]);
    testkit::watchers::assert_abandoned_requests_are_skipped(&server, "/async-io-blocking", 2, t);
}

#[test]
fn io_whose_client_gave_up_never_takes_a_thread_pool_slot() {
    // One loop, one slot: four /io, three of them waiting for the slot when their client goes.
    let server = ServerProcess::start(BIN, &["--workers", "1", "--threadpool", "1"]);
    let addr = server.addr;
    let clients: Vec<std::net::TcpStream> = (0..4)
        .map(|i| {
            let mut s = testkit::connect_resetting(addr);
            let request =
                format!("GET /io?ms={T} HTTP/1.1\r\nHost: t\r\nX-Request-Id: g-{i}\r\n\r\n");
            std::io::Write::write_all(&mut s, request.as_bytes()).unwrap();
            s
        })
        .collect();
    for _ in 0..4 {
        server
            .log_line(Duration::from_secs(5))
            .expect("picked up by the loop");
    }
    let gave_up = Instant::now();
    drop(clients);
    // The slot is free once the one that had it is done: the three that waited never ran.
    let r = get(addr, "/io?ms=0");
    assert_eq!(r.status, 200);
    let free = gave_up.elapsed();
    assert!(
        free < Duration::from_millis(T + 700),
        "the slot was busy for {free:?} after the clients gave up"
    );
}
