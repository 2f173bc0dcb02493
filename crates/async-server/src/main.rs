//! `async-server` — the ASGI-style twin. Run with `cargo run --release -p async-server`.

use std::process::ExitCode;

use clap::Parser;

// Memory for 10,000 requests in flight (docs/benchmarks.md): hyper gives every connection an
// 8 KiB read and an 8 KiB write buffer. glibc's malloc touches pages around each of them
// (163 MiB peak); jemalloc touches only what is written (128 MiB), and returning freed pages at
// once (decay 0) lets a finished connection's pages go before the next ones are written (85 MiB).
// jemalloc does not build with MSVC: Windows laptops use the system allocator (the same lesson,
// more memory per connection at 10,000 in flight).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads its options from this symbol at start-up (a C string).
#[cfg(not(target_env = "msvc"))]
#[allow(unsafe_code, non_upper_case_globals)] // exporting a symbol for the C library to read
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"dirty_decay_ms:0,muzzy_decay_ms:0\0";
use twin_core::{run, ServerArgs, ServerKind};

/// The ASGI-style twin: event loops that hold many waiting requests (like uvicorn + FastAPI).
///
/// Each event loop parks a request while it awaits and picks up the next. Fire 16 requests at
/// `/async-io` with 4 workers and all 16 finish together, after about T.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "\
Examples:
  async-server                            # 4 event loops on http://127.0.0.1:8001
  async-server --port 0 --workers 1       # any free port; one loop, to show /async-io-blocking
  async-server --threadpool 2             # a tiny thread pool: /io queues beyond 2 per loop
  curl -s 'http://127.0.0.1:8001/async-io?ms=500'
  scripts/burst.sh http://127.0.0.1:8001/async-io 16"
)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs<8001>,

    /// Blocking thread-pool slots per event loop, where /io runs (FastAPI's default is 40).
    #[arg(long, default_value_t = async_server::DEFAULT_THREADPOOL, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    threadpool: u32,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threadpool = cli.threadpool;
    run::main(
        &cli.server,
        ServerKind::EventLoop,
        |c| c.threadpool = Some(threadpool),
        async_server::start,
    )
}
