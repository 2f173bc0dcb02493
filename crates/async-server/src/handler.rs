//! What an event loop does with one request — the route table and every route, as axum handlers.
//!
//! An `.await` parks the request and hands the loop to the next one; that is the whole trick. The
//! pitfall routes show where it stops working: a blocking call or CPU work inside an async handler
//! holds the loop, and every other request on that loop waits.

use axum::body::Body;
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderMap, Method, Response, Uri};
use axum::routing::{any, get};
use axum::Router;
use twin_core::events;
use twin_core::request::{split_target, wants_html, FAVICON};
use twin_core::{work, Reply, Route};

use crate::pick_up::{to_response, Job, LoopState, Params};

/// One router per event loop: the route table, as FastAPI's `@app.get("/io")` — every path of
/// twin-core's catalogue, each with its handler below. Every request has passed the pick-up
/// before it reaches this table (`pick_up.rs`: the access-log line, the limits, the drain); a
/// wrong path or method gets the shared 404 or 405.
pub(crate) fn router(state: LoopState) -> Router {
    Router::new()
        .route(Route::Io.path(), get(io))
        .route(Route::AsyncIo.path(), get(async_io))
        .route(Route::AsyncIoMulti.path(), get(async_io_multi))
        .route(Route::AsyncIoBlocking.path(), get(async_io_blocking))
        .route(Route::Cpu.path(), get(cpu))
        .route(Route::Index.path(), get(index))
        .route(Route::Healthz.path(), get(healthz))
        .route(FAVICON, any(favicon))
        .route(events::PATH, any(events_again))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

// ---- the routes ------------------------------------------------------------------------------

/// A FastAPI `def` route: the blocking wait goes to the loop's bounded thread pool
/// (--threadpool slots); the loop itself stays free. Beyond the slots, requests queue.
async fn io(job: Job) -> Response<Body> {
    job.on_thread_pool(work::block_for).await
}

/// One async wait: the request is parked and the loop serves others meanwhile.
async fn async_io(job: Job) -> Response<Body> {
    work::wait_for(job.wait).await;
    job.done()
}

/// K concurrent async waits of T/K.
async fn async_io_multi(job: Job) -> Response<Body> {
    work::wait_concurrently(job.slice(), job.tasks).await;
    job.done()
}

/// The classic mistake, on purpose: a blocking call inside an async handler freezes this event
/// loop — and every request on it — for T.
async fn async_io_blocking(job: Job) -> Response<Body> {
    work::block_for(job.wait);
    job.done()
}

/// CPU work holds the loop just the same: async does not help CPU-bound work.
async fn cpu(job: Job) -> Response<Body> {
    let cpu = work::burn_cpu(job.wait, job.cpu_units_per_ms());
    job.done_with_cpu(cpu)
}

async fn index(st: State<LoopState>, _: Params, headers: HeaderMap) -> Response<Body> {
    let accept = headers.get("accept").and_then(|v| v.to_str().ok());
    to_response(if wants_html(accept) {
        Reply::index_html(&st.config)
    } else {
        Reply::index(&st.config)
    })
}

async fn healthz(_: Params) -> Response<Body> {
    to_response(Reply::health())
}

async fn favicon() -> Response<Body> {
    to_response(Reply::no_content())
}

/// `GET /events` on a connection that has already carried another request: the stream is served
/// only on a connection of its own (handed off before a loop reads it, lib.rs), so say where.
async fn events_again(method: Method) -> Response<Body> {
    if method == Method::HEAD {
        return to_response(Reply::events_head());
    }
    if method != Method::GET {
        // As on the pool, where `/events` is no route of the catalogue.
        return to_response(Reply::not_found(events::PATH));
    }
    let mut reply = Reply::error(
        307,
        "open /events on a connection of its own",
        "the stream is served off the event loops; this redirect opens a new connection",
    );
    reply.headers.push(("Location", events::PATH.to_owned()));
    reply.headers.push(("Connection", "close".to_owned()));
    to_response(reply)
}

async fn not_found(uri: Uri) -> Response<Body> {
    to_response(Reply::not_found(split_target(&uri.to_string()).0))
}

async fn method_not_allowed(method: Method, path: MatchedPath) -> Response<Body> {
    match Route::from_path(path.as_str()) {
        Some(route) => to_response(Reply::method_not_allowed(method.as_str(), route)),
        None => to_response(Reply::not_found(path.as_str())),
    }
}
