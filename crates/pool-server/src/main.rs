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
  pool-server --workers 2 --threads 4     # gunicorn gthread: 8 requests at once
  pool-server --limit-concurrency 8       # a 9th request in the server gets a 503 at once
  curl -s 'http://127.0.0.1:8000/io?ms=500'
  scripts/burst.sh http://127.0.0.1:8000/io 16"
)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs<8000>,

    /// Threads per worker, as gunicorn's gthread worker (`--threads`): the pool serves
    /// workers × threads requests at once — a higher ceiling, still a pool.
    #[arg(long, default_value_t = 1, value_name = "K",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    threads: u32,

    /// Answer 503 at once when this many requests already wait for a worker (off by default:
    /// like gunicorn, the queue is only bounded by the listen backlog).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_queue: Option<u32>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (threads, max_queue) = (cli.threads, cli.max_queue.map(|n| n as usize));
    run::main(
        &cli.server,
        ServerKind::Pool,
        |c| {
            c.threads = Some(threads);
            c.max_queue = max_queue;
        },
        pool_server::start,
    )
}
