//! The bare-crate baseline for `scripts/bench.sh`: a default axum app on a 4-thread tokio runtime
//! answering a fixed body, no logging — the limit async-server is held against.
//! Run with `cargo run --release -p async-server --example bare_axum -- 127.0.0.1:9001`.

use axum::routing::get;
use axum::Router;

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
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
        let app = Router::new().fallback(get(|| async { "ok\n" }));
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("bare_axum: {e}");
        }
    });
}
