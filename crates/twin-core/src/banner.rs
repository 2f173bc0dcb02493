//! The startup banner: the effective configuration and every route's URL, on stderr, ending in the
//! `listening on http://HOST:PORT` line that scripts and tests wait for.

use std::fmt::Write as _;

use crate::config::Config;
use crate::reply::plural;
use crate::route::{Route, ServerKind};

/// The banner's text; the last line is `listening on <url>`.
pub fn render(config: &Config, extra: &[(&str, String)]) -> String {
    let c = config;
    let mut s = String::new();
    let on_off = |b: bool| if b { "on" } else { "off" };
    let _ = writeln!(s, "{} {} (pid {})", c.kind.binary(), c.version, c.pid);
    let _ = writeln!(s, "  {}", c.kind.tagline());
    let each = match c.kind {
        ServerKind::Pool => "serving one request at a time",
        ServerKind::EventLoop => "holding many requests at a time",
    };
    let threads = c.threads();
    let slots = match c.kind {
        ServerKind::Pool => c.pool_slots(),
        ServerKind::EventLoop => usize::from(c.workers),
    };
    let names = match slots {
        1 => "worker0".to_owned(),
        n => format!("worker0..worker{}", n - 1),
    };
    let count = plural(u64::from(c.workers), c.kind.worker_noun());
    let _ = match (c.workers, threads) {
        (1, 1) => writeln!(s, "  workers       {count} {each} ({names})"),
        (_, 1) => writeln!(s, "  workers       {count}, each {each} ({names})"),
        (w, k) => writeln!(
            s,
            "  workers       {w} × {k} threads (--threads, as gunicorn's gthread): {slots} worker \
             threads,\n                each {each} ({names})"
        ),
    };
    let _ = writeln!(
        s,
        "  work          T = {} ms (?ms= 0..={}), K = {} on /async-io-multi (?tasks= 1..={})",
        c.task_ms, c.max_ms, c.multi_tasks, c.max_tasks
    );
    let _ = writeln!(
        s,
        "  cpu work      /cpu?ms=T: a fixed amount of work, T on a free core ({} units/ms); {}",
        c.cpu_units_per_ms,
        plural(u64::from(c.cores), "core")
    );
    if let Some(slots) = c.threadpool {
        let fastapi = if slots == 40 {
            "as in FastAPI".to_owned()
        } else {
            "FastAPI has 40".to_owned()
        };
        let _ = writeln!(
            s,
            "  thread pool   {} per event loop for blocking routes (/io); {fastapi}",
            plural(u64::from(slots), "slot")
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
            "  concurrency   {} in the server, waiting or served: beyond it, 503 at once \
             (--limit-concurrency)",
            plural(n as u64, "request")
        );
    }
    for (name, value) in extra {
        let _ = writeln!(s, "  {name:<13} {value}");
    }
    let _ = writeln!(s, "  listen queue  {} connections (--backlog)", c.backlog);
    let _ = writeln!(
        s,
        "  timeouts      head {} s (--timeout-header), idle keep-alive {} s (--timeout-keep-alive)",
        c.timeout_header_s, c.timeout_keep_alive_s
    );
    let _ = writeln!(
        s,
        "  access log    stdout, one line per request when a worker picks it up"
    );
    let _ = writeln!(
        s,
        "                (--log-ms {}, --log-finish {}, --log-healthz {})",
        on_off(c.log_ms),
        on_off(c.log_finish),
        on_off(c.log_healthz)
    );
    let _ = writeln!(
        s,
        "  watchers      GET /events: up to {} (--max-watchers); a client that gave up: skipped, 499",
        c.max_watchers
    );
    let _ = writeln!(
        s,
        "  shutdown      Ctrl-C or SIGTERM drains for up to {} s; a second Ctrl-C quits at once",
        c.graceful_timeout_s
    );
    let _ = writeln!(s, "                ({})", crate::platform::drain_note());
    let _ = writeln!(s, "  routes (GET)");
    for r in Route::ALL {
        let _ = writeln!(s, "    {}{}", c.url, r.path());
        wrap(&mut s, "        ", r.describe(c.kind));
    }
    let _ = writeln!(s, "listening on {}", c.url);
    s
}

/// Lines a projector's terminal can show: `text` in words, at most 100 columns, each line
/// starting with `indent`.
fn wrap(s: &mut String, indent: &str, text: &str) {
    let mut line = String::from(indent);
    for word in text.split_whitespace() {
        if line.len() > indent.len() && line.chars().count() + 1 + word.chars().count() > 100 {
            let _ = writeln!(s, "{line}");
            line = String::from(indent);
        }
        if line.len() > indent.len() {
            line.push(' ');
        }
        line.push_str(word);
    }
    let _ = writeln!(s, "{line}");
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
                b.contains(&format!("    http://127.0.0.1:8001{}\n", r.path())),
                "{b}"
            );
        }
        assert!(
            b.lines().all(|l| l.chars().count() <= 100),
            "fits a projector: {b}"
        );
        assert!(b.contains("40 slots per event loop"), "{b}");
        assert!(b.contains("4 event loops, each"), "{b}");
        c.workers = 1;
        c.threadpool = Some(1);
        let b = render(&c, &[]);
        assert!(b.contains("1 event loop holding"), "{b}");
        assert!(b.contains("(worker0)") && b.contains("1 slot per"), "{b}");
    }
}
