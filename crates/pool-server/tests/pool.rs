//! pool-server over real loopback HTTP: the waves, the log, the errors, the drain.
//!
//! Waits are short (T = 300 ms, 2 workers) and tolerances are half a wave, so the tests hold on
//! two busy cores while still telling a wave from the next.

// Tests may unwrap: a failure here is a test failure with its message.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use testkit::{
    assert_wave_shape, assert_waves, done_times, fire_ok, get, keep_alive_burst, parse_log_line,
    raw_exchange, wait_for, CpuHogs, ServerProcess,
};
use twin_core::run::Twin;
use twin_core::{Config, ServerKind};

const T: u64 = 300;
const BIN: &str = env!("CARGO_BIN_EXE_pool-server");

fn start(workers: u16) -> pool_server::Running {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    pool_server::start(listener, Config::for_tests(ServerKind::Pool, workers, T)).unwrap()
}

#[test]
fn six_blocking_requests_finish_in_three_waves_of_two() {
    let server = start(2);
    let b = fire_ok(server.addr(), "/io", 6);
    assert_waves(&done_times(&b), 2, Duration::from_millis(T));
    // Each wave is served by both workers.
    let mut by_done: Vec<_> = b.results.iter().collect();
    by_done.sort_by_key(|r| r.done);
    for wave in by_done.chunks(2) {
        assert_ne!(wave[0].worker, wave[1].worker, "{wave:?}");
    }
}

#[test]
fn async_views_do_not_help_a_blocking_worker() {
    let server = start(2);
    let b = fire_ok(server.addr(), "/async-io", 6);
    assert_waves(&done_times(&b), 2, Duration::from_millis(T));
}

#[test]
fn splitting_the_work_into_concurrent_tasks_does_help() {
    let server = start(2);
    // K = 2 waits of T/2 overlap inside each request: waves every T/2.
    let b = fire_ok(server.addr(), "/async-io-multi", 6);
    assert_waves(&done_times(&b), 2, Duration::from_millis(T / 2));
}

#[test]
fn a_request_waits_while_every_worker_is_busy() {
    let server = start(2);
    let addr = server.addr();
    let busy: Vec<_> = (0..2)
        .map(|_| thread::spawn(move || get(addr, "/io?ms=500")))
        .collect();
    wait_for("2 in flight", || server.in_flight() >= 2);
    let t = Instant::now();
    let health = get(addr, "/healthz");
    let waited = t.elapsed();
    assert_eq!(health.status, 200);
    assert!(
        waited >= Duration::from_millis(250),
        "/healthz should wait for a free worker, answered after {waited:?}"
    );
    for b in busy {
        assert_eq!(b.join().unwrap().status, 200);
    }
}

#[test]
fn bodies_and_headers_say_what_happened() {
    let server = start(2);
    let r = get(server.addr(), "/async-io-multi?ms=100&tasks=4");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("x-worker").unwrap().starts_with("worker"));
    let timing = r.header("server-timing").unwrap();
    assert!(timing.starts_with("app;dur="), "{timing}");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["server"], "pool");
    assert_eq!(v["route"], "/async-io-multi");
    assert_eq!(
        (v["ms"].as_u64(), v["tasks"].as_u64()),
        (Some(100), Some(4))
    );
    assert_eq!(v["pid"].as_u64(), Some(u64::from(std::process::id())));
    let elapsed = v["elapsed_ms"].as_f64().unwrap();
    assert!(
        (25.0..300.0).contains(&elapsed),
        "4 waits of 25 ms overlap: {elapsed}"
    );
    assert!(v["started"].as_str().is_some() && v["finished"].as_str().is_some());

    let index: serde_json::Value = serde_json::from_str(&get(server.addr(), "/").body).unwrap();
    assert_eq!(index["kind"], "pool");
    assert_eq!(index["workers"], 2);
    assert_eq!(index["task_ms"], T);
    assert_eq!(index["routes"].as_array().unwrap().len(), 7);
    assert!(index["routes"][0]["example"]
        .as_str()
        .unwrap()
        .contains(&format!("http://{}/io", server.addr())));
}

#[test]
fn bad_requests_get_clear_errors_and_the_server_keeps_serving() {
    let server = start(2);
    let addr = server.addr();
    let r = get(addr, "/io?ms=999999");
    assert_eq!(r.status, 400);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["parameter"], "ms");
    assert_eq!(v["received"], "999999");
    assert_eq!(v["allowed"], "integer milliseconds 0..=60000");

    let r = get(addr, "/missing");
    assert_eq!(r.status, 404);
    assert!(r.body.contains("\"/io\""), "{}", r.body);

    let req = format!("DELETE /io HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let r = raw_exchange(addr, req.as_bytes(), Duration::from_secs(5)).unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));

    assert_eq!(get(addr, "/io?ms=0").status, 200);
}

#[test]
fn a_drain_finishes_in_flight_work_and_refuses_new_connections() {
    let server = start(2);
    let addr = server.addr();
    let slow = thread::spawn(move || get(addr, "/io?ms=400"));
    wait_for("1 in flight", || server.in_flight() >= 1);
    server.begin_shutdown();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "new connections are refused once the drain begins"
    );
    let report = server.shutdown(Duration::from_secs(5));
    assert!(report.drained, "{report:?}");
    assert_eq!(
        slow.join().unwrap().status,
        200,
        "the picked-up request completed"
    );
}

#[test]
fn a_drain_that_runs_out_of_time_says_how_many_were_cut_off() {
    let server = start(1);
    let addr = server.addr();
    let _slow = thread::spawn(move || {
        raw_exchange(
            addr,
            b"GET /io?ms=2000 HTTP/1.0\r\n\r\n",
            Duration::from_secs(5),
        )
    });
    wait_for("1 in flight", || server.in_flight() >= 1);
    let report = server.shutdown(Duration::from_millis(100));
    assert!(!report.drained);
    assert_eq!(report.still_in_flight, 1);
}

// ---- the real binary ----------------------------------------------------------------------

#[test]
fn the_access_log_has_one_reference_line_per_request_at_pick_up() {
    let server = ServerProcess::start(BIN, &["--workers", "2", "--task-ms", "100"]);
    for path in [
        "/io?ms=10",
        "/async-io",
        "/nope",
        "/healthz",
        "/favicon.ico",
        "/cpu?ms=5",
    ] {
        get(server.addr, path);
    }
    let lines = server.log_lines_until_quiet(Duration::from_millis(300));
    let parsed: Vec<_> = lines
        .iter()
        .map(|l| parse_log_line(l, false).unwrap_or_else(|| panic!("bad log line {l:?}")))
        .collect();
    let targets: Vec<&str> = parsed.iter().map(|(_, _, _, t)| t.as_str()).collect();
    assert_eq!(
        targets,
        ["/io?ms=10", "/async-io", "/nope", "/cpu?ms=5"],
        "healthz and the browser's favicon are not logged"
    );
    for (pid, worker, method, _) in &parsed {
        assert_eq!(method, "GET");
        assert_eq!(*pid, server.pid());
        assert!(*worker < 2);
    }
}

#[test]
fn log_ms_and_log_finish_add_precision_and_a_finish_line() {
    testkit::assert_log_finish_after_the_response(BIN);
}

#[test]
fn the_banner_names_the_real_port_and_a_taken_port_is_one_line() {
    let server = ServerProcess::start(BIN, &["--workers", "3"]);
    let banner = server.stderr();
    assert!(banner.contains("3 worker threads"), "{banner}");
    assert!(
        banner.contains(&format!("{}/async-io-multi", server.url)),
        "{banner}"
    );

    let port = server.addr.port().to_string();
    let out = std::process::Command::new(BIN)
        .args(["--port", &port])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("in use") && err.contains(&port), "{err}");
}

#[test]
fn bad_flags_are_one_line_errors() {
    let out = std::process::Command::new(BIN)
        .args(["--task-ms", "5000", "--max-ms", "1000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--max-ms"), "{err}");

    let out = std::process::Command::new(BIN)
        .arg("--workers")
        .arg("0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn sigterm_drains_the_request_in_flight_then_exits_zero() {
    let mut server = ServerProcess::start(BIN, &["--workers", "2"]);
    let addr = server.addr;
    let slow = thread::spawn(move || get(addr, "/io?ms=400"));
    // The access-log line is written at pick-up: once we read it, the request is in flight.
    let line = server.log_line(Duration::from_secs(5)).unwrap();
    assert!(line.ends_with("GET /io?ms=400"), "{line}");
    server.signal("TERM");
    assert_eq!(slow.join().unwrap().status, 200);
    let status = server
        .wait(Duration::from_secs(10))
        .expect("exits after draining");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    assert!(server.stderr().contains("drained"), "{}", server.stderr());
}

// ---- reliability --------------------------------------------------------------------------

#[test]
fn survives_the_bad_input_catalogue() {
    let server = start(2);
    testkit::assert_survives_bad_input(server.addr());
}

#[test]
fn a_client_that_disconnects_mid_wait_frees_its_worker() {
    let server = start(1);
    let addr = server.addr();
    {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        std::io::Write::write_all(&mut s, b"GET /io?ms=200 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        wait_for("1 in flight", || server.in_flight() >= 1);
    } // dropped: the client is gone mid-wait
    let t = Instant::now();
    assert_eq!(get(addr, "/io?ms=0").status, 200);
    assert!(t.elapsed() < Duration::from_secs(2), "the worker came back");
}

#[test]
fn max_queue_turns_requests_away_with_a_503_once_the_queue_is_full() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = Config::for_tests(ServerKind::Pool, 1, T);
    config.max_queue = Some(2);
    let server = pool_server::start(listener, config).unwrap();
    let addr = server.addr();
    let first = thread::spawn(move || get(addr, "/io?ms=400"));
    wait_for("1 in flight", || server.in_flight() >= 1);
    let b = burst::fire_blocking(
        &format!("http://{addr}/io?ms=10"),
        4,
        Duration::from_secs(5),
    )
    .unwrap();
    let mut statuses: Vec<u16> = b.results.iter().map(|r| r.status.unwrap()).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 503, 503], "2 queue, 2 are turned away");
    assert_eq!(first.join().unwrap().status, 200);
    let r = get(addr, "/io?ms=0");
    assert_eq!(r.status, 200, "serving again once the queue drains");
}

#[test]
fn sigterm_during_a_burst_completes_every_picked_up_request_then_exits_zero() {
    let mut server = ServerProcess::start(BIN, &["--workers", "4", "--task-ms", "300"]);
    let url = format!("{}/io", server.url);
    let firing = thread::spawn(move || burst::fire_blocking(&url, 100, Duration::from_secs(20)));
    // Four pick-up lines: the first wave is in flight.
    for _ in 0..4 {
        server
            .log_line(Duration::from_secs(10))
            .expect("a pick-up line");
    }
    server.signal("TERM");
    let b = firing.join().unwrap().unwrap();
    let status = server.wait(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    let picked_up = 4 + server
        .log_lines_until_quiet(Duration::from_millis(200))
        .len();
    let ok = b.results.iter().filter(|r| r.status == Some(200)).count();
    assert_eq!(ok, picked_up, "every picked-up request completed");
    // The rest were accepted and waiting for a worker: each gets the JSON 503, never a reset —
    // at once, not after the busy workers finish.
    for r in &b.results {
        assert!(matches!(r.status, Some(200 | 503)), "{r:?}");
    }
    let done = |status| b.results.iter().filter(move |r| r.status == Some(status));
    let last_503 = done(503).filter_map(|r| r.done).max();
    let first_200 = done(200).filter_map(|r| r.done).min();
    assert!(
        last_503 < first_200,
        "503s at once: {last_503:?}, first 200 {first_200:?}"
    );
    assert!(
        std::net::TcpStream::connect(server.addr).is_err(),
        "new connections refused"
    );
}

#[test]
fn a_drain_cut_off_by_the_timeout_exits_non_zero_and_says_what_was_in_flight() {
    testkit::assert_drain_timeout_is_reported(BIN, "/io?ms=5000");
}

#[test]
fn out_of_file_descriptors_it_keeps_running_and_recovers() {
    testkit::assert_recovers_from_descriptor_exhaustion(BIN);
}

#[test]
fn a_thousand_idle_connections_do_not_tie_up_a_worker() {
    // tiny_http reads each connection on a thread of its own: unlike gunicorn's sync workers,
    // a client that sends nothing holds no worker.
    let server = start(2);
    testkit::assert_idle_connections_do_not_block(server.addr());
}

// ---- waves of `workers`, whatever the client does -----------------------------------------
//
// tiny_http reads each connection on a reader thread that holds it until the client closes it.
// Unpatched, a burst that arrived while a reader thread was idle could queue behind it (see
// vendor/tiny_http/PATCH.md): the pool then served 1 or 2 at a time, not `workers`.

/// T for the keep-alive tests: short, and still far above scheduling noise.
const KT: u64 = 80;

fn keep_alive_waves(server: &pool_server::Running, n: usize) {
    let served = keep_alive_burst(server.addr(), "/io", n);
    let done: Vec<Duration> = served.iter().map(|(t, _)| *t).collect();
    assert_wave_shape(&done, 4, Duration::from_millis(KT));
}

#[test]
fn keep_alive_bursts_come_in_waves_of_workers_after_any_idle_gap() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = pool_server::start(listener, Config::for_tests(ServerKind::Pool, 4, KT)).unwrap();
    let addr = server.addr();
    // The presenter's sequence: one curl, then a burst.
    assert_eq!(get(addr, "/io?ms=10").status, 200);
    keep_alive_waves(&server, 16);
    // Idle past tiny_http's 5 s reader-thread expiry: the condition under test, not a wait.
    thread::sleep(Duration::from_millis(5_500));
    keep_alive_waves(&server, 16);
    // Twenty more, with idle gaps of every length from none to a few hundred ms, some after a
    // single request.
    for k in 0..20u64 {
        if k % 3 == 0 {
            assert_eq!(get(addr, "/io?ms=0").status, 200);
        }
        thread::sleep(Duration::from_millis((k * 37) % 300));
        keep_alive_waves(&server, 16);
    }
}

#[test]
fn a_hundred_keep_alive_connections_are_answered_in_25_waves() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = pool_server::start(listener, Config::for_tests(ServerKind::Pool, 4, KT)).unwrap();
    keep_alive_waves(&server, 100);
}

#[test]
fn with_two_busy_cpu_hogs_the_waves_still_hold() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = pool_server::start(listener, Config::for_tests(ServerKind::Pool, 4, KT)).unwrap();
    let _hogs = CpuHogs::start(2);
    keep_alive_waves(&server, 100);
    keep_alive_waves(&server, 16);
    // burst's own client (connect all, release, close) too.
    let b = fire_ok(server.addr(), "/io", 16);
    assert_wave_shape(&done_times(&b), 4, Duration::from_millis(KT));
}

#[test]
fn cpu_work_is_a_fixed_amount_however_many_share_the_cores() {
    // Four times as many workers as cores, all computing: each still does the same work, so
    // each takes as much CPU time as one alone (a clock-bound spin would take a quarter).
    let cores = twin_core::work::cores();
    let workers = u16::try_from(cores * 4).unwrap_or(64).min(64);
    let server = start(workers);
    let cpu_ms = |r: &burst::RequestResult| r.cpu_ms.expect("Server-Timing cpu;dur");
    let alone = fire_ok(server.addr(), "/cpu?ms=60", 1);
    let alone = cpu_ms(&alone.results[0]);
    let together = fire_ok(server.addr(), "/cpu?ms=60", usize::from(workers));
    let mean = together.results.iter().map(cpu_ms).sum::<f64>() / f64::from(workers);
    assert!(
        mean >= 0.6 * alone,
        "{workers} at once on {cores} cores: {mean:.1} ms of CPU each, {alone:.1} ms alone"
    );
    // Sharing the cores, they take longer than one alone.
    let slowest = together
        .results
        .iter()
        .filter_map(|r| r.server_ms)
        .fold(0.0, f64::max);
    assert!(
        slowest >= 1.5 * alone,
        "{slowest:.1} ms vs {alone:.1} ms alone"
    );
}

#[test]
fn heads_over_the_limits_get_the_shared_json_431() {
    let server = start(2);
    testkit::assert_head_limits_answer_the_shared_431(server.addr());
}

#[test]
fn head_is_answered_as_get_without_a_body() {
    let server = start(2);
    testkit::assert_head_is_get_without_a_body(server.addr());
}

#[test]
fn the_log_line_is_written_at_pick_up_so_it_arrives_in_waves() {
    let server = ServerProcess::start(BIN, &["--workers", "2", "--task-ms", "200", "--log-ms"]);
    let times = testkit::pick_up_times(&server, "/io", 6);
    // Picked up two at a time, 200 ms apart: the lines come in three waves of two.
    let first = times[0];
    let since: Vec<Duration> = times
        .iter()
        .map(|t| Duration::from_millis(t - first + 200))
        .collect();
    assert_wave_shape(&since, 2, Duration::from_millis(200));
}

// ---- GET /events ---------------------------------------------------------------------------

#[test]
fn events_follow_a_request_from_queue_to_finish_with_the_log_line_s_time() {
    let server = ServerProcess::start(BIN, &["--log-ms", "--workers", "2"]);
    testkit::assert_a_request_s_life_is_published(&server, &["queued", "picked-up", "finished"]);
}

#[test]
fn events_take_no_worker_even_when_every_worker_is_busy() {
    let server = start(2);
    let addr = server.addr();
    let busy: Vec<_> = (0..2)
        .map(|_| thread::spawn(move || get(addr, "/io?ms=1000")))
        .collect();
    wait_for("2 in flight", || server.in_flight() >= 2);
    let t = Instant::now();
    let (_watcher, hello) = testkit::events::Watcher::open(addr);
    let waited = t.elapsed();
    assert_eq!(hello.data["kind"], "pool");
    assert!(
        waited < Duration::from_millis(500) && server.in_flight() == 2,
        "/events waited {waited:?} for a worker"
    );
    for b in busy {
        assert_eq!(b.join().unwrap().status, 200);
    }
}

#[test]
fn watchers_do_not_perturb_the_waves() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // T as in the tests without watchers, so the tolerance is the same.
    let server = pool_server::start(listener, Config::for_tests(ServerKind::Pool, 4, T)).unwrap();
    testkit::assert_watchers_do_not_perturb(server.addr(), "/io", 16, 4, Duration::from_millis(T));
}

#[test]
fn a_stalled_watcher_loses_events_counted_and_holds_no_more_than_its_buffer() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = Config::for_tests(ServerKind::Pool, 4, 100);
    config.events_buffer = 64;
    let server = pool_server::start(listener, config).unwrap();
    testkit::assert_a_stalled_watcher_is_told_what_it_missed(server.addr(), "/io?ms=0", 200, 4, 3);
}

#[test]
fn watchers_beyond_the_cap_get_a_503_and_a_closed_one_s_place_is_given_back() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = Config::for_tests(ServerKind::Pool, 2, T);
    config.max_watchers = 3;
    let server = pool_server::start(listener, config).unwrap();
    testkit::watchers::assert_watchers_are_capped(server.addr(), 3);
}

#[test]
fn a_stalled_watcher_is_let_go_after_the_write_stall() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = Config::for_tests(ServerKind::Pool, 4, T);
    config.max_watchers = 1;
    config.events_stall = Duration::from_millis(300);
    let server = pool_server::start(listener, config).unwrap();
    let addr = server.addr();
    testkit::watchers::assert_a_stalled_watcher_is_let_go(addr, Duration::from_millis(300), || {
        fire_ok(addr, "/io?ms=0", 200);
    });
}

#[test]
fn head_events_is_the_stream_s_head_and_no_page_may_read_the_stream() {
    let server = start(2);
    testkit::watchers::assert_head_events_and_no_wildcard_cors(server.addr());
}

#[cfg(target_os = "linux")]
#[test]
fn an_idle_pool_with_its_watchers_sleeps() {
    let server = ServerProcess::start(BIN, &["--workers", "4"]);
    testkit::watchers::assert_idle_watchers_sleep(&server, 16);
}

#[test]
fn requests_whose_client_gave_up_are_skipped_not_served() {
    let t = Duration::from_millis(T);
    let server = ServerProcess::start(BIN, &["--workers", "2", "--task-ms", "300"]);
    testkit::watchers::assert_abandoned_requests_are_skipped(&server, "/io", 2, t);
}

/// Threads are finite: a pool bigger than the machine's thread budget is refused at start with
/// the reason, not aborted by the system when the thread past it fails to map its stacks.
#[cfg(target_os = "linux")]
#[test]
fn a_pool_beyond_the_machine_s_thread_budget_is_refused_with_the_reason() {
    let Some(budget) = twin_core::platform::thread_budget() else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = Config::for_tests(ServerKind::Pool, 10, T);
    // Room for the workers, not for a reader thread beside each: refused.
    config.threads = Some(u32::try_from(budget / 20 + 1).unwrap());
    let e = pool_server::start(listener, config)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("threads a process") && e.contains("at most"),
        "{e}"
    );
}
