//! The real Python stacks for a test: gunicorn + Flask and uvicorn + FastAPI from the workspace's
//! `.venv-python` (made by `scripts/real-stacks.sh`), each with its events relay
//! (`python/events_relay.py`), on free loopback ports, ended by PID on drop.
//!
//! Where Python or the venv is missing a test that needs them is skipped with a line that says
//! why — unless `TWINS_REQUIRE_PYTHON=1` (set by `.ci/run` once it has made the venv), where that
//! is a failure.

use std::net::TcpListener;
use std::path::PathBuf;

use crate::process::ServerProcess;

/// A running stack: its relay first (its workers send to it from their start), then the server.
#[derive(Debug)]
pub struct Stack {
    pub server: ServerProcess,
    pub relay: ServerProcess,
}

impl Stack {
    pub fn url(&self) -> &str {
        &self.server.url
    }
}

/// gunicorn and uvicorn stop their worker processes when their master gets SIGTERM; killed
/// outright (as a `ServerProcess` is on drop), the master would leave them running.
impl Drop for Stack {
    fn drop(&mut self) {
        // Not `signal`, which asserts: this may run while a test panics.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.server.pid().to_string()])
            .status();
        if self
            .server
            .wait(std::time::Duration::from_secs(15))
            .is_none()
        {
            eprintln!("the Python stack did not stop within 15 s of SIGTERM; killed");
        }
    }
}

/// The workspace's root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's `bin/`, or why a test cannot have the real stacks: skipped (said on stderr), or a
/// failure where `TWINS_REQUIRE_PYTHON=1`.
pub fn venv_or_skip() -> Option<PathBuf> {
    let bin = root().join(".venv-python").join("bin");
    let ready = ["python", "gunicorn", "uvicorn"]
        .iter()
        .all(|p| bin.join(p).exists());
    if ready {
        return Some(bin);
    }
    let why = "no .venv-python with gunicorn and uvicorn (scripts/real-stacks.sh makes it, \
               with Python 3 and PyPI)";
    if std::env::var_os("TWINS_REQUIRE_PYTHON").is_some_and(|v| v == "1") {
        panic!("TWINS_REQUIRE_PYTHON=1, but {why}");
    }
    eprintln!("SKIPPED: {why}");
    None
}

fn relay(bin: &std::path::Path) -> ServerProcess {
    let script = root().join("python").join("events_relay.py");
    let python = bin.join("python");
    ServerProcess::start_with(
        &python.to_string_lossy(),
        &[&script.to_string_lossy(), "--port", "0"],
    )
}

/// `host:port` of a relay, for its stack's `TWIN_EVENTS`.
fn events_of(relay: &ServerProcess) -> String {
    relay.addr.to_string()
}

/// gunicorn + Flask with `workers` sync workers and T = `task_ms`.
pub fn gunicorn(bin: &std::path::Path, workers: u32, task_ms: u64) -> Stack {
    let relay = relay(bin);
    let (events, workers_s, task) = (events_of(&relay), workers.to_string(), task_ms.to_string());
    let dir = root().join("python");
    let conf = dir.join("gunicorn.conf.py");
    let server = ServerProcess::start_env(
        &bin.join("gunicorn").to_string_lossy(),
        &[
            "--config",
            &conf.to_string_lossy(),
            "--chdir",
            &dir.to_string_lossy(),
            "--bind",
            "127.0.0.1:0",
            "flask_app:app",
        ],
        &[
            ("TWIN_EVENTS", &events),
            ("TWIN_WORKERS", &workers_s),
            ("TWIN_TASK_MS", &task),
        ],
    );
    server.wait_stderr("Booting worker", workers as usize);
    Stack { server, relay }
}

/// uvicorn + FastAPI with `workers` worker processes and T = `task_ms`, every worker started.
pub fn uvicorn(bin: &std::path::Path, workers: u32, task_ms: u64) -> Stack {
    let relay = relay(bin);
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let (events, workers_s, task) = (events_of(&relay), workers.to_string(), task_ms.to_string());
    let (port_s, url) = (port.to_string(), format!("http://127.0.0.1:{port}"));
    let dir = root().join("python");
    let server = ServerProcess::start_env(
        &bin.join("uvicorn").to_string_lossy(),
        &[
            "fastapi_app:app",
            "--app-dir",
            &dir.to_string_lossy(),
            "--host",
            "127.0.0.1",
            "--port",
            &port_s,
            "--workers",
            &workers_s,
            "--no-access-log",
        ],
        &[
            ("TWIN_EVENTS", &events),
            ("TWIN_URL", &url),
            ("TWIN_WORKERS", &workers_s),
            ("TWIN_TASK_MS", &task),
        ],
    );
    server.wait_stderr("Application startup complete", workers as usize);
    Stack { server, relay }
}
