//! A real twin binary for a test: started on port 0, its access log read line by line, signalled,
//! and always ended (by PID) on drop; and waiting for a condition rather than a guessed time.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
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
        let mut all = vec!["--port", "0"];
        all.extend_from_slice(args);
        ServerProcess::start_with(bin, &all)
    }

    /// Start `program` with exactly `args` (e.g. a shell that sets a limit, then execs a server).
    pub fn start_with(program: &str, args: &[&str]) -> ServerProcess {
        ServerProcess::start_env(program, args, &[])
    }

    /// Start `program` with exactly `args` and these environment variables set. Its URL is
    /// read from `listening on URL` (the twins, gunicorn.conf.py, events_relay.py) or
    /// `Uvicorn running on URL`.
    pub fn start_env(program: &str, args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        let bin = program;
        let mut child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
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
                let uvicorn = line
                    .split_once("Uvicorn running on ")
                    .and_then(|(_, rest)| rest.split_whitespace().next());
                if let Some(url) = line.strip_prefix("listening on ").or(uvicorn) {
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

    /// Wait (up to 30 s) until `count` lines of its stderr contain `text`.
    pub fn wait_stderr(&self, text: &str, count: usize) {
        let seen = || {
            self.stderr
                .lock()
                .map_or(0, |l| l.iter().filter(|l| l.contains(text)).count())
        };
        let end = Instant::now() + Duration::from_secs(30);
        while seen() < count {
            assert!(
                Instant::now() < end,
                "gave up waiting for {count} × {text:?}; stderr:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
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

/// Poll `cond` every 2 ms until it holds; fail after 10 s, naming `what` was awaited.
pub fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < end, "gave up waiting for {what}");
        thread::sleep(Duration::from_millis(2));
    }
}
