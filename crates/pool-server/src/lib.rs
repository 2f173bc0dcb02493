//! # pool-server — the WSGI-style twin
//!
//! A fixed pool of `--workers` blocking worker threads (`worker0`, `worker1`, …), like gunicorn's
//! sync workers running Flask. Each worker takes one request from the queue and holds it until
//! the response is sent. A worker that waits — blocking, or awaiting inside a fresh event loop —
//! cannot pick up anything else, so a burst of N requests that each wait T finishes in waves:
//! request n (from 1) at ⌈n/workers⌉·T. `--threads K` gives each worker K threads, as gunicorn's
//! gthread worker does: `workers × K` worker threads, waves of that many — a higher ceiling,
//! still a pool.
//!
//! How a request reaches a worker: tiny_http accepts connections and reads requests on threads of
//! its own, and each reader puts its request into the pool's queue (`enqueue`) — one FIFO that
//! every worker takes from, like gunicorn's shared listen queue. Owning that queue is what lets
//! the server count what waits (`--max-queue`) and turn requests away politely on a drain.
//!
//! tiny_http is vendored with a few fixes (vendor/tiny_http/PATCH.md): it reads each head as
//! hyper does (so both twins answer the same bytes alike, twin-core's `head.rs`), reads one
//! request of a connection at a time (as a sync worker does), lets slow and idle clients go
//! (`--timeout-header`, `--timeout-keep-alive`), and backs off and goes on accepting when it runs
//! out of file descriptors.
//!
//! - [`start`] takes a listener (tests pass `127.0.0.1:0`) and returns a [`Running`] server that
//!   `Twin::shutdown` drains.
//! - `handler.rs` is what a worker does with one request: read it to see every route;
//!   `pick_up.rs` is what happens around it (the log line, the limits, the answer).

mod handler;
mod pick_up;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use twin_core::events::{self, Events, Kind};
use twin_core::platform::stop_accepting;
use twin_core::request_id::Ids;
use twin_core::run::Twin;
use twin_core::shutdown::{InFlight, InFlightGuard, DRAIN_GRACE};
use twin_core::{access_log, head, limits, Config, Reply, ServerKind};

/// Threads kept out of the budget for everything but workers and readers: the acceptor, the
/// access log, watchers, the drain.
const RESERVED_THREADS: usize = 64;

/// What the queue holds: a request, or a note to one worker that the drain has reached it.
// Each item is moved once, into the queue and out; boxing it would allocate once per request.
#[allow(clippy::large_enum_variant)]
enum Item {
    Request(tiny_http::Request, Ticket),
    Stop,
}

/// What `enqueue` learnt of a request while queueing it, for the worker that picks it up.
pub(crate) struct Ticket {
    /// Its target as the event loop's hyper reads it (`/io?ms=5#x` is `/io?ms=5`).
    pub(crate) target: String,
    /// Its `X-Request-Id` (or one made for it); a bad one's 400 is answered at pick-up.
    pub(crate) id: Arc<str>,
    pub(crate) bad_id: Option<Reply>,
    /// In the access log, and so in `/events`.
    pub(crate) logged: bool,
    /// Its place in the server, with `--limit-concurrency`: given back when it is answered.
    pub(crate) _place: Option<InFlightGuard>,
}

/// What the workers and the readers that queue requests share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) in_flight: InFlight,
    /// Requests in the server — queued or being served — for `--limit-concurrency`.
    in_server: InFlight,
    /// `GET /events`: each request's queued, picked-up and finished, for watchers.
    pub(crate) events: Events,
    /// Ids for requests that came without one.
    ids: Ids,
    queue: Sender<Item>,
    waiting: Receiver<Item>,
    /// Taken to enqueue and by the drain to close the queue, so that no request
    /// is queued behind the workers' `Stop`s.
    gate: Mutex<()>,
    draining: AtomicBool,
    /// A handle on the listening socket: to refuse connections on a drain.
    listener: TcpListener,
}

// tiny_http's types have no `Debug`.
impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("waiting", &self.waiting.len())
            .finish_non_exhaustive()
    }
}

/// A pool server with its workers running.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    config: Config,
    shared: Arc<Shared>,
    done: mpsc::Receiver<()>,
}

/// Start `config.workers × threads` worker threads serving `listener`. Sets `config.url` from the
/// bound address.
pub fn start(listener: TcpListener, mut config: Config) -> io::Result<Running> {
    let addr = listener.local_addr()?;
    // Threads are finite: past the system's budget a new thread aborts the process. The workers
    // must fit, and tiny_http's connection readers (one per open connection) get what is left;
    // a connection beyond them waits, accepted, for a reader to be free.
    let slots = config.pool_slots();
    let budget = twin_core::platform::thread_budget();
    if let Some(budget) = budget {
        // Each busy worker's request came on a connection that tiny_http reads on a thread of
        // its own: a worker thread needs a reader thread beside it.
        let most = budget.saturating_sub(RESERVED_THREADS) / 2;
        if slots > most {
            return Err(io::Error::other(format!(
                "--workers × --threads is {slots} worker threads; this machine allows about \
                 {budget} threads a process (vm.max_map_count ÷ 4), and each busy worker needs \
                 a thread reading its connection too: at most {most} worker threads"
            )));
        }
    }
    let max_readers = budget.map(|b| b.saturating_sub(slots + RESERVED_THREADS));
    config.url = format!("http://{addr}");
    let (queue, waiting) = crossbeam_channel::unbounded();
    let shared = Arc::new(Shared {
        config: config.clone(),
        in_flight: InFlight::default(),
        in_server: InFlight::default(),
        events: Events::new(&config, None),
        ids: Ids::new(config.pid),
        queue,
        waiting,
        gate: Mutex::new(()),
        draining: AtomicBool::new(false),
        listener: listener.try_clone()?,
    });
    let strict = tiny_http::Strict {
        max_head_bytes: limits::MAX_HEAD_BYTES,
        max_headers: limits::MAX_HEADERS,
        header_timeout: Some(config.header_timeout()),
        keep_alive: Some(config.keep_alive()),
        policy: Some(Arc::new(Policy)),
        // Each request goes into the workers' queue from the thread that read it.
        deliver: Some(Arc::new({
            let shared = shared.clone();
            move |rq| enqueue(&shared, rq)
        })),
        max_readers,
    };
    let server = tiny_http::Server::from_listener_strict(listener, None, strict)
        .map_err(io::Error::other)?;
    let acceptor = shared.clone();
    thread::Builder::new()
        .name("acceptor".into())
        .spawn(move || accept(&acceptor, server))?;
    let (done_tx, done) = mpsc::channel();
    for k in 0..config.pool_slots() {
        let shared = shared.clone();
        let done_tx = done_tx.clone();
        thread::Builder::new()
            .name(format!("worker{k}"))
            .spawn(move || {
                worker(&shared, k);
                let _ = done_tx.send(());
            })?;
    }
    Ok(Running {
        addr,
        config,
        shared,
        done,
    })
}

/// One worker: take the next request from the queue, serve it to the end, repeat.
fn worker(shared: &Shared, k: usize) {
    while let Ok(Item::Request(rq, ticket)) = shared.waiting.recv() {
        if shared.draining.load(Ordering::SeqCst) {
            // Queued before the drain began, never picked up: a clear 503, not a reset.
            turn_away(shared, rq, &ticket);
        } else {
            pick_up::serve(shared, k, rq, ticket);
        }
    }
}

/// twin-core's reading of a head, for tiny_http: the twins' own checks and their words for a
/// refusal, so that the pool answers every head as the event loop does.
struct Policy;

impl tiny_http::HeadPolicy for Policy {
    fn refusal(&self, status: u16) -> Vec<u8> {
        head::refusal_bytes(&head::refusal(status), ServerKind::Pool)
    }

    fn check(&self, target: &str, http11: bool, headers: &[(&str, &[u8])]) -> Result<(), Vec<u8>> {
        head::target(target)
            .and_then(|uri| head::check(&uri, http11, headers.iter().copied()))
            .map_err(|reply| head::refusal_bytes(&reply, ServerKind::Pool))
    }
}

/// Hold tiny_http's server for as long as it runs, and say what its accept loop meets: an accept
/// error (out of file descriptors) is said once, and so is the end of them; tiny_http backs off
/// and accepts again meanwhile. (Requests go straight from tiny_http's reader threads into the
/// queue, `enqueue`; any that came this way are queued too.) Once the drain has begun and `DRAIN_GRACE` has passed quietly, the server is
/// let go, and the listening socket with it.
fn accept(shared: &Shared, server: tiny_http::Server) {
    let mut failing = false;
    loop {
        let next = if shared.draining.load(Ordering::SeqCst) {
            match server.recv_timeout(DRAIN_GRACE) {
                Ok(Some(rq)) => Ok(rq),
                Ok(None) => return,
                // The drain shut the listening socket: tiny_http's accept fails from now on.
                Err(_) => continue,
            }
        } else if failing {
            // tiny_http reports a failed accept at least once a second while they fail (its
            // back-off tops out at a second): two quiet seconds mean it accepts again.
            match server.recv_timeout(Duration::from_secs(2)) {
                Ok(Some(rq)) => Ok(rq),
                Ok(None) => {
                    tracing::info!("accepting connections again");
                    failing = false;
                    continue;
                }
                Err(e) => Err(e),
            }
        } else {
            server.recv()
        };
        match next {
            Ok(rq) => enqueue(shared, rq),
            // The drain began while this waited: the loop above takes it from here.
            Err(_) if shared.draining.load(Ordering::SeqCst) => {}
            Err(e) if !failing => {
                tracing::error!(
                    "accept failed: {e}; new connections wait in the listen queue, \
                     retried up to every second"
                );
                failing = true;
            }
            Err(e) => tracing::debug!("accept failed again: {e}"),
        }
    }
}

/// Queue a request for the workers — or turn it away at once when draining, or over
/// `--limit-concurrency` or `--max-queue` (shed: said in the log and on `/events`).
/// `GET /events` never queues: its watcher gets a thread of its own and takes no worker. (On a
/// drain its stream ends; tiny_http then closes the connection if the watcher asked for
/// `Connection: close`, as the stage does, and otherwise when the process exits.)
fn enqueue(shared: &Shared, rq: tiny_http::Request) {
    // The policy let only targets `http::Uri` reads through; a plain `/path?query` reads as
    // itself (the usual case, without parsing it again).
    let plain = rq.url().starts_with('/') && !rq.url().contains('#');
    let uri = if plain {
        None
    } else {
        match head::target(rq.url()) {
            Ok(uri) => Some(uri),
            Err(refusal) => return pick_up::send(rq, refusal),
        }
    };
    let target = uri
        .as_ref()
        .map_or_else(|| rq.url().to_owned(), ToString::to_string);
    let path = match &uri {
        Some(uri) => uri.path().to_owned(),
        None => twin_core::request::split_target(&target).0.to_owned(),
    };
    let path = path.as_str();
    if path == events::PATH && *rq.method() == tiny_http::Method::Get {
        return match shared.events.subscribe(rq.tcp_stream()) {
            Ok(watcher) => watcher.serve(&shared.config, rq.into_writer()),
            // Closed after it, as the event loop closes it.
            Err(mut refused) => {
                refused.headers.push(("Connection", "close".to_owned()));
                pick_up::send(rq, refused)
            }
        };
    }
    if path == events::PATH && *rq.method() == tiny_http::Method::Head {
        return pick_up::send(rq, Reply::events_head());
    }
    let header = rq.headers().iter().find(|h| h.field.equiv("X-Request-Id"));
    let (id, bad_id) = shared.ids.of(header.map(|h| h.value.as_str().as_bytes()));
    let mut ticket = Ticket {
        target,
        id,
        bad_id,
        logged: access_log::logged(&shared.config, path),
        _place: None,
    };
    let Ok(_gate) = shared.gate.lock() else {
        return pick_up::send(rq, Reply::shutting_down());
    };
    if shared.draining.load(Ordering::SeqCst) {
        return pick_up::send(rq, Reply::shutting_down());
    }
    if let Some(limit) = shared.config.limit_concurrency {
        // Counted with its own place, as the event loop counts: the (limit + 1)-th is shed.
        ticket._place = Some(shared.in_server.enter());
        if shared.in_server.count() > limit {
            return shed(shared, rq, &ticket, "--limit-concurrency", limit);
        }
    }
    if let Some(max) = shared.config.max_queue {
        if shared.waiting.len() >= max {
            return shed(shared, rq, &ticket, "--max-queue", max);
        }
    }
    if ticket.logged {
        shared
            .events
            .step(Kind::Queued, &ticket.id, &ticket.target, None);
    }
    let _ = shared.queue.send(Item::Request(rq, ticket));
}

/// A request over a limit, turned away at once with the JSON 503 that names the limit: one log
/// line from no worker, and `finished` 503 for the watchers (no worker ever picked it up).
fn shed(shared: &Shared, rq: tiny_http::Request, ticket: &Ticket, flag: &str, limit: usize) {
    let method = rq.method().as_str().to_owned();
    access_log::shed(&shared.config, &method, &ticket.target, flag, limit);
    if ticket.logged {
        shared.events.shed(&ticket.id, &ticket.target);
    }
    let mut reply = Reply::overloaded(flag, limit);
    reply.headers.push(("X-Request-Id", ticket.id.to_string()));
    pick_up::send(rq, reply);
}

/// A queued request the drain turns away: its 503, and its end for the watchers.
fn turn_away(shared: &Shared, rq: tiny_http::Request, ticket: &Ticket) {
    if ticket.logged {
        shared
            .events
            .finished(&ticket.id, &ticket.target, None, 503, Duration::ZERO);
    }
    pick_up::send(rq, Reply::shutting_down());
}

/// Connections the kernel has completed but tiny_http has not accepted yet (a burst's, on a
/// busy machine) would be reset when the listening socket shuts. Take them now and answer each
/// with the JSON 503, each on a thread of its own: its request may still be on its way.
fn answer_backlog(listener: &TcpListener) {
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    while let Ok((stream, _)) = listener.accept() {
        let started = thread::Builder::new()
            .name("drain-503".into())
            .spawn(move || refuse(stream));
        if let Err(e) = started {
            tracing::warn!("cannot answer a connection during the drain: {e}");
        }
    }
    let _ = listener.set_nonblocking(false);
}

/// Read a request head from `stream` (briefly), then answer it with the JSON 503 and close.
fn refuse(mut stream: std::net::TcpStream) {
    use std::io::Write;
    if twin_core::limits::skip_head(&mut stream, Duration::from_secs(1)).is_err() {
        return;
    }
    let _ = stream.write_all(&head::refusal_bytes(
        &Reply::shutting_down(),
        ServerKind::Pool,
    ));
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

impl Twin for Running {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn config(&self) -> &Config {
        &self.config
    }

    fn in_flight_counter(&self) -> &InFlight {
        &self.shared.in_flight
    }

    fn workers_done(&self) -> &mpsc::Receiver<()> {
        &self.done
    }

    fn events(&self) -> &Events {
        &self.shared.events
    }

    fn begin_shutdown(&self) {
        let shared = &self.shared;
        {
            let _gate = shared.gate.lock();
            shared.draining.store(true, Ordering::SeqCst);
        }
        answer_backlog(&shared.listener);
        if let Err(e) = stop_accepting(&shared.listener) {
            tracing::warn!("could not close the listening socket: {e}");
        }
        // A connection accepted before the drain may still be sending its request: it gets the
        // 503 (the acceptor answers it), as on the event loop, if it comes within the grace.
        thread::sleep(DRAIN_GRACE);
        let waiting: Vec<(tiny_http::Request, Ticket)> = {
            let _gate = shared.gate.lock();
            // Requests still waiting for a worker are answered now, not after the busy workers
            // finish: the queue is emptied and each gets the JSON 503.
            let waiting = shared
                .waiting
                .try_iter()
                .filter_map(|item| match item {
                    Item::Request(rq, ticket) => Some((rq, ticket)),
                    Item::Stop => None,
                })
                .collect();
            for _ in 0..self.config.pool_slots() {
                let _ = shared.queue.send(Item::Stop);
            }
            waiting
        };
        for (rq, ticket) in waiting {
            turn_away(shared, rq, &ticket);
        }
    }
}
