//! The queueing rule, checked: completion times in waves of `workers`, bursts fired the way
//! `burst`, wrk or a browser fire them, and busy threads that stand in for a loaded laptop.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::http::{get, read_one_response};
use crate::process::ServerProcess;

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
