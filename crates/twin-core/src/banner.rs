//! The startup banner: the effective configuration and every route's URL, on stderr, ending in the
//! `listening on http://HOST:PORT` line that scripts and tests wait for.

use std::fmt::Write as _;

use crate::config::Config;
use crate::route::{Route, ServerKind};

/// The banner's text; the last line is `listening on <url>`.
pub fn render(config: &Config, extra: &[(&str, String)]) -> String {
    let c = config;
    let mut s = String::new();
    let on_off = |b: bool| if b { "on" } else { "off" };
    let _ = writeln!(s, "{} {} (pid {})", c.kind.binary(), c.version, c.pid);
    let _ = writeln!(s, "  {}", c.kind.tagline());
    let unit = match c.kind {
        ServerKind::Pool => "worker threads, each serving one request at a time",
        ServerKind::EventLoop => "event loops, each holding many requests at a time",
    };
    let last = c.workers.saturating_sub(1);
    let _ = writeln!(
        s,
        "  workers       {} {unit} (worker0..worker{last})",
        c.workers
    );
    let _ = writeln!(
        s,
        "  work          T = {} ms (?ms= 0..={}), K = {} on /async-io-multi (?tasks= 1..={})",
        c.task_ms, c.max_ms, c.multi_tasks, c.max_tasks
    );
    if let Some(slots) = c.threadpool {
        let _ = writeln!(
            s,
            "  thread pool   {slots} slots per event loop for blocking routes (/io), as FastAPI's 40"
        );
    }
    if let Some(n) = c.max_queue {
        let _ = writeln!(
            s,
            "  max queue     {n}: beyond it, 503 at once (--max-queue)"
        );
    }
    if let Some(n) = c.limit_concurrency {
        let _ = writeln!(
            s,
            "  concurrency   {n} requests in flight: beyond it, 503 at once (--limit-concurrency)"
        );
    }
    for (name, value) in extra {
        let _ = writeln!(s, "  {name:<13} {value}");
    }
    let _ = writeln!(s, "  listen queue  {} connections (--backlog)", c.backlog);
    let _ = writeln!(
        s,
        "  access log    stdout, one line per request when a worker picks it up \
         (--log-ms {}, --log-finish {}, --log-healthz {})",
        on_off(c.log_ms),
        on_off(c.log_finish),
        on_off(c.log_healthz)
    );
    let _ = writeln!(
        s,
        "  shutdown      Ctrl-C or SIGTERM drains for up to {} s; a second Ctrl-C quits at once",
        c.graceful_timeout_s
    );
    let _ = writeln!(s, "  routes (GET)");
    for r in Route::ALL {
        let url = format!("{}{}", c.url, r.path());
        let _ = writeln!(s, "    {url:<40} {}", r.describe(c.kind));
    }
    let _ = writeln!(s, "listening on {}", c.url);
    s
}

/// Print the banner to stderr.
pub fn print(config: &Config, extra: &[(&str, String)]) {
    eprint!("{}", render(config, extra));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_with_the_listening_line_and_names_every_route() {
        let mut c = Config::for_tests(ServerKind::EventLoop, 4, 1000);
        c.url = "http://127.0.0.1:8001".into();
        let b = render(&c, &[]);
        assert!(b.ends_with("listening on http://127.0.0.1:8001\n"), "{b}");
        for r in Route::ALL {
            assert!(
                b.contains(&format!("http://127.0.0.1:8001{} ", r.path())),
                "{b}"
            );
        }
        assert!(b.contains("40 slots"), "{b}");
    }
}
