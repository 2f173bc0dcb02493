//! Every answer either twin gives, as plain data each server turns into its own response type.
//!
//! Keeping replies here means the two servers send byte-for-byte the same bodies and headers, so
//! a difference seen with curl or `burst` can only come from the concurrency model.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::json;

use crate::config::Config;
use crate::request::{Job, ParamError};
use crate::route::Route;
use crate::timefmt;

pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain; charset=utf-8";

/// A complete answer: status, content type, extra headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// How a worker carried out a [`Job`], for the reply body and headers.
#[derive(Debug, Clone, Copy)]
pub struct WorkReport {
    /// Which worker (pool thread or event loop) picked the request up.
    pub worker: usize,
    /// When it picked the request up (the access-log time).
    pub started: SystemTime,
    /// From pick-up until the work was done.
    pub elapsed: Duration,
    /// On the event-loop twin's `/io`: how long the request waited for a thread-pool slot.
    pub pool_wait: Option<Duration>,
}

/// Milliseconds with one decimal, as logs and `Server-Timing` show them.
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// The `X-Worker` value for worker `k`.
pub fn worker_name(k: usize) -> String {
    format!("worker{k}")
}

#[derive(Serialize)]
struct WorkBody<'a> {
    server: &'static str,
    route: &'static str,
    worker: String,
    pid: u32,
    ms: u128,
    tasks: u32,
    started: String,
    finished: String,
    elapsed_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pool_wait_ms: Option<f64>,
    what_happened: &'a str,
}

impl Reply {
    fn json(status: u16, body: &impl Serialize) -> Reply {
        Reply {
            status,
            content_type: JSON,
            headers: Vec::new(),
            // Serialising our own plain structs cannot fail; an empty object is a safe fallback.
            body: serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned()) + "\n",
        }
    }

    /// The answer to a finished work route.
    pub fn work(config: &Config, job: &Job, report: &WorkReport) -> Reply {
        let body = WorkBody {
            server: config.kind.as_str(),
            route: job.route.path(),
            worker: worker_name(report.worker),
            pid: config.pid,
            ms: job.wait.as_millis(),
            tasks: job.tasks,
            started: timefmt::rfc3339_ms(report.started),
            finished: timefmt::rfc3339_ms(report.started + report.elapsed),
            elapsed_ms: millis(report.elapsed),
            pool_wait_ms: report.pool_wait.map(millis),
            what_happened: job.route.describe(config.kind),
        };
        let mut reply = Reply::json(200, &body);
        reply.headers.push((
            "Server-Timing",
            format!("app;dur={:.1}", millis(report.elapsed)),
        ));
        reply
    }

    /// `GET /`: who this is, how it is configured, and every route with a curl line.
    pub fn index(config: &Config) -> Reply {
        let routes: Vec<_> = Route::ALL
            .iter()
            .map(|r| {
                json!({
                    "path": r.path(),
                    "method": "GET",
                    "params": r.params().iter().map(|p| p.name()).collect::<Vec<_>>(),
                    "description": r.describe(config.kind),
                    "example": format!("curl -s '{}{}{}'", config.url, r.path(), r.example_query()),
                })
            })
            .collect();
        let mut body = serde_json::to_value(config).unwrap_or_default();
        if let Some(map) = body.as_object_mut() {
            map.insert("server".into(), json!(config.kind.binary()));
            map.insert("about".into(), json!(config.kind.tagline()));
            map.insert("routes".into(), json!(routes));
        }
        Reply::json(200, &body)
    }

    /// `GET /healthz`.
    pub fn health() -> Reply {
        Reply {
            status: 200,
            content_type: TEXT,
            headers: Vec::new(),
            body: "ok\n".to_owned(),
        }
    }

    pub fn bad_request(route: Route, e: &ParamError) -> Reply {
        Reply::json(
            400,
            &json!({
                "error": e.error,
                "route": route.path(),
                "parameter": e.parameter,
                "received": e.received,
                "allowed": e.allowed,
            }),
        )
    }

    pub fn not_found(path: &str) -> Reply {
        let routes: Vec<&str> = Route::ALL.iter().map(|r| r.path()).collect();
        Reply::json(
            404,
            &json!({ "error": "not found", "path": path, "routes": routes }),
        )
    }

    pub fn method_not_allowed(method: &str, route: Route) -> Reply {
        let mut reply = Reply::json(
            405,
            &json!({
                "error": "method not allowed",
                "method": method,
                "path": route.path(),
                "allowed": "GET",
            }),
        );
        reply.headers.push(("Allow", "GET".to_owned()));
        reply
    }

    /// A request that was queued but not yet picked up when the server began to drain.
    pub fn shutting_down() -> Reply {
        let mut reply = Reply::json(
            503,
            &json!({
                "error": "shutting down",
                "detail": "the server is draining after Ctrl-C or SIGTERM and takes no new work",
            }),
        );
        reply.headers.push(("Connection", "close".to_owned()));
        reply
    }

    /// Every answer a worker gives names it, so `burst` can line it up with the log.
    pub fn with_worker(mut self, worker: usize) -> Reply {
        self.headers.push(("X-Worker", worker_name(worker)));
        self
    }

    /// Turned away at once because a limit the operator set is reached (uvicorn answers
    /// `--limit-concurrency` the same way).
    pub fn overloaded(flag: &str, limit: usize) -> Reply {
        let mut reply = Reply::json(
            503,
            &json!({
                "error": "overloaded",
                "detail": format!("{flag} {limit} reached; try again shortly"),
                "limit": limit,
            }),
        );
        reply.headers.push(("Retry-After", "1".to_owned()));
        reply
    }

    /// A request over one of the [`crate::limits`]; the connection is closed after it.
    pub fn too_large(status: u16, error: &str, detail: String) -> Reply {
        let mut reply = Reply::json(status, &json!({ "error": error, "detail": detail }));
        reply.headers.push(("Connection", "close".to_owned()));
        reply
    }

    /// A short error for requests that never reached the router (e.g. headers too large).
    pub fn error(status: u16, error: &str, detail: &str) -> Reply {
        Reply::json(status, &json!({ "error": error, "detail": detail }))
    }
}
