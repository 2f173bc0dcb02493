//! # testkit — helpers for the twins' end-to-end tests
//!
//! - [`ServerProcess`]: start a real server binary on port 0, wait for its `listening on` line,
//!   read its access log (stdout) line by line, signal it, and always end it (by PID) on drop.
//! - [`raw_exchange`] / [`get`]: HTTP over a plain TCP stream, for bad input a client library
//!   would refuse to send.
//! - [`parse_log_line`]: the reference access-log format, as a regular expression.
//! - [`assert_waves`]: the queueing rule, checked with tolerances that hold on 2 busy cores.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use regex::Regex;

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
        let mut child = Command::new(bin)
            .args(["--port", "0"])
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
