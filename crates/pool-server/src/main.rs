//! `pool-server` — the WSGI-style twin. Run with `cargo run --release -p pool-server`.

use std::process::ExitCode;

use clap::Parser;
use twin_core::{run, ServerArgs, ServerKind};

/// The WSGI-style twin: a fixed pool of blocking workers (like gunicorn + Flask sync workers).
///
/// Each worker serves one request from pick-up to response. Fire 16 requests at `/io` with 4
/// workers and they finish in 4 waves of 4.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "\
Examples:
  pool-server                             # 4 workers on http://127.0.0.1:8000
  pool-server --port 0 --workers 2        # any free port; the banner prints it
  pool-server --task-ms 200 --log-ms      # shorter waits, millisecond log stamps
  curl -s 'http://127.0.0.1:8000/io?ms=500'
  scripts/burst.sh http://127.0.0.1:8000/io 16"
)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs<8000>,

    /// Answer 503 at once when this many requests already wait for a worker (off by default:
    /// like gunicorn, the queue is only bounded by the listen backlog).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_queue: Option<u32>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let max_queue = cli.max_queue.map(|n| n as usize);
    run::main(
        &cli.server,
        ServerKind::Pool,
        |c| c.max_queue = max_queue,
        pool_server::start,
    )
}
