//! What an event loop does with one request — every route, as an axum handler.
//!
//! An `.await` parks the request and hands the loop to the next one; that is the whole trick. The
//! pitfall routes show where it stops working: a blocking call or CPU work inside an async handler
//! holds the loop, and every other request on that loop waits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::extract::State;
use axum::http::{Response, StatusCode};
use axum::Router;
use twin_core::request::wants_html;
use twin_core::shutdown::InFlight;
use twin_core::{
    access_log, dispatch, limits, work, Config, Dispatch, Job, Reply, Route, WorkReport,
};

/// What one event loop's handlers share.
#[derive(Debug, Clone)]
pub(crate) struct LoopState {
    pub(crate) config: Arc<Config>,
    pub(crate) worker: usize,
    pub(crate) in_flight: InFlight,
    /// True once the server drains: a request picked up from then on gets a 503.
    pub(crate) draining: tokio::sync::watch::Receiver<bool>,
}

/// One router per event loop: every path goes to [`handle`], which asks twin-core's route
/// catalogue, so both twins answer alike.
pub(crate) fn router(state: LoopState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

async fn handle(State(st): State<LoopState>, request: Request) -> Response<Body> {
    let _in_flight = st.in_flight.enter();
    let config = &*st.config;
    if let Some(limit) = config.limit_concurrency {
        // Counted before this request's own place: over the limit, turn it away untouched.
        if st.in_flight.count() > limit {
            return to_response(Reply::overloaded("--limit-concurrency", limit));
        }
    }
    let method = request.method().clone();
    let target = request.uri().to_string();
    if *st.draining.borrow() {
        // Waiting when the drain began, never picked up: a clear 503, as on the pool twin.
        return to_response(Reply::shutting_down().with_worker(st.worker));
    }
    let pickup = access_log::pick_up(config, st.worker, method.as_str(), &target);
    let over = over_limits(&request, &target);
    let html = wants_html(
        request
            .headers()
            .get("accept")
            .and_then(|v| v.to_str().ok()),
    );
    // A waiting request keeps only what it needs, not the whole request.
    drop(request);
    let dispatched = match over {
        Some(reply) => Dispatch::Reply(reply),
        None => dispatch(method.as_str(), &target, html, config),
    };
    let reply = match dispatched {
        Dispatch::Reply(reply) => reply,
        Dispatch::Work(job) => {
            let spent = run(&job, config).await;
            let report = WorkReport {
                worker: st.worker,
                started: pickup.at,
                elapsed: pickup.elapsed(),
                pool_wait: spent.pool_wait,
                cpu: spent.cpu,
            };
            Reply::work(config, &job, &report)
        }
    };
    pickup.finish(config, method.as_str(), &target, reply.status);
    to_response(reply.with_worker(st.worker))
}

/// hyper already refuses heads over MAX_HEAD_BYTES or MAX_HEADERS (see lib.rs); the target and
/// body limits are checked here, as on the pool twin.
fn over_limits(request: &Request, target: &str) -> Option<Reply> {
    let headers = request.headers();
    let head_bytes = request.method().as_str().len()
        + target.len()
        + headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    let body_bytes = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    limits::check(target.len(), headers.len(), head_bytes, body_bytes)
}

/// What a route's work spent besides its own time: a wait for a thread-pool slot (`/io`), CPU
/// time (`/cpu`).
#[derive(Debug, Default)]
struct Spent {
    pool_wait: Option<Duration>,
    cpu: Option<Duration>,
}

/// The route's work on this event loop.
async fn run(job: &Job, config: &Config) -> Spent {
    match job.route {
        // A FastAPI `def` route: the blocking wait goes to the loop's bounded thread pool
        // (--threadpool slots); the loop itself stays free. Beyond the slots, requests queue.
        Route::Io => {
            let queued = Instant::now();
            let wait = job.wait;
            let slot = tokio::task::spawn_blocking(move || {
                let waited = queued.elapsed();
                work::block_for(wait);
                waited
            });
            Spent {
                pool_wait: slot.await.ok(),
                cpu: None,
            }
        }
        Route::AsyncIo => {
            work::wait_for(job.wait).await;
            Spent::default()
        }
        Route::AsyncIoMulti => {
            work::wait_concurrently(job.slice(), job.tasks).await;
            Spent::default()
        }
        // The classic mistake, on purpose: a blocking call inside an async handler freezes this
        // event loop — and every request on it — for T.
        Route::AsyncIoBlocking => {
            work::block_for(job.wait);
            Spent::default()
        }
        // CPU work holds the loop just the same: async does not help CPU-bound work.
        Route::Cpu => Spent {
            pool_wait: None,
            cpu: work::burn_cpu(job.wait, config.cpu_units_per_ms),
        },
        Route::Index | Route::Healthz => Spent::default(),
    }
}

pub(crate) fn to_response(reply: Reply) -> Response<Body> {
    let mut builder = Response::builder()
        .status(reply.status)
        .header("Content-Type", reply.content_type);
    for (name, value) in &reply.headers {
        builder = builder.header(*name, value.as_str());
    }
    builder.body(Body::from(reply.body)).unwrap_or_else(|_| {
        let mut r = Response::new(Body::from("{\"error\":\"internal error\"}\n"));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}
