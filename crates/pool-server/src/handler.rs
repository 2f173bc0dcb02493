//! What a pool worker does with one request — every route, on one thread.
//!
//! The worker is tied up for the whole of [`run`]: a blocking wait, a fresh event loop awaiting an
//! async wait (Flask's `async def` view), or CPU work all look the same from outside. Only
//! `/async-io-multi` frees the worker sooner, because its K waits overlap *inside* the request.
//! What happens around it — the pick-up, the log line, the answer — is `pick_up.rs`.

use std::io;
use std::time::Duration;

use twin_core::{work, Config, Job, Route};

/// The route's work, on this worker's thread. The worker can do nothing else until it returns.
/// Returns the CPU time of `/cpu`'s work.
pub(crate) fn run(job: &Job, config: &Config) -> io::Result<Option<Duration>> {
    match job.route {
        Route::Io => work::block_for(job.wait),
        // Flask runs an async view in a new event loop and waits for it: the await frees no one.
        Route::AsyncIo => work::run_in_fresh_loop(work::wait_for(job.wait))?,
        // The K waits overlap inside this request, so the worker is busy only ~T/K.
        Route::AsyncIoMulti => {
            work::run_in_fresh_loop(work::wait_concurrently(job.slice(), job.tasks))?
        }
        // Blocking inside the async task: on a pool worker this is just /io again.
        Route::AsyncIoBlocking => work::run_in_fresh_loop(async { work::block_for(job.wait) })?,
        Route::Cpu => return Ok(work::burn_cpu(job.wait, config.cpu_units_per_ms)),
        Route::Index | Route::Healthz => {}
    }
    Ok(None)
}
