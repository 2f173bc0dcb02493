//! `burst` — fire N requests at once and show each one. Run with `cargo run --release -p burst`.
//!
//! As ripgrep's: `main` parses the flags and runs one command (`cmd/`), and prints the one line a
//! failure ends with.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

use cmd::compare::CompareArgs;
use cmd::one::OneArgs;
use cmd::stage::StageArgs;
use cmd::Fatal;

/// Fire N requests at once (or steady traffic, --rate), each on its own connection, and show
/// every request: when it was sent, waited and served, by which worker — and whether that
/// matches the queueing model.
#[derive(Debug, Parser)]
#[command(
    version,
    args_conflicts_with_subcommands = true,
    after_help = "\
Examples:
  burst http://127.0.0.1:8000/io                 # 16 at once at the pool twin: 4 waves
  burst http://127.0.0.1:8001/async-io -n 100    # 100 at once at the event-loop twin: 1 wave
  burst http://127.0.0.1:8000/io --csv > io.csv  # one row per request for a spreadsheet
  burst http://127.0.0.1:8000/io --svg io.svg    # a per-request timeline chart
  burst 'http://127.0.0.1:8000/io?ms=500' --rate 12 --duration 5   # steady traffic: the queue grows
  burst compare --pool http://127.0.0.1:8000 --async http://127.0.0.1:8001 -n 16,100 --svg cmp.svg
  burst stage                                    # the live page at http://127.0.0.1:8080

Exit status: 0 every request answered, as the model predicts (or no model to check);
1 some requests failed or timed out; 2 bad usage, bad URL or no server;
3 every request answered, but NOT as the model predicts (the lesson did not show);
130 stopped with Ctrl-C (after showing what came back)."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    one: OneArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The reference experiment: both twins × /io, /async-io, /async-io-multi × each N.
    Compare(CompareArgs),
    /// The live stage: a page (http://127.0.0.1:8080) that shows every worker's lane fill as
    /// it happens, both twins side by side, and fires bursts at them with one key.
    Stage(StageArgs),
}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Compare(args)) => cmd::compare::compare(&args),
        Some(Command::Stage(args)) => cmd::stage::stage(&args),
        None if cli.one.rate.is_some() => cmd::steady::steady(&cli.one),
        None => cmd::one::one(&cli.one),
    };
    match result {
        Ok(code) => code,
        Err(Fatal(line, code)) => {
            eprintln!("burst: {line}");
            ExitCode::from(code)
        }
    }
}

/// `burst … | head -3`: end quietly when the reader goes, as `cat` does, instead of panicking on
/// the next write. Rust starts programs with SIGPIPE ignored; the default ends the process.
#[cfg(unix)]
fn quiet_on_closed_pipe() {
    // SAFETY: called first thing in main, before any other thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn quiet_on_closed_pipe() {}
