//! The `burst` binary against real twins on loopback: rows, waves, verdicts, formats, failures.

// Tests may unwrap: a failure here is a test failure with its message.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::thread;

use twin_core::run::Twin;
use twin_core::{Config, ServerKind};

const BIN: &str = env!("CARGO_BIN_EXE_burst");

fn pool(workers: u16, t: u64) -> pool_server::Running {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    pool_server::start(l, Config::for_tests(ServerKind::Pool, workers, t)).unwrap()
}

fn event_loop(workers: u16, t: u64) -> async_server::Running {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    async_server::start(l, Config::for_tests(ServerKind::EventLoop, workers, t)).unwrap()
}

fn burst(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn json_holds_one_row_per_request_and_the_pool_waves() {
    let server = pool(2, 200);
    let url = format!("http://{}/io", server.addr());
    let out = burst(&[&url, "-n", "6", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rows = v["requests"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    assert!(rows
        .iter()
        .all(|r| r["status"] == 200 && r["outcome"] == "ok"));
    assert_eq!(v["server"]["kind"], "pool");
    assert_eq!(v["model"]["as_predicted"], true, "{}", v["model"]);
    let verdict = v["model"]["verdict"].as_str().unwrap();
    assert!(
        verdict.starts_with("waves of 2 every 0.20 s (3 waves)"),
        "{verdict}"
    );
    assert_eq!(v["summary"]["ok"], 6);
    // Predicted completions are 0.2, 0.4, 0.6 s, two each.
    let mut predicted: Vec<f64> = rows
        .iter()
        .map(|r| r["predicted_done_ms"].as_f64().unwrap())
        .collect();
    predicted.sort_by(f64::total_cmp);
    assert_eq!(predicted, [200.0, 200.0, 400.0, 400.0, 600.0, 600.0]);
}

#[test]
fn the_text_views_show_the_event_loop_serving_everyone_at_once() {
    let server = event_loop(2, 200);
    let url = format!("http://{}/async-io", server.addr());
    let out = burst(&[&url, "-n", "20", "--no-color"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("(async-server: event-loop, 2 workers)"),
        "{text}"
    );
    assert!(
        text.contains("model: all 20 at once after 0.20 s, as predicted"),
        "{text}"
    );
    assert!(text.contains("waterfall:"), "{text}");
    let table_rows = text
        .lines()
        .filter(|l| l.trim_end().ends_with(" 200") && l.contains("worker"))
        .count();
    assert_eq!(table_rows, 20, "{text}");
    assert!(text.contains("status: 20 × 200"), "{text}");
}

#[test]
fn csv_has_a_header_and_one_row_per_request() {
    let server = event_loop(1, 50);
    let url = format!("http://{}/async-io-multi?tasks=5", server.addr());
    let out = burst(&[&url, "-n", "7", "--csv"]);
    // The columns are the point here; the verdict on 10 ms waits (3 on a loaded machine, as
    // the parallel tests beside this one load it) is checked by the timing tests.
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], burst::print::json_csv::CSV_COLUMNS);
    assert_eq!(lines.len(), 8, "{text}");
    for l in &lines[1..] {
        let fields: Vec<&str> = l.split(',').collect();
        assert_eq!(fields.len(), 17, "{l}");
        assert_eq!(
            (fields[1], fields[2], fields[3]),
            ("worker0", "200", "ok"),
            "{l}"
        );
        // T/K = 10 ms: the model's predicted time is in the row.
        assert_eq!(fields[10], "10", "{l}");
    }
}

#[test]
fn a_request_that_outlives_the_timeout_is_reported_as_a_timeout() {
    let server = pool(1, 200);
    let url = format!("http://{}/io?ms=1500", server.addr());
    let out = burst(&[&url, "-n", "2", "--timeout", "0.3", "--json"]);
    assert_eq!(out.status.code(), Some(1), "some requests failed");
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rows = v["requests"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["outcome"] == "timeout"), "{rows:?}");
    assert_eq!(v["summary"]["timeouts"], 2);
    assert!(v["model"]["verdict"]
        .as_str()
        .unwrap()
        .starts_with("2 of 2 requests failed"));
}

#[test]
fn a_refused_connection_is_one_line_and_exit_code_two() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/io");
    let out = burst(&[&url]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(&url) && err.contains(&format!("--port {port}")),
        "the hint names the port that was asked: {err}"
    );

    let out = burst(&["ftp://127.0.0.1/io"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only http://"));
}

#[test]
fn svg_timeline_and_compare_chart_are_written() {
    let dir = std::env::temp_dir().join(format!("burst-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = pool(2, 60);
    let e = event_loop(2, 60);
    let timeline = dir.join("t.svg");
    let url = format!("http://{}/io", p.addr());
    let out = burst(&[&url, "-n", "4", "-q", "--svg", timeline.to_str().unwrap()]);
    assert!(out.status.success());
    let svg = std::fs::read_to_string(&timeline).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("served by worker1"),
        "{svg}"
    );

    let chart = dir.join("c.svg");
    let out = burst(&[
        "compare",
        "--pool",
        &format!("http://{}", p.addr()),
        "--async",
        &format!("http://{}", e.addr()),
        "-n",
        "4,8",
        "--svg",
        chart.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    let marks: usize = text
        .lines()
        .filter(|l| l.starts_with('/'))
        .map(|l| l.matches('✓').count())
        .sum();
    assert_eq!(marks, 12, "{text}");
    assert!(
        text.contains("12 of 12 judged cells as predicted"),
        "{text}"
    );
    assert!(
        text.contains("model (pool)") && text.contains("model (event-loop)"),
        "{text}"
    );
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert_eq!(svg.matches("<polyline").count(), 12);
    assert!(svg.contains("8 requests at once"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_burst_larger_than_the_open_files_limit_is_refused_with_the_reason() {
    // `ulimit -n 100` lowers the hard limit too, so burst cannot raise it: 500 cannot fit.
    let server = event_loop(1, 10);
    let url = format!("http://{}/healthz", server.addr());
    let out = Command::new("bash")
        .args(["-c", &format!("ulimit -n 100 && exec {BIN} {url} -n 500")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("open-files limit is 100"), "{err}");
    assert!(err.contains("fire at most 36"), "{err}");
}

/// Read a request head from `stream`; its target.
fn read_head(stream: &std::net::TcpStream) -> Option<String> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let target = line.split_whitespace().nth(1)?.to_owned();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            return Some(target);
        }
    }
}

/// A server that says it is a pool of one worker with T = 200 ms, but answers every request at
/// once: whatever burst sees, it cannot be the pool's waves.
fn lying_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for stream in l.incoming().map_while(Result::ok) {
            thread::spawn(move || {
                let Some(target) = read_head(&stream) else {
                    return;
                };
                let body = if target == "/" {
                    r#"{"kind":"pool","workers":1,"task_ms":200,"multi_tasks":2,"max_ms":1000,
                        "routes":[{"path":"/io","holds":"worker","service":"T"}]}"#
                } else {
                    "{}"
                };
                let mut s = stream;
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nServer-Timing: app;dur=1\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    addr
}

#[test]
fn a_burst_that_contradicts_the_model_exits_three_with_a_red_verdict() {
    let addr = lying_server();
    let out = burst(&[&format!("http://{addr}/io"), "-n", "4", "-q"]);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("model: NOT as predicted"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_url_without_http_is_understood() {
    let server = event_loop(1, 20);
    let out = burst(&[&format!("{}/async-io", server.addr()), "-n", "3", "-q"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("all 3 at once"), "{}", stdout(&out));
}

#[test]
fn a_long_burst_says_up_front_what_the_model_predicts() {
    let server = pool(1, 800);
    let out = burst(&[&format!("http://{}/io", server.addr()), "-n", "4", "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the model predicts one at a time, every 0.80 s (4 waves): the last request at about 3.2 s"),
        "{err}"
    );
}

/// Any HTTP server: no configuration document at GET /, no timings, its own worker header — and
/// one request at a time, 100 ms each, like a pool of one blocking worker.
fn foreign_pool_of_one() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let one_at_a_time = std::sync::Arc::new(std::sync::Mutex::new(()));
    thread::spawn(move || {
        for stream in l.incoming().map_while(Result::ok) {
            let worker = one_at_a_time.clone();
            thread::spawn(move || {
                let Some(target) = read_head(&stream) else {
                    return;
                };
                let root = target == "/";
                let (status, body) = if root {
                    ("404 Not Found", "no")
                } else {
                    ("200 OK", "done")
                };
                {
                    let _held = worker.lock().unwrap();
                    if !root {
                        thread::sleep(std::time::Duration::from_millis(100));
                    }
                    let mut s = stream;
                    let _ = write!(
                        s,
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nX-Proc: p1\r\n\
                         Connection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            });
        }
    });
    addr
}

#[test]
fn any_server_gets_a_prediction_from_flags_and_no_invented_waiting() {
    let addr = foreign_pool_of_one();
    let url = format!("http://{addr}/work");
    let model = ["--model", "pool", "--workers", "1", "--task-ms", "100"];
    let header = ["--worker-header", "X-Proc"];
    let mut args = vec![url.as_str(), "-n", "3", "--no-color"];
    args.extend(model);
    args.extend(header);
    let out = burst(&args);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("one at a time, every 0.10 s (3 waves), as predicted"),
        "{text}"
    );
    assert!(
        text.contains("▒ in flight — the server reports no timings"),
        "{text}"
    );
    assert!(text.contains("model told by flags"), "{text}");
    assert!(
        text.contains(" p1 "),
        "worker names from --worker-header: {text}"
    );
    assert!(
        !text.contains('·') && !text.contains('█'),
        "no invented wait or service: {text}"
    );

    args.push("--csv");
    let csv = stdout(&burst(&args));
    for row in csv.lines().skip(1) {
        let f: Vec<&str> = row.split(',').collect();
        assert_eq!(
            (f[1], f[8], f[9]),
            ("p1", "", ""),
            "server and waiting cells empty: {row}"
        );
    }
    args.pop();
    args.push("--json");
    let v: serde_json::Value = serde_json::from_str(&stdout(&burst(&args))).unwrap();
    assert!(v["requests"][0]["waiting_ms"].is_null(), "{v}");
    assert_eq!(v["server"]["kind"], "pool");
}

#[test]
fn a_thousand_at_once_on_the_event_loop_is_one_wave_and_the_verdict_says_its_cost() {
    // The test process holds the server's ends of the thousand connections.
    let limit = rlimit::increase_nofile_limit(4096).unwrap();
    assert!(limit >= 2200, "open-files limit {limit}");
    let server = event_loop(4, 200);
    let url = format!("http://{}/async-io", server.addr());
    let out = burst(&[&url, "-n", "1000", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let model = &v["model"];
    assert_eq!(out.status.code(), Some(0), "{model}");
    assert_eq!(model["as_predicted"], true, "{model}");
    assert_eq!(model["waves"].as_array().map(Vec::len), Some(1), "{model}");
    assert_eq!(model["waves"][0]["size"], 1000, "{model}");
}

#[test]
fn answers_that_are_not_2xx_are_failures() {
    let server = pool(1, 10);
    let out = burst(&[
        &format!("http://{}/io?ms=abc", server.addr()),
        "-n",
        "2",
        "-q",
    ]);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "the model refuses what the server would: {text}"
    );
    let out = burst(&[&format!("http://{}/nope", server.addr()), "-n", "2", "-q"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("2 × 404"), "{text}");
}

#[test]
fn compare_checks_every_target_before_the_first_burst() {
    let up = event_loop(1, 10);
    let down = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let t = std::time::Instant::now();
    let out = burst(&[
        "compare",
        "--target",
        &format!("up=http://{}", up.addr()),
        "--target",
        &format!("down=http://{down}"),
        "-n",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("down at") && err.contains("nothing was fired"),
        "{err}"
    );
    assert!(
        !stdout(&out).contains("/io"),
        "no cell ran: {}",
        stdout(&out)
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
}

/// Ctrl-C in the middle of a burst: `burst` shows what came back (the table, the counts), says
/// how many it gave up, and exits 130; the twin skips what it had not picked up, so the next
/// `burst` is not kept waiting behind the abandoned requests.
#[test]
fn ctrl_c_shows_what_was_seen_and_the_twin_is_free_again() {
    let server = pool(2, 300);
    let url = format!("http://{}/io", server.addr());
    let child = Command::new(BIN)
        .args([&url, "-n", "12", "--no-color"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    testkit::wait_for("the burst in flight", || server.in_flight() == 2);
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let interrupted = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    // What came back, not a row for each request given up.
    assert!(
        text.contains("burst: 12 × GET") && !text.contains("CANCELLED"),
        "{text}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("burst: interrupted after") && err.contains("given up"),
        "{err}"
    );
    // The next burst's GET / and requests are not stuck behind the ten given up.
    let next = burst(&[
        &format!("http://{}/io?ms=0", server.addr()),
        "-n",
        "2",
        "--quiet",
    ]);
    assert!(
        next.status.success(),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );
    let took = interrupted.elapsed();
    assert!(
        took < std::time::Duration::from_millis(300 + 900),
        "{took:?}"
    );
}

/// A server whose workers are all busy keeps `GET /` waiting: `burst` says so within a second
/// rather than sit silent.
#[test]
fn a_slow_get_slash_is_said_within_a_second() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut stream = stream;
                if read_head(&stream).is_none() {
                    return;
                }
                thread::sleep(std::time::Duration::from_millis(1600));
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            });
        }
    });
    let out = burst(&[&format!("http://{addr}/x"), "-n", "1", "--quiet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("waiting for the server to answer GET /"),
        "{err}"
    );
}
