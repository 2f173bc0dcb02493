//! Every answer either twin gives, as plain data each server turns into its own response type.
//!
//! Keeping replies here means the two servers send byte-for-byte the same bodies and headers, so
//! a difference seen with curl or `burst` can only come from the concurrency model.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::json;

use crate::config::Config;
use crate::job::{Job, ParamError};
use crate::route::Route;
use crate::timefmt;

pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain; charset=utf-8";
pub const HTML: &str = "text/html; charset=utf-8";

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
pub struct WorkReport<'a> {
    /// The request's id (`X-Request-Id`, kept or made), as the events name it.
    pub request_id: &'a str,
    /// Which worker (pool thread or event loop) picked the request up.
    pub worker: usize,
    /// When it picked the request up (the access-log time).
    pub started: SystemTime,
    /// From pick-up until the work was done.
    pub elapsed: Duration,
    /// On the event-loop twin's `/io`: how long the request waited for a thread-pool slot.
    pub pool_wait: Option<Duration>,
    /// On `/cpu`: the CPU time the work took.
    pub cpu: Option<Duration>,
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
    request_id: &'a str,
    pid: u32,
    ms: u128,
    tasks: u32,
    started: String,
    finished: String,
    elapsed_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pool_wait_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_ms: Option<f64>,
    what_happened: &'a str,
}

impl Reply {
    pub(crate) fn json(status: u16, body: &impl Serialize) -> Reply {
        Reply {
            status,
            content_type: JSON,
            headers: Vec::new(),
            // Serialising our own plain structs cannot fail; an empty object is a safe fallback.
            body: serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned()) + "\n",
        }
    }

    /// The answer to a finished work route.
    pub fn work(config: &Config, job: &Job, report: &WorkReport<'_>) -> Reply {
        let body = WorkBody {
            server: config.kind.as_str(),
            route: job.route.path(),
            worker: worker_name(report.worker),
            request_id: report.request_id,
            pid: config.pid,
            ms: job.wait.as_millis(),
            tasks: job.tasks,
            started: timefmt::rfc3339_ms(report.started),
            finished: timefmt::rfc3339_ms(report.started + report.elapsed),
            elapsed_ms: millis(report.elapsed),
            pool_wait_ms: report.pool_wait.map(millis),
            cpu_ms: report.cpu.map(millis),
            what_happened: job.route.describe(config.kind),
        };
        let mut reply = Reply::json(200, &body);
        // `app` is the whole time from pick-up; `pool-wait`, the part of it spent waiting for a
        // thread-pool slot, so a client can draw that part as waiting rather than as service.
        // Each with a `desc`, which browsers' developer tools show beside the bar.
        let mut timing = format!(
            "app;dur={:.1};desc=\"from pick-up to the answer\"",
            millis(report.elapsed)
        );
        if let Some(wait) = report.pool_wait {
            timing.push_str(&format!(
                ", pool-wait;dur={:.1};desc=\"waiting for a thread-pool slot\"",
                millis(wait)
            ));
        }
        if let Some(cpu) = report.cpu {
            timing.push_str(&format!(
                ", cpu;dur={:.1};desc=\"CPU time of the work\"",
                millis(cpu)
            ));
        }
        reply.headers.push(("Server-Timing", timing));
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
                    "holds": r.holds(config.kind),
                    "service": r.service(),
                    "slots": r.slots(config),
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

    /// `GET /` from a browser: what this server is, its routes as links, and why the waves are
    /// for curl and burst to show.
    pub fn index_html(config: &Config) -> Reply {
        let c = config;
        let mut rows = String::new();
        for r in Route::ALL {
            let href = format!("{}{}", r.path(), r.example_query());
            let what = match r {
                Route::Index => {
                    "this page in a browser; for curl and burst, the server's \
                                 configuration and route table as JSON"
                }
                _ => r.describe(c.kind),
            };
            rows.push_str(&format!(
                "<tr><td><a href=\"{href}\">{href}</a></td><td>{}</td></tr>\n",
                with_code(&html_escape(what))
            ));
        }
        let workers = plural(u64::from(c.workers), c.kind.worker_noun());
        let body = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>{binary}</title>\n<style>body{{font:18px/1.5 system-ui,sans-serif;\
             max-width:60em;margin:2em auto;padding:0 1em}}td{{padding:.2em 1em .2em 0;\
             vertical-align:top}}code{{background:#eee;padding:0 .3em}}</style></head><body>\n\
             <h1>{binary}</h1>\n<p>{tagline}</p>\n\
             <p>{workers}, T = {t} ms, K = {k}; pid {pid}.</p>\n\
             <p><strong>Use curl or burst to see the waves</strong>, not this browser: a browser \
             sends about 6 requests at a time to one host and would fake them. \
             <code>burst {url}/io</code> fires 16 at once.</p>\n\
             <table>\n{rows}</table>\n<p>The configuration as JSON: \
             <code>curl -s {url}/</code></p>\n<p>Every request's life, live: \
             <code>curl -sN {url}/events</code> (Server-Sent Events); <code>burst stage</code> \
             draws them at http://127.0.0.1:8080.</p>\n</body></html>\n",
            binary = c.kind.binary(),
            tagline = html_escape(c.kind.tagline()),
            t = c.task_ms,
            k = c.multi_tasks,
            pid = c.pid,
            url = html_escape(&c.url),
        );
        Reply {
            status: 200,
            content_type: HTML,
            headers: Vec::new(),
            body,
        }
    }

    /// An answer with nothing in it (the browser's `/favicon.ico`).
    pub fn no_content() -> Reply {
        Reply {
            status: 204,
            content_type: TEXT,
            headers: Vec::new(),
            body: String::new(),
        }
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
                "allowed": "GET, HEAD",
            }),
        );
        reply.headers.push(("Allow", "GET, HEAD".to_owned()));
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

    /// A request whose client reset its connection before a worker picked it up: skipped, as
    /// nginx's 499. Nobody reads it (the socket is gone); the log and `/events` say 499.
    pub fn client_gone() -> Reply {
        Reply::json(
            499,
            &json!({
                "error": "client gone",
                "detail": "the client closed its connection before a worker picked the request up",
            }),
        )
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

    /// The answer to `HEAD /events` on both twins: the stream's head, and no stream.
    pub fn events_head() -> Reply {
        let mut reply = Reply::json(200, &json!({}));
        reply.content_type = "text/event-stream";
        reply.headers.push(("Cache-Control", "no-store".to_owned()));
        reply.body.clear();
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

/// `def` in a description becomes <code>def</code> on the page.
fn with_code(s: &str) -> String {
    let mut out = String::new();
    for (k, part) in s.split('`').enumerate() {
        if k % 2 == 1 {
            out.push_str(&format!("<code>{part}</code>"));
        } else {
            out.push_str(part);
        }
    }
    out
}

/// Text for HTML: `&`, `<`, `>` and `"` escaped.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// "1 worker", "4 workers": a count and its noun, in the right number.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
