//! # testkit — helpers for the twins' end-to-end tests
//!
//! - [`ServerProcess`]: start a real server binary on port 0, wait for its `listening on` line,
//!   read its access log (stdout) line by line, signal it, and always end it (by PID) on drop.
//! - [`raw_exchange`] / [`get`]: HTTP over a plain TCP stream, for bad input a client library
//!   would refuse to send.
//! - [`parse_log_line`]: the reference access-log format, as a regular expression.
//! - [`assert_waves`]: the queueing rule, checked with tolerances that hold on 2 busy cores;
//!   [`fire_ok`] and [`done_times`] to get the times to check.
//! - [`keep_alive_burst`]: a burst the way wrk, oha or a browser sends it — every connection
//!   opened first and kept open after its response; [`assert_wave_shape`] checks its waves.
//! - [`CpuHogs`]: busy threads that stand in for a loaded laptop.
//! - [`wait_for`]: wait for a condition (not for a guessed length of time).
//! - [`browser::Browser`]: headless Chromium through WebDriver, for the live stage's tests.
//! - [`events::Watcher`] / [`events::Stalled`]: a `GET /events` watcher that keeps up, and one
//!   that never reads; [`assert_a_request_s_life_is_published`] and
//!   [`assert_watchers_do_not_perturb`] hold for both twins.
//! - [`watchers`]: what watching and giving up cost, the same on both twins (the cap, a stalled
//!   watcher let go, no idle wake-ups, `HEAD /events`, abandoned requests skipped).
//! - [`wire`]: raw byte streams in, every answer out, and where two twins' answers differ.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use regex::Regex;

pub mod browser;
pub mod events;
pub mod watchers;
pub mod wire;

/// A server binary running for a test.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    pub url: String,
    pub addr: SocketAddr,
    stdout: Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Start `bin` with `--port 0` and `args`; wait (up to 20 s) for `listening on http://…`.
    pub fn start(bin: &str, args: &[&str]) -> ServerProcess {
        let mut all = vec!["--port", "0"];
        all.extend_from_slice(args);
        ServerProcess::start_with(bin, &all)
    }

    /// Start `program` with exactly `args` (e.g. a shell that sets a limit, then execs a server).
    pub fn start_with(program: &str, args: &[&str]) -> ServerProcess {
        let bin = program;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server binary");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (out_tx, out_rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if out_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (url_tx, url_rx) = mpsc::channel();
        let sink = lines.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = url_tx.send(url.to_owned());
                }
                sink.lock().expect("stderr lines").push(line);
            }
        });
        let url = match url_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let err = lines.lock().expect("stderr lines").join("\n");
                panic!("{bin} did not print `listening on` within 20 s; stderr:\n{err}");
            }
        };
        let addr = url
            .trim_start_matches("http://")
            .parse()
            .expect("listening line has host:port");
        ServerProcess {
            child,
            url,
            addr,
            stdout: out_rx,
            stderr: lines,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next access-log line, or `None` after `timeout`.
    pub fn log_line(&self, timeout: Duration) -> Option<String> {
        self.stdout.recv_timeout(timeout).ok()
    }

    /// Every access-log line that arrives until `quiet` passes with none.
    pub fn log_lines_until_quiet(&self, quiet: Duration) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.stdout.recv_timeout(quiet) {
                Ok(l) => lines.push(l),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return lines,
            }
        }
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lines").join("\n")
    }

    /// Send a signal by name (`TERM`, `INT`) to this server's PID.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{name} {}", self.pid());
    }

    /// Wait for the process to exit, up to `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawResponse {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Write `request` bytes, read until the server closes (or `timeout`), and parse the first
/// response. `None` when the server closed without answering.
pub fn raw_exchange(addr: SocketAddr, request: &[u8], timeout: Duration) -> Option<RawResponse> {
    let mut s = TcpStream::connect(addr).expect("connect to the server");
    s.set_read_timeout(Some(timeout)).expect("set timeout");
    // A server may answer and close before it has read everything; that is fine here.
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf)
}

/// Parse the first response in `buf`, reading its body by `Content-Length`.
pub fn parse_response(buf: &[u8]) -> Option<RawResponse> {
    let text = String::from_utf8_lossy(buf);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut r = RawResponse {
        status,
        head: head.to_owned(),
        body: String::new(),
    };
    let len = r
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(rest.len());
    r.body = rest.get(..len.min(rest.len())).unwrap_or(rest).to_owned();
    Some(r)
}

/// `GET path` with `Connection: close`.
pub fn get(addr: SocketAddr, path: &str) -> RawResponse {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    raw_exchange(addr, req.as_bytes(), Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no response to GET {path}"))
}

/// Check the queueing rule: sorted, the i-th completion (from 0) belongs to wave ⌊i/per_wave⌋+1
/// and lands within `period/2` of wave·period (and not before it, less 15 ms of timer slack).
pub fn assert_waves(done: &[Duration], per_wave: usize, period: Duration) {
    let mut sorted = done.to_vec();
    sorted.sort();
    let slack = Duration::from_millis(15);
    for (i, t) in sorted.iter().enumerate() {
        let wave = u32::try_from(i / per_wave + 1).expect("few waves");
        let expected = period * wave;
        assert!(
            *t + slack >= expected && *t < expected + period / 2,
            "request {i} (wave {wave}) finished at {t:?}, expected {expected:?} (+ < {:?}); \
             all: {sorted:?}",
            period / 2
        );
    }
}

/// Parse a pick-up line of the reference format,
/// `[2024-10-29 17:04:15] [4242-worker0] GET /io` (with `ms`, `[… 17:04:15.123]`),
/// into (pid, worker index, method, target).
pub fn parse_log_line(line: &str, ms: bool) -> Option<(u32, usize, String, String)> {
    let frac = if ms { r"\.\d{3}" } else { "" };
    let re = Regex::new(&format!(
        r"^\[\d{{4}}-\d{{2}}-\d{{2}} \d{{2}}:\d{{2}}:\d{{2}}{frac}\] \[(\d+)-worker(\d+)\] ([A-Z]+) (\S+)$"
    ))
    .expect("valid pattern");
    let c = re.captures(line)?;
    Some((
        c[1].parse().ok()?,
        c[2].parse().ok()?,
        c[3].to_owned(),
        c[4].to_owned(),
    ))
}

/// What a twin does with a piece of bad input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Answers with this status.
    Status(u16),
    /// Closes the connection without an answer.
    Closed,
    /// Keeps waiting for the rest of a head that never ends; the check then makes sure the
    /// server serves others meanwhile.
    Open,
}

fn req(target: &str, extra: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n").into_bytes()
}

/// The bad-input catalogue: name, bytes to send, what both twins do (the same: they read every
/// head the same way, twin-core's `head.rs`).
pub fn bad_inputs() -> Vec<(&'static str, Vec<u8>, Expect)> {
    use Expect::Status;
    let big = |n: usize| format!("X-Big: {}\r\n", "a".repeat(n));
    let many: String = (0..10_000).map(|i| format!("X-H{i}: v\r\n")).collect();
    vec![
        (
            "non-HTTP garbage",
            b"\x16\x03\x01\x02\x00hello\r\n\r\n".to_vec(),
            Status(400),
        ),
        (
            "request line without target",
            b"GET\r\n\r\n".to_vec(),
            Status(400),
        ),
        (
            "request line without version",
            b"GET /io\r\n\r\n".to_vec(),
            Status(400),
        ),
        // The twins speak HTTP/1 only, and say so.
        (
            "HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            Status(400),
        ),
        (
            "64 KiB header block",
            req("/healthz", &big(64 * 1024)),
            Status(431),
        ),
        (
            "1 MiB header block",
            req("/healthz", &big(1 << 20)),
            Status(431),
        ),
        ("10,000 headers", req("/healthz", &many), Status(431)),
        (
            "100 KB URL",
            req(&format!("/io?ms={}", "1".repeat(100_000)), ""),
            Status(431),
        ),
        (
            "10 KB path",
            req(&format!("/{}", "a".repeat(10_000)), ""),
            Status(414),
        ),
        (
            "invalid percent-encoding",
            req("/io?ms=%ZZ", ""),
            Status(400),
        ),
        ("percent-encoded digits", req("/io?ms=%31", ""), Status(200)),
        ("duplicate parameter", req("/io?ms=1&ms=1", ""), Status(400)),
        (
            "conflicting parameters",
            req("/async-io-multi?tasks=2&tasks=3", ""),
            Status(400),
        ),
        (
            "huge number",
            req("/io?ms=99999999999999999999999999", ""),
            Status(400),
        ),
        ("negative number", req("/io?ms=-5", ""), Status(400)),
        ("unknown parameter", req("/io?sleep=5", ""), Status(400)),
        (
            "GET with a body",
            req("/io?ms=1", "Content-Length: 5\r\n\r\nhello"),
            Status(200),
        ),
        (
            "POST with a body",
            b"POST /io HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
                .to_vec(),
            Status(405),
        ),
        (
            "declared 2 MiB body",
            req("/io?ms=1", "Content-Length: 2097152\r\n"),
            Status(413),
        ),
        (
            "unparseable Content-Length",
            req("/io?ms=1", "Content-Length: 99999999999999999999999\r\n"),
            Status(400),
        ),
        (
            "HTTP/1.0",
            b"GET /io?ms=1 HTTP/1.0\r\n\r\n".to_vec(),
            Status(200),
        ),
        // RFC 9112 §2.2 lets a server accept a bare LF; both do.
        (
            "bare LF line ends",
            b"GET /io?ms=1 HTTP/1.1\nHost: t\nConnection: close\n\n".to_vec(),
            Status(200),
        ),
        (
            "non-ASCII path",
            "GET /ío HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                .as_bytes()
                .to_vec(),
            Status(400),
        ),
    ]
}

/// What happened to one piece of bad input.
#[derive(Debug)]
pub enum Outcome {
    Status(u16),
    Closed,
    Open(TcpStream),
}

/// Send `bytes` on a fresh connection; wait up to `wait` for an answer or a close.
pub fn send_bad(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Outcome {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(wait)).expect("timeout");
    // The server may answer (e.g. 431) and close before reading it all: a write error is fine.
    let _ = s.write_all(bytes);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(r) = parse_response(&buf) {
                    if r.body.len()
                        >= r.header("content-length")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0)
                    {
                        return Outcome::Status(r.status);
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return match parse_response(&buf) {
                    Some(r) => Outcome::Status(r.status),
                    None if buf.is_empty() => Outcome::Open(s),
                    None => Outcome::Closed,
                };
            }
            Err(_) => break,
        }
    }
    match parse_response(&buf) {
        Some(r) => Outcome::Status(r.status),
        None => Outcome::Closed,
    }
}

/// Run the whole catalogue against `addr`: every case gets exactly the answer the catalogue
/// states, and after each one the server answers a normal request at once.
pub fn assert_survives_bad_input(addr: SocketAddr) {
    for (name, bytes, expected) in bad_inputs() {
        let outcome = send_bad(addr, &bytes, Duration::from_millis(800));
        let got = match &outcome {
            Outcome::Status(s) => Expect::Status(*s),
            Outcome::Closed => Expect::Closed,
            Outcome::Open(_) => Expect::Open,
        };
        assert_eq!(got, expected, "{name} on {addr}");
        // Still serving — while a connection left open by the case is still open.
        let t = Instant::now();
        let health = get(addr, "/healthz");
        assert_eq!(health.status, 200, "after {name}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "after {name}: /healthz took {:?}",
            t.elapsed()
        );
        drop(outcome);
    }
}

/// Fire `n` requests at once at `http://addr{path}` with `burst`; every one must be a 200.
pub fn fire_ok(addr: SocketAddr, path: &str, n: usize) -> burst::Burst {
    let url = format!("http://{addr}{path}");
    let b = burst::fire_blocking(&url, n, Duration::from_secs(20)).expect("burst");
    for r in &b.results {
        assert!(r.is_ok() && r.status == Some(200), "{r:?}");
    }
    b
}

/// Completion times since the release, one per request.
pub fn done_times(b: &burst::Burst) -> Vec<Duration> {
    b.results
        .iter()
        .map(|r| r.done.expect("completed"))
        .collect()
}

/// Poll `cond` every 2 ms until it holds; fail after 10 s, naming `what` was awaited.
pub fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < end, "gave up waiting for {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

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

/// A connection to `addr` that is *reset* when dropped (`SO_LINGER` 0), as `burst` and the stage
/// close what they give up: a twin takes it for a client that has gone.
pub fn connect_resetting(addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .expect("a socket");
    socket.set_linger(Some(Duration::ZERO)).expect("linger 0");
    socket.connect(&addr.into()).expect("connect");
    socket.into()
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

/// Open `n` connections to `addr`, then send `GET path` (HTTP/1.1, keep-alive) on all of them at
/// once and read each response; connections stay open until every response is in, as a
/// benchmarking client's or a browser's would. Returns each request's completion time since the
/// release and the worker that answered it.
pub fn keep_alive_burst(addr: SocketAddr, path: &str, n: usize) -> Vec<(Duration, String)> {
    let streams: Vec<TcpStream> = (0..n)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    let go = Arc::new(Barrier::new(n + 1));
    let release = Arc::new(Mutex::new(None::<Instant>));
    let handles: Vec<_> = streams
        .into_iter()
        .map(|mut s| {
            let (go, release) = (go.clone(), release.clone());
            let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
            thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                go.wait();
                let t0 = release.lock().expect("release").expect("released");
                s.write_all(request.as_bytes()).expect("send the request");
                let r = read_one_response(&mut s);
                let worker = r.header("x-worker").unwrap_or("-").to_owned();
                // The stream goes back to the caller: it stays open until every response is in.
                (t0.elapsed(), worker, s)
            })
        })
        .collect();
    *release.lock().expect("release") = Some(Instant::now());
    go.wait();
    let joined: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
    let mut out = Vec::with_capacity(n);
    for j in joined {
        match j {
            Ok((done, worker, _open)) => out.push((done, worker)),
            Err(_) => panic!("a request of the keep-alive burst got no answer within 10 s"),
        }
    }
    out
}

/// Read exactly one response (head, then `Content-Length` bytes of body) from a kept-open stream.
fn read_one_response(s: &mut TcpStream) -> RawResponse {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(r) = parse_response(&buf) {
            let want: usize = r
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if r.body.len() >= want {
                return r;
            }
        }
        let k = s.read(&mut chunk).expect("read a response");
        assert!(
            k > 0,
            "the server closed a keep-alive connection before answering"
        );
        buf.extend_from_slice(&chunk[..k]);
    }
}

/// Check a burst's waves by their shape, so the check holds however long the burst: completions
/// fall into ⌈n/per_wave⌉ waves (split by gaps of half a `period`) of `per_wave` each, the
/// first about one `period` after the release and each next one about a `period` later.
pub fn assert_wave_shape(done: &[Duration], per_wave: usize, period: Duration) {
    let waves = burst::model::waves(done, period);
    let sizes: Vec<usize> = waves.iter().map(|w| w.size).collect();
    let mut expected = vec![per_wave; done.len() / per_wave];
    if done.len() % per_wave != 0 {
        expected.push(done.len() % per_wave);
    }
    assert_eq!(sizes, expected, "wave sizes; waves: {waves:?}");
    let slack = Duration::from_millis(15);
    let mut before = Duration::ZERO;
    for (k, w) in waves.iter().enumerate() {
        let step = w.first.saturating_sub(before);
        assert!(
            step + slack >= period && step < period + period / 2,
            "wave {k} began {step:?} after the one before, expected {period:?}; waves: {waves:?}"
        );
        before = w.first;
    }
}

/// Threads that keep CPUs busy until dropped: the tests' stand-in for a presenter's laptop
/// running a browser, a video call and a build.
#[derive(Debug)]
pub struct CpuHogs {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl CpuHogs {
    pub fn start(n: usize) -> CpuHogs {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                thread::spawn(move || {
                    let mut x = 1u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..10_000 {
                            x = std::hint::black_box(x.wrapping_mul(6364136223846793005) + 1);
                        }
                    }
                })
            })
            .collect();
        CpuHogs { stop, threads }
    }
}

impl Drop for CpuHogs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
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

/// The access log is written at pick-up, and says so in its times: fire `n` requests at once at
/// `path` on a server started with `--log-ms`, and return the pick-up lines' times (ms since the
/// epoch, parsed from the log) — each one equal to the `started` of one response body.
pub fn pick_up_times(server: &ServerProcess, path: &str, n: usize) -> Vec<u64> {
    let addr = server.addr;
    let path = path.to_owned();
    let bodies: Vec<String> = (0..n)
        .map(|_| {
            let path = path.clone();
            thread::spawn(move || get(addr, &path).body)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("a request"))
        .collect();
    let lines = server.log_lines_until_quiet(Duration::from_millis(400));
    assert_eq!(lines.len(), n, "{lines:?}");
    // `[2024-10-29 17:04:15.123] …` in the log, `"started":"2024-10-29T17:04:15.123+01:00"` in
    // the body: the same instant, to the millisecond.
    let mut logged: Vec<String> = lines
        .iter()
        .map(|l| l.get(1..24).expect("a stamp").replace(' ', "T"))
        .collect();
    let mut started: Vec<String> = bodies
        .iter()
        .map(|b| {
            let at = b.find("\"started\":\"").expect("a started field") + 11;
            b.get(at..at + 23).expect("a stamp").to_owned()
        })
        .collect();
    logged.sort();
    started.sort();
    assert_eq!(
        logged, started,
        "each log line's time is a body's `started`"
    );
    logged
        .iter()
        .map(|stamp| {
            // Milliseconds within the day are enough to compare pick-ups seconds apart.
            let hms = &stamp[11..];
            let h: u64 = hms[0..2].parse().expect("hours");
            let m: u64 = hms[3..5].parse().expect("minutes");
            let s: u64 = hms[6..8].parse().expect("seconds");
            let ms: u64 = hms[9..12].parse().expect("milliseconds");
            ((h * 60 + m) * 60 + s) * 1000 + ms
        })
        .collect()
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
