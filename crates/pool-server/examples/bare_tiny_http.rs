//! The bare-crate baseline for `scripts/bench.sh`: tiny_http with a pool of 4 threads, each doing
//! the pool's own work for a request — a blocking wait of `?ms=` — and answering a fixed body:
//! no routing, no log line, no JSON account, no ids, events or limits. So
//! `pool-server / bare_tiny_http` measures the twin's own bookkeeping, not the lesson's work.
//! Run with `cargo run --release -p pool-server --example bare_tiny_http -- 127.0.0.1:9000`.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// `?ms=N` of a request's URL (0 when absent or not a number: a baseline needs no error answers).
fn wait(url: &str) -> Duration {
    let ms = url
        .split_once('?')
        .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("ms=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_millis(ms)
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    let server = match tiny_http::Server::http(&addr) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("bare_tiny_http: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("listening on http://{addr}");
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let server = server.clone();
            thread::spawn(move || {
                while let Ok(rq) = server.recv() {
                    thread::sleep(wait(rq.url()));
                    let _ = rq.respond(tiny_http::Response::from_string("ok\n"));
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}
