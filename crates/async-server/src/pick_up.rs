//! The pick-up: what every request passes through on an event loop before and after its route's
//! handler — the plumbing, so that `handler.rs` can be the lesson.
//!
//! - [`pick_up`] (lib.rs's `WithPeer` runs it before the route table): the access-log line at
//!   the moment the loop starts on a request, as a pool worker writes it when it takes one from
//!   the queue; the drain's 503; the limits; `X-Worker` and `X-Request-Id` on every answer;
//!   `picked-up` and `finished` for `/events`.
//! - [`Job`] (an extractor, FastAPI's `job: Job`): a work route's parameters with its pick-up;
//!   `job.done()` writes the answer, `job.on_thread_pool(..)` runs a blocking call on the loop's
//!   bounded thread pool with the `queued` and `slot` events the stage draws.
//! - [`refusal`] and [`skip`]: a head the twins refuse, and a request whose client has gone, as
//!   hyper hands the request over.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, Response, StatusCode};
use twin_core::events::{Event, Events, Kind};
use twin_core::request::{parse_params, split_target};
use twin_core::shutdown::InFlight;
use twin_core::{access_log, limits, reply, Config, Reply, Route, WorkReport};

use crate::peer::Peer;

/// What one event loop's handlers share.
#[derive(Debug, Clone)]
pub(crate) struct LoopState {
    pub(crate) config: Arc<Config>,
    pub(crate) worker: usize,
    pub(crate) in_flight: InFlight,
    /// True once the server drains: a request picked up from then on gets a 503.
    pub(crate) draining: tokio::sync::watch::Receiver<bool>,
    /// `GET /events`: each request's picked-up and finished (and `/io`'s wait for a slot).
    pub(crate) events: Events,
    /// Ids for requests that came without one, shared by all loops.
    pub(crate) ids: twin_core::request_id::Ids,
}

/// A work route's request as its handler takes it — FastAPI's `job: Job`: the route's parameters
/// (`job.wait`, `job.slice()`, `job.tasks`), and what the answer needs from the pick-up.
/// It holds only what the answer needs: a handler keeps it for as long as its request waits.
pub(crate) struct Job {
    job: twin_core::Job,
    at: Picked,
    worker: usize,
    config: Arc<Config>,
    events: Events,
}

impl std::ops::Deref for Job {
    type Target = twin_core::Job;

    fn deref(&self) -> &twin_core::Job {
        &self.job
    }
}

impl FromRequestParts<LoopState> for Job {
    type Rejection = Response<Body>;

    async fn from_request_parts(parts: &mut Parts, st: &LoopState) -> Result<Job, Self::Rejection> {
        let at = Picked::from_request_parts(parts, st).await?;
        let Params(job) = Params::from_request_parts(parts, st).await?;
        Ok(Job {
            job,
            at,
            worker: st.worker,
            config: st.config.clone(),
            events: st.events.clone(),
        })
    }
}

impl Job {
    /// The answer to a finished work route: its account of the work, in body and headers.
    pub(crate) fn done(self) -> Response<Body> {
        self.answer(None, None)
    }

    /// [`Job::done`], with the CPU time the work took.
    pub(crate) fn done_with_cpu(self, cpu: Option<Duration>) -> Response<Body> {
        self.answer(None, cpu)
    }

    /// How much CPU work `/cpu` does per millisecond of T (measured at start).
    pub(crate) fn cpu_units_per_ms(&self) -> u64 {
        self.config.cpu_units_per_ms
    }

    /// Run `block(T)` on this loop's thread pool (`--threadpool` slots, as FastAPI runs a plain
    /// `def` route) and answer when it is done: the loop stays free meanwhile; beyond the slots,
    /// requests queue for one. The watchers see it `queued`, then take its `slot`.
    pub(crate) async fn on_thread_pool(self, block: fn(Duration)) -> Response<Body> {
        let queued = Instant::now();
        let (wait, worker, route) = (self.job.wait, Some(self.worker), self.job.route.path());
        let (events, id) = (self.events.clone(), self.at.id.clone());
        events.step(Kind::Queued, &id, route, worker);
        let slot = OnThreadPool(tokio::task::spawn_blocking(move || {
            let waited = queued.elapsed();
            events.step(Kind::Slot, &id, route, worker);
            block(wait);
            waited
        }));
        let pool_wait = slot.await.ok();
        self.answer(pool_wait, None)
    }

    fn answer(self, pool_wait: Option<Duration>, cpu: Option<Duration>) -> Response<Body> {
        let report = WorkReport {
            request_id: &self.at.id,
            worker: self.worker,
            started: self.at.pickup.at,
            elapsed: self.at.pickup.elapsed(),
            pool_wait,
            cpu,
        };
        to_response(Reply::work(&self.config, &self.job, &report))
    }
}

/// A job on the loop's thread pool that is dropped with its request: hyper drops a handler whose
/// client has gone, and a job no slot has taken yet then never runs (one already running
/// finishes: a blocking call cannot be interrupted).
struct OnThreadPool<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for OnThreadPool<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for OnThreadPool<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

/// A request over `--limit-concurrency`: the JSON 503 that says the limit, at once.
fn shed(st: &LoopState, request: &Request, limit: usize) -> Response<Body> {
    let flag = "--limit-concurrency";
    let target = request.uri().to_string();
    access_log::shed(&st.config, request.method().as_str(), &target, flag, limit);
    let header = request
        .headers()
        .get("x-request-id")
        .map(HeaderValue::as_bytes);
    let (id, _) = st.ids.of(header);
    if access_log::logged(&st.config, request.uri().path()) {
        st.events.shed(&id, &target);
    }
    let mut reply = Reply::overloaded(flag, limit);
    reply.headers.push(("X-Request-Id", id.to_string()));
    to_response(reply)
}

/// The pick-up: the moment this loop starts on a request, as a pool worker does when it takes
/// one from the queue — the access-log line, the shared limits, and the drain's 503. Every
/// answer names the loop (`X-Worker`); with `--log-finish`, a second line once it is sent.
#[allow(clippy::manual_async_fn)] // on purpose: see the comment inside
pub(crate) fn pick_up(
    st: LoopState,
    mut request: Request,
    mut routes: axum::Router,
) -> impl std::future::Future<Output = Response<Body>> + Send {
    // An `async` block rather than an `async fn`: an async fn keeps a second copy of its
    // arguments for as long as it waits (rust-lang/rust#62958), and the request is a quarter of
    // a KiB — for every request in flight.
    async move {
        let config = &*st.config;
        if request.uri().path() == twin_core::events::PATH && request.method() == Method::HEAD {
            // The stream's head, at once and from no worker, as the pool answers it.
            return to_response(Reply::events_head());
        }
        let _in_flight = st.in_flight.enter();
        if let Some(limit) = config.limit_concurrency {
            // Counted with its own place: the (limit + 1)-th request in the server is shed,
            // untouched — one log line from no worker, `finished` 503 for the watchers, as on
            // the pool.
            if st.in_flight.count() > limit {
                return shed(&st, &request, limit);
            }
        }
        if *st.draining.borrow() {
            // Waiting when the drain began, never picked up: a clear 503, as on the pool twin.
            return to_response(Reply::shutting_down());
        }
        let method = request.method().clone();
        let target = request.uri().to_string();
        let picked = access_log::pick_up(config, st.worker, method.as_str(), &target);
        let header = request
            .headers()
            .get("x-request-id")
            .map(HeaderValue::as_bytes);
        let (id, bad_id) = st.ids.of(header);
        let worker = Some(st.worker);
        if picked.logged() {
            let at = picked.at;
            st.events
                .publish(|| Event::new(Kind::PickedUp, &id, &target, worker, at));
        }
        // hyper drops this future if the client goes away mid-request: its watchers still see
        // it end.
        let mut ended = Ended {
            state: &st,
            method: &method,
            id: &id,
            target: &target,
            picked,
            done: !picked.logged(),
        };
        let mut response = match over_limits(&request, &target).or(bad_id) {
            Some(reply) => to_response(reply),
            None => {
                request.extensions_mut().insert(Picked {
                    pickup: picked,
                    id: id.clone(),
                });
                match tower_service::Service::call(&mut routes, request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            }
        };
        if let Ok(worker) = HeaderValue::from_str(&reply::worker_name(st.worker)) {
            response.headers_mut().append("x-worker", worker);
        }
        if let Ok(id) = HeaderValue::from_str(&id) {
            response.headers_mut().append("x-request-id", id);
        }
        if picked.logged() {
            let status = response.status().as_u16();
            st.events
                .finished(&id, &target, worker, status, picked.elapsed());
        }
        ended.done = true;
        drop(ended);
        if !config.log_finish {
            return response;
        }
        // The finish line is written once the body has been handed to the connection, as on
        // the pool.
        let finish = Finish {
            picked,
            config: st.config.clone(),
            method,
            target,
            status: response.status().as_u16(),
        };
        response.map(|body| Body::new(LogWhenSent::new(body, finish)))
    }
}

/// The twins' own checks of a head that hyper does not make (twin-core's `head::check`: one
/// Host in HTTP/1.1, a target and header values of visible ASCII): the refusal, if it breaks one.
/// Answered before the route table sees the request (which would add its own headers, `Allow`),
/// as the pool's tiny_http answers it while it reads the head.
pub(crate) fn refusal(request: &Request) -> Option<Response<Body>> {
    let http11 = request.version() == axum::http::Version::HTTP_11;
    let fields = request
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()));
    twin_core::head::check(request.uri(), http11, fields)
        .err()
        .map(to_response)
}

/// Called as hyper hands this loop a request: true if its client has reset the connection
/// meanwhile (it gave up while it waited behind a frozen loop). The loop then skips it — a `499`
/// line in the log and `finished` 499 for the watchers, as the pool twin does at its pick-up —
/// and answers it at once (to nobody). Here, before [`pick_up`] is asked for a future: hyper
/// reads on after the request, meets the reset and drops the request before that future runs.
pub(crate) fn skip(st: &LoopState, peer: &Peer, request: &Request) -> bool {
    if !peer.gone() {
        return false;
    }
    let config = &*st.config;
    let target = request.uri().to_string();
    access_log::skipped(config, st.worker, request.method().as_str(), &target);
    if access_log::logged(config, split_target(&target).0) {
        let header = request.headers().get("x-request-id");
        let (id, _) = st.ids.of(header.map(|h| h.as_bytes()));
        let worker = Some(st.worker);
        st.events
            .finished(&id, &target, worker, 499, Duration::ZERO);
    }
    true
}

/// A picked-up request that ends without an answer (its client went away, hyper dropped it):
/// `finished` with 499 for the watchers, as on the pool twin.
struct Ended<'a> {
    state: &'a LoopState,
    method: &'a Method,
    id: &'a Arc<str>,
    target: &'a str,
    picked: access_log::PickUp,
    done: bool,
}

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        if !self.done {
            let st = self.state;
            access_log::dropped(&st.config, st.worker, self.method.as_str(), self.target);
            let elapsed = self.picked.elapsed();
            st.events
                .finished(self.id, self.target, Some(st.worker), 499, elapsed);
        }
    }
}

/// When this request was picked up, and its id, for its handler.
#[derive(Debug, Clone)]
struct Picked {
    pickup: access_log::PickUp,
    id: Arc<str>,
}

impl<S: Send + Sync> FromRequestParts<S> for Picked {
    type Rejection = Response<Body>;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Picked, Self::Rejection> {
        parts
            .extensions
            .get::<Picked>()
            .cloned()
            .ok_or_else(|| to_response(Reply::error(500, "internal error", "not picked up")))
    }
}

/// A route's parameters, read the axum way: a bad one is answered with the shared 400.
pub(crate) struct Params(twin_core::Job);

impl FromRequestParts<LoopState> for Params {
    type Rejection = Response<Body>;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &LoopState,
    ) -> Result<Params, Self::Rejection> {
        let path = parts
            .extensions
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let Some(route) = path.and_then(Route::from_path) else {
            return Err(to_response(Reply::not_found(parts.uri.path())));
        };
        parse_params(route, parts.uri.query().unwrap_or(""), &st.config)
            .map(Params)
            .map_err(|e| to_response(Reply::bad_request(route, &e)))
    }
}

/// What the `--log-finish` line needs.
#[derive(Debug)]
struct Finish {
    picked: access_log::PickUp,
    config: Arc<Config>,
    method: Method,
    target: String,
    status: u16,
}

pin_project_lite::pin_project! {
    /// A response body that writes the `--log-finish` line when the connection has taken the
    /// last of it (or dropped it).
    struct LogWhenSent {
        #[pin]
        body: Body,
        finish: Option<Finish>,
    }

    impl PinnedDrop for LogWhenSent {
        fn drop(this: Pin<&mut Self>) {
            if let Some(f) = this.project().finish.take() {
                f.picked.finish(&f.config, f.method.as_str(), &f.target, f.status);
            }
        }
    }
}

impl LogWhenSent {
    fn new(body: Body, finish: Finish) -> LogWhenSent {
        LogWhenSent {
            body,
            finish: Some(finish),
        }
    }
}

impl http_body::Body for LogWhenSent {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// hyper already refuses heads over MAX_HEAD_BYTES or MAX_HEADERS (see lib.rs); the target and
/// body limits are checked here, as on the pool twin.
fn over_limits(request: &Request, target: &str) -> Option<Reply> {
    let body_bytes = request
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    limits::check(target.len(), body_bytes)
}

/// The answer to a request whose client has gone, written to nobody (hyper then finds the
/// connection reset).
pub(crate) fn gone_response() -> Response<Body> {
    to_response(Reply::client_gone())
}

/// `reply` as an axum response, with the headers every answer has (twin-core's
/// `head::every_answer`) and its `Content-Length` — also on a `HEAD`, where hyper would send
/// none for an empty body, as the pool sends it.
pub(crate) fn to_response(reply: Reply) -> Response<Body> {
    let mut builder = Response::builder()
        .status(reply.status)
        .header(axum::http::header::CONTENT_LENGTH, reply.body.len());
    for (name, value) in twin_core::head::every_answer(&reply, twin_core::ServerKind::EventLoop) {
        builder = builder.header(name, value);
    }
    builder.body(Body::from(reply.body)).unwrap_or_else(|_| {
        let mut r = Response::new(Body::from("{\"error\":\"internal error\"}\n"));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}
