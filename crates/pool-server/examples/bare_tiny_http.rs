//! The bare-crate baseline for `scripts/bench.sh`: tiny_http with 4 threads answering a fixed
//! body, no routing, no logging — the limit pool-server is held against.
//! Run with `cargo run --release -p pool-server --example bare_tiny_http -- 127.0.0.1:9000`.

use std::sync::Arc;
use std::thread;

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
                    let _ = rq.respond(tiny_http::Response::from_string("ok\n"));
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}
