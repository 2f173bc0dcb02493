//! The bare-crate baseline for `scripts/bench.sh`: axum on a 4-thread tokio runtime doing each
//! route's own work and nothing else — `/io` a blocking wait of `?ms=` on tokio's blocking pool
//! (`spawn_blocking`, as async-server's thread-pool hop), `/async-io` a `tokio::time::sleep` (a
//! zero one yields once, as the twin's does) — with a fixed body, no log line, no JSON account,
//! no ids, events or limits. So
//! `async-server / bare_axum` per route measures the twin's own bookkeeping, not the lesson's
//! work. Run with `cargo run --release -p async-server --example bare_axum -- 127.0.0.1:9001`.

use std::time::Duration;

use axum::extract::RawQuery;
use axum::routing::get;
use axum::Router;

/// `?ms=N` (0 when absent or not a number: a baseline needs no error answers).
fn wait(query: Option<String>) -> Duration {
    let ms = query
        .as_deref()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ms=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_millis(ms)
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .max_blocking_threads(160) // async-server's 4 loops × 40 slots
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bare_axum: cannot start a runtime: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(async {
        let listener = match tokio::net::TcpListener::bind(&addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("bare_axum: cannot listen on {addr}: {e}");
                std::process::exit(1);
            }
        };
        eprintln!("listening on http://{addr}");
        let app = Router::new()
            .route(
                "/io",
                get(|RawQuery(q): RawQuery| async move {
                    let t = wait(q);
                    let _ = tokio::task::spawn_blocking(move || std::thread::sleep(t)).await;
                    "ok\n"
                }),
            )
            .route(
                "/async-io",
                get(|RawQuery(q): RawQuery| async move {
                    // As the twin's `work::wait_for`: a zero wait yields once, no timer.
                    match wait(q) {
                        t if t.is_zero() => tokio::task::yield_now().await,
                        t => tokio::time::sleep(t).await,
                    }
                    "ok\n"
                }),
            )
            .fallback(get(|| async { "ok\n" }));
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("bare_axum: {e}");
        }
    });
}
