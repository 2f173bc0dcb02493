//! # async-server — the ASGI-style twin
//!
//! `--workers` event loops, like uvicorn's worker processes running FastAPI: each loop is one
//! thread running its own single-threaded tokio runtime. A loop parks a request that awaits and
//! picks up the next one, so a burst of IO-bound requests is served all at once. Because each
//! loop is its own thread, one blocked loop (`/async-io-blocking`, `/cpu`) stalls only the
//! requests it holds — exactly as one stuck uvicorn worker would.
//!
//! Each loop also has its own blocking thread pool of `--threadpool` slots (40, as FastAPI's
//! default thread limiter), where `/io` — a plain blocking route — runs.
//!
//! - [`start`] takes a listener (tests pass `127.0.0.1:0`) and returns a [`Running`] server.
//! - `acceptor.rs` decides which loop gets each new connection (and why not "whoever is first").
//! - `handler.rs` is what an event loop does with one request: read it to see every route;
//!   `pick_up.rs` is what every request passes through before and after its route.

mod acceptor;
mod handler;
mod hyper_errors;
mod peer;
mod pick_up;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{mpsc, Arc};
use std::task::{ready, Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use hyper_util::service::TowerToHyperService;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use tokio::task::JoinSet;
use twin_core::events::{self, Events};
use twin_core::platform::stop_accepting;
use twin_core::run::Twin;
use twin_core::shutdown::{InFlight, DRAIN_GRACE};
use twin_core::{head, limits, Config, ServerKind};

use crate::acceptor::{Loops, Open};
use crate::peer::Peer;
use crate::pick_up::LoopState;

pub use twin_core::config::DEFAULT_THREADPOOL;

/// An event-loop server with its loops running.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    config: Config,
    listener: TcpListener,
    stop: watch::Sender<bool>,
    done: mpsc::Receiver<()>,
    in_flight: InFlight,
    events: Events,
}

/// Start `config.workers` event loops serving `listener`. Sets `config.url` from the bound address.
pub fn start(listener: TcpListener, mut config: Config) -> io::Result<Running> {
    let addr = listener.local_addr()?;
    config.url = format!("http://{addr}");
    let slots = config.threadpool.unwrap_or(DEFAULT_THREADPOOL).max(1);
    let shared_config = Arc::new(config.clone());
    let in_flight = InFlight::default();
    let loops = Loops::new(usize::from(config.workers));
    let heartbeats = loops.clone();
    let events = Events::new(&config, Some(Box::new(move || heartbeats.frozen())));
    let ids = twin_core::request_id::Ids::new(config.pid);
    let (stop, stop_rx) = watch::channel(false);
    let (done_tx, done) = mpsc::channel();
    let mut to_loops = Vec::new();
    for k in 0..usize::from(config.workers) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(usize::try_from(slots).unwrap_or(usize::MAX))
            .thread_name(format!("worker{k}-pool"))
            .build()?;
        let state = LoopState {
            config: shared_config.clone(),
            worker: k,
            in_flight: in_flight.clone(),
            draining: stop_rx.clone(),
            events: events.clone(),
            ids: ids.clone(),
        };
        let (to_loop, incoming) = tokio::sync::mpsc::unbounded_channel();
        to_loops.push(to_loop);
        let loops = loops.clone();
        let stop_rx = stop_rx.clone();
        let done_tx = done_tx.clone();
        thread::Builder::new()
            .name(format!("worker{k}"))
            .spawn(move || {
                runtime.block_on(event_loop(incoming, state, loops, stop_rx));
                // Anything still on the blocking pool was cut off by the drain timeout.
                runtime.shutdown_background();
                let _ = done_tx.send(());
            })?;
    }
    let socket = listener.try_clone()?;
    let watched = events.clone();
    thread::Builder::new()
        .name("acceptor".into())
        .spawn(move || acceptor::run(socket, loops, to_loops, stop_rx, watched))?;
    Ok(Running {
        addr,
        config,
        listener,
        stop,
        done,
        in_flight,
        events,
    })
}

/// One event loop: serve the connections the acceptor hands it, each as a task, until told to
/// stop; then answer what is still waiting and wait for the requests it holds.
async fn event_loop(
    mut incoming: UnboundedReceiver<(std::net::TcpStream, Open)>,
    state: LoopState,
    loops: Loops,
    mut stop: watch::Receiver<bool>,
) {
    let k = state.worker;
    // The heartbeat stops whenever something blocks this loop; the acceptor then passes it by.
    // While the loop holds no connections it sleeps (an idle server uses no CPU).
    let heartbeat = tokio::spawn(async move { loops.heartbeat(k).await });
    let shared = Arc::new(LoopConnections::new(state));
    let mut connections = JoinSet::new();
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.changed() => break,
            next = incoming.recv() => next,
        };
        let Some((stream, open)) = next else { break };
        connections.spawn(serve_connection(stream, open, shared.clone(), stop.clone()));
        // Forget connections that have ended.
        while connections.try_join_next().is_some() {}
    }
    heartbeat.abort();
    // Connections the acceptor handed over that this loop had not taken yet (it was frozen,
    // say) are served like the others: a request already sent gets its 503.
    incoming.close();
    while let Ok((stream, open)) = incoming.try_recv() {
        connections.spawn(serve_connection(stream, open, shared.clone(), stop.clone()));
    }
    while connections.join_next().await.is_some() {}
}

/// What every connection of one event loop shares: one copy per loop, so that a connection
/// carries a pointer to it rather than copies of its own (10,000 of them are held at once).
#[derive(Debug)]
struct LoopConnections {
    state: LoopState,
    router: axum::Router,
    http: hyper::server::conn::http1::Builder,
}

impl LoopConnections {
    fn new(state: LoopState) -> LoopConnections {
        let router = handler::router(state.clone());
        // HTTP/1 only: the twins speak what gunicorn and uvicorn speak, and it keeps connections
        // small.
        let mut http = hyper::server::conn::http1::Builder::new();
        // A head over the shared limits gets hyper's 431 before any handler runs (hyper_errors.rs
        // gives it the twins' JSON body).
        http.max_buf_size(limits::MAX_HEAD_BYTES)
            .max_headers(limits::MAX_HEADERS)
            // A client that shuts only its sending side once its request is sent still gets its
            // answer (RFC 9112 §9.6), as on the pool.
            .half_close(true);
        LoopConnections {
            state,
            router,
            http,
        }
    }
}

/// One connection on this event loop, for as long as the client keeps it: one loop holds many of
/// these at once, each a task that is parked whenever its request waits.
async fn serve_connection(
    stream: std::net::TcpStream,
    open: Open,
    shared: Arc<LoopConnections>,
    mut stop: watch::Receiver<bool>,
) {
    let opened = Instant::now();
    let st = &shared.state;
    let stream = match tokio::net::TcpStream::from_std(stream) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("worker{}: cannot take a connection: {e}", st.worker);
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    // hyper allocates two 8 KiB buffers per connection; a connection that has sent nothing
    // yet (a burst's, waiting for its release) needs neither until it is readable.
    let drain_began = tokio::select! {
        biased;
        readable = stream.readable() => match readable {
            Ok(()) => false,
            Err(_) => return,
        },
        _ = stop.wait_for(|stopping| *stopping) => true,
        // Nothing sent within the header timeout: let go, as the pool does.
        () = tokio::time::sleep(st.config.header_timeout()) => return,
    };
    if drain_began {
        match tokio::time::timeout(DRAIN_GRACE, stream.readable()).await {
            Ok(Ok(())) => {}
            // Nothing sent: closed, as every server closes idle connections on a drain.
            _ => return,
        }
    }
    // `GET /events` leaves the loop before hyper reads it: its watcher is served on a thread
    // of its own, so a frozen loop cannot freeze the stream that reports it.
    if !drain_began && opens_events(&stream).await {
        match stream.into_std() {
            Ok(stream) => st.events.watch_connection(&st.config, stream),
            Err(e) => tracing::debug!("cannot hand an events watcher over: {e}"),
        }
        return;
    }
    let draining = drain_began || *stop.borrow();
    // An HTTP/2 client's preface: hyper (HTTP/1 only) would hang up without a word; the
    // pool answers it as the malformed head it is, and so does this loop.
    if is_h2_preface(&stream).await {
        let refusal = head::refusal_bytes(&head::malformed(), ServerKind::EventLoop);
        let _ = write_and_close(stream, &refusal).await;
        return;
    }
    // Each request carries its connection's socket, so the pick-up can see a client that
    // has gone (peer.rs), and the socket keeps the clock of the timeouts.
    let peer = Peer::new(stream, opened);
    if let Err(e) = serve_http(peer, &shared, &mut stop, draining).await {
        tracing::debug!("connection ended: {e}");
    }
    drop(open);
}

/// hyper serves the connection's requests until the client closes it, a timeout lets it go, or
/// the drain's grace ends.
async fn serve_http(
    peer: Peer,
    shared: &LoopConnections,
    stop: &mut watch::Receiver<bool>,
    draining: bool,
) -> hyper::Result<()> {
    let config = &shared.state.config;
    let (header_timeout, keep_alive) = (config.header_timeout(), config.keep_alive());
    let idle = peer.clone();
    let app = WithPeer::new(shared.router.clone(), peer.clone(), shared.state.clone());
    let io = hyper_errors::JsonRefusals::new(peer);
    let mut conn = std::pin::pin!(shared
        .http
        .serve_connection(io, TowerToHyperService::new(app)));
    // On a drain, a connection between requests may still bring one within the grace (it gets
    // the 503, as on the pool); then hyper closes it once it has answered what it holds.
    let grace_over = async {
        if !draining {
            // No timer before the drain begins (10,000 connections).
            let _ = stop.wait_for(|stopping| *stopping).await;
        }
        tokio::time::sleep(DRAIN_GRACE).await;
    };
    // Bytes the loop has not read yet are read first: a loop frozen past a deadline still
    // serves the request that arrived meanwhile.
    tokio::select! {
        biased;
        ended = conn.as_mut() => return ended,
        () = idle.until_idle(header_timeout, keep_alive) => return Ok(()),
        () = grace_over => conn.as_mut().graceful_shutdown(),
    }
    tokio::select! {
        biased;
        ended = conn.as_mut() => ended,
        () = idle.until_idle(header_timeout, keep_alive) => Ok(()),
    }
}

/// Does this connection begin with HTTP/2's preface (`PRI * HTTP/2.0`)? Looks without reading.
async fn is_h2_preface(stream: &tokio::net::TcpStream) -> bool {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";
    let mut head = [0u8; 16];
    matches!(stream.peek(&mut head).await, Ok(n) if n == PREFACE.len() && head[..n] == *PREFACE)
}

/// Write `bytes` on a connection no HTTP layer holds, then close it.
async fn write_and_close(mut stream: tokio::net::TcpStream, bytes: &[u8]) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    stream.write_all(bytes).await?;
    stream.shutdown().await
}

/// Does this connection's first request begin `GET /events`? Looks without reading; gives up
/// (and lets hyper have it) if the first bytes are slow to come.
async fn opens_events(stream: &tokio::net::TcpStream) -> bool {
    let mut head = [0u8; 16];
    for _ in 0..100 {
        match stream.peek(&mut head).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => match events::is_events_request(&head[..n]) {
                Some(yes) => return yes,
                // Part of a request line that could still be `/events`: wait for the rest.
                None => tokio::time::sleep(Duration::from_millis(1)).await,
            },
        }
    }
    false
}

impl Twin for Running {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn config(&self) -> &Config {
        &self.config
    }

    fn in_flight_counter(&self) -> &InFlight {
        &self.in_flight
    }

    fn workers_done(&self) -> &mpsc::Receiver<()> {
        &self.done
    }

    fn events(&self) -> &Events {
        &self.events
    }

    fn begin_shutdown(&self) {
        let _ = self.stop.send(true);
        if let Err(e) = stop_accepting(&self.listener) {
            tracing::warn!("could not close the listening socket: {e}");
        }
    }
}

/// The app, for one connection: each request is first held to the twins' own reading of a head
/// ([`pick_up::refusal`]) and checked for a client that has gone ([`pick_up::skip`]); then it is
/// picked up ([`pick_up::pick_up`]: the access-log line, the limits, the drain) and routed. It
/// counts as being served until its answer is ready (the timeouts' clock, peer.rs).
#[derive(Debug, Clone)]
pub(crate) struct WithPeer {
    router: axum::Router,
    peer: Peer,
    state: LoopState,
}

impl WithPeer {
    pub(crate) fn new(router: axum::Router, peer: Peer, state: LoopState) -> WithPeer {
        WithPeer {
            router,
            peer,
            state,
        }
    }
}

/// A request being picked up and routed; boxed, as axum boxes each handler's future.
type Routed = std::pin::Pin<Box<dyn std::future::Future<Output = axum::response::Response> + Send>>;

impl<B> tower_service::Service<hyper::Request<B>> for WithPeer
where
    B: http_body::Body<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = peer::Serving<Answer<Routed>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: hyper::Request<B>) -> Self::Future {
        let request = request.map(axum::body::Body::new);
        let answer = match pick_up::refusal(&request) {
            Some(refused) => Answer::Now {
                response: Some(refused),
            },
            // Its client has gone: said in the log, answered to nobody.
            None if pick_up::skip(&self.state, &self.peer, &request) => Answer::Now {
                response: Some(pick_up::gone_response()),
            },
            None => {
                let (state, routes) = (self.state.clone(), self.router.clone());
                let future: Routed = Box::pin(pick_up::pick_up(state, request, routes));
                Answer::Routed { future }
            }
        };
        self.peer.serving(answer, || Ok(pick_up::gone_response()))
    }
}

pin_project_lite::pin_project! {
    /// A request's answer: at once (a refused head), or from the route table.
    #[project = AnswerProj]
    pub(crate) enum Answer<F> {
        Now { response: Option<axum::response::Response> },
        Routed { #[pin] future: F },
    }
}

impl<F> std::future::Future for Answer<F>
where
    F: std::future::Future<Output = axum::response::Response>,
{
    type Output = Result<axum::response::Response, std::convert::Infallible>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AnswerProj::Now { response } => match response.take() {
                Some(r) => Poll::Ready(Ok(r)),
                None => Poll::Pending,
            },
            AnswerProj::Routed { future } => {
                let mut r = ready!(future.poll(cx));
                // axum gives a `HEAD` answer the length its `GET` would have, even a 204
                // (RFC 9110 §8.6: MUST NOT); the pool sends none.
                if matches!(r.status().as_u16(), 204 | 304) {
                    r.headers_mut().remove(axum::http::header::CONTENT_LENGTH);
                }
                // axum adds `Allow` to whatever its method-not-allowed fallback answers; the
                // twins say it on the 405 alone.
                if r.status() != axum::http::StatusCode::METHOD_NOT_ALLOWED {
                    r.headers_mut().remove(axum::http::header::ALLOW);
                }
                Poll::Ready(Ok(r))
            }
        }
    }
}
