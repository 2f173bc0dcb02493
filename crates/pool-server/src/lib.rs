//! # pool-server — the WSGI-style twin
//!
//! A fixed pool of `--workers` blocking worker threads (`worker0`, `worker1`, …), like gunicorn's
//! sync workers running Flask. Each worker takes one request from the queue and holds it until
//! the response is sent. A worker that waits — blocking, or awaiting inside a fresh event loop —
//! cannot pick up anything else, so a burst of N requests that each wait T finishes in waves:
//! request n (from 1) at ⌈n/workers⌉·T.
//!
//! How a request reaches a worker: tiny_http accepts connections and reads requests on threads of
//! its own; an *acceptor* thread moves each request into the pool's queue — one FIFO that every
//! worker takes from, like gunicorn's shared listen queue. Owning that queue is what lets the
//! server count what waits (`--max-queue`), turn requests away politely on a drain, and survive
//! tiny_http's accept loop ending: tiny_http stops accepting for good on any accept error (out of
//! file descriptors, say), so the acceptor starts a new tiny_http server on the same socket,
//! backing off until descriptors are free again, and the workers never notice.
//!
//! - [`start`] takes a listener (tests pass `127.0.0.1:0`) and returns a [`Running`] server that
//!   `Twin::shutdown` drains.
//! - `handler.rs` is what a worker does with one request: read it to see every route.

mod handler;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use twin_core::events::{self, Events, Kind};
use twin_core::platform::stop_accepting;
use twin_core::request::split_target;
use twin_core::run::Twin;
use twin_core::shutdown::InFlight;
use twin_core::{access_log, Config, Reply};

/// What the queue holds: a request, or a note to one worker that the drain has reached it.
// Each item is moved once, into the queue and out; boxing it would allocate once per request.
#[allow(clippy::large_enum_variant)]
enum Item {
    Request(tiny_http::Request, Ticket),
    Stop,
}

/// What the acceptor learnt of a request while queueing it, for the worker that picks it up.
pub(crate) struct Ticket {
    /// Its `X-Request-Id` (or one made for it); a bad one's 400 is answered at pick-up.
    pub(crate) id: Arc<str>,
    pub(crate) bad_id: Option<Reply>,
    /// In the access log, and so in `/events`.
    pub(crate) logged: bool,
}

/// What the workers and the acceptor share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) in_flight: InFlight,
    /// `GET /events`: each request's queued, picked-up and finished, for watchers.
    pub(crate) events: Events,
    queue: Sender<Item>,
    waiting: Receiver<Item>,
    /// Taken by the acceptor to enqueue and by the drain to close the queue, so that no request
    /// is queued behind the workers' `Stop`s.
    gate: Mutex<()>,
    draining: AtomicBool,
    /// A handle on the listening socket: to refuse connections on a drain, and to start a new
    /// tiny_http server after its accept loop ends.
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

/// Start `config.workers` workers serving `listener`. Sets `config.url` from the bound address.
pub fn start(listener: TcpListener, mut config: Config) -> io::Result<Running> {
    let addr = listener.local_addr()?;
    config.url = format!("http://{addr}");
    let (queue, waiting) = crossbeam_channel::unbounded();
    let shared = Arc::new(Shared {
        config: config.clone(),
        in_flight: InFlight::default(),
        events: Events::new(&config, None),
        queue,
        waiting,
        gate: Mutex::new(()),
        draining: AtomicBool::new(false),
        listener: listener.try_clone()?,
    });
    let server = tiny_http::Server::from_listener(listener, None).map_err(io::Error::other)?;
    spawn_acceptor(shared.clone(), server)?;
    spawn_watchdog(shared.clone())?;
    let (done_tx, done) = mpsc::channel();
    for k in 0..usize::from(config.workers) {
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
            handler::handle(shared, k, rq, ticket);
        }
    }
}

fn spawn_acceptor(shared: Arc<Shared>, server: tiny_http::Server) -> io::Result<()> {
    thread::Builder::new()
        .name("acceptor".into())
        .spawn(move || acceptor(&shared, server))
        .map(|_| ())
}

/// How long a retired tiny_http server's leftover keep-alive connections are still served.
const RETIRED_IDLE: Duration = Duration::from_secs(30);

/// Move requests from tiny_http into the pool's queue; restart tiny_http if its accept loop ends.
fn acceptor(shared: &Arc<Shared>, server: tiny_http::Server) {
    let mut retired = false;
    loop {
        let next = if retired {
            match server.recv_timeout(RETIRED_IDLE) {
                Ok(Some(rq)) => Ok(rq),
                // Idle for long enough (or never used): let this old server go.
                Ok(None) | Err(_) => return,
            }
        } else {
            server.recv()
        };
        match next {
            Ok(rq) => enqueue(shared, rq),
            Err(_) if shared.draining.load(Ordering::SeqCst) => retired = true,
            Err(e) => {
                // tiny_http's accept loop is over, but connections it accepted may still bring
                // requests: this old server is served until it has been idle for a while.
                tracing::error!(
                    "accept failed: {e}; starting a new accept loop on the same socket"
                );
                restart(shared.clone());
                retired = true;
            }
        }
    }
}

/// Panics seen on tiny_http's own (unnamed) threads, process-wide, and a condition to wake the
/// watchdogs: they sleep until a panic (or a drain) — an idle server does not tick.
static TINY_HTTP_PANICS: (Mutex<u64>, Condvar) = (Mutex::new(0), Condvar::new());

/// For the binary's `main`, once: tiny_http's accept thread does not always end with an error —
/// out of file descriptors it can also panic (it `unwrap`s a `try_clone` of each new connection),
/// and then nothing is ever said. This hook counts panics on tiny_http's threads (the only
/// unnamed threads here), reports each in one line instead of a backtrace, and wakes the
/// watchdog, which starts a new accept loop. Panics elsewhere go to the hook that was there.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if thread::current().name().is_none() {
            let what = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            tracing::error!("accept failed: a tiny_http thread stopped: {what}");
            let (count, wake) = &TINY_HTTP_PANICS;
            if let Ok(mut n) = count.lock() {
                *n += 1;
            }
            wake.notify_all();
        } else {
            previous(info);
        }
    }));
}

/// Answer a panic counted by [`install_panic_hook`] with a new accept loop. An accept loop
/// started while the old one was still alive does no harm: both feed one queue.
fn spawn_watchdog(shared: Arc<Shared>) -> io::Result<()> {
    let (count, wake) = &TINY_HTTP_PANICS;
    let mut seen = count.lock().map_or(0, |n| *n);
    thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || loop {
            let Ok(guard) = count.lock() else { return };
            let Ok(now) = wake.wait_while(guard, |n| {
                *n == seen && !shared.draining.load(Ordering::SeqCst)
            }) else {
                return;
            };
            if shared.draining.load(Ordering::SeqCst) {
                return;
            }
            seen = *now;
            drop(now);
            restart(shared.clone());
        })
        .map(|_| ())
}

/// Start a new tiny_http server on the listening socket, retrying with backoff while the process
/// is out of descriptors.
fn restart(shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(10);
    let started = thread::Builder::new()
        .name("acceptor-restart".into())
        .spawn(move || loop {
            if shared.draining.load(Ordering::SeqCst) {
                return;
            }
            thread::sleep(backoff);
            let server = shared
                .listener
                .try_clone()
                .and_then(|l| tiny_http::Server::from_listener(l, None).map_err(io::Error::other));
            match server {
                Ok(server) => {
                    tracing::info!("accepting connections again");
                    let _ = spawn_acceptor(shared, server);
                    return;
                }
                Err(e) => {
                    tracing::debug!("cannot restart the accept loop yet: {e}");
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        });
    if let Err(e) = started {
        tracing::error!("cannot start a thread to restart the accept loop: {e}");
    }
}

/// Queue a request for the workers — or turn it away at once when draining or over `--max-queue`.
/// `GET /events` never queues: its watcher gets a thread of its own and takes no worker. (On a
/// drain its stream ends; tiny_http then closes the connection if the watcher asked for
/// `Connection: close`, as the stage does, and otherwise when the process exits.)
fn enqueue(shared: &Shared, rq: tiny_http::Request) {
    let path = split_target(rq.url()).0;
    if path == events::PATH && *rq.method() == tiny_http::Method::Get {
        return match shared.events.subscribe(rq.tcp_stream()) {
            Ok(watcher) => watcher.serve(&shared.config, rq.into_writer()),
            Err(refused) => handler::send(rq, refused),
        };
    }
    if path == events::PATH && *rq.method() == tiny_http::Method::Head {
        return handler::send(rq, Reply::events_head());
    }
    let header = rq.headers().iter().find(|h| h.field.equiv("X-Request-Id"));
    let (id, bad_id) = events::request_id(
        &shared.events,
        shared.config.pid,
        header.map(|h| h.value.as_str().as_bytes()),
    );
    let ticket = Ticket {
        id,
        bad_id,
        logged: access_log::logged(&shared.config, path),
    };
    let Ok(_gate) = shared.gate.lock() else {
        return handler::send(rq, Reply::shutting_down());
    };
    if shared.draining.load(Ordering::SeqCst) {
        return handler::send(rq, Reply::shutting_down());
    }
    if let Some(max) = shared.config.max_queue {
        if shared.waiting.len() >= max {
            return handler::send(rq, Reply::overloaded("--max-queue", max));
        }
    }
    if ticket.logged {
        shared.events.step(Kind::Queued, &ticket.id, rq.url(), None);
    }
    let _ = shared.queue.send(Item::Request(rq, ticket));
}

/// A queued request the drain turns away: its 503, and its end for the watchers.
fn turn_away(shared: &Shared, rq: tiny_http::Request, ticket: &Ticket) {
    if ticket.logged {
        shared
            .events
            .finished(&ticket.id, rq.url(), None, 503, Duration::ZERO);
    }
    handler::send(rq, Reply::shutting_down());
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
    let _ = stream.write_all(Reply::shutting_down().to_http1().as_bytes());
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
        let waiting: Vec<(tiny_http::Request, Ticket)> = {
            let _gate = shared.gate.lock();
            shared.draining.store(true, Ordering::SeqCst);
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
            for _ in 0..self.config.workers {
                let _ = shared.queue.send(Item::Stop);
            }
            waiting
        };
        for (rq, ticket) in waiting {
            turn_away(shared, rq, &ticket);
        }
        answer_backlog(&shared.listener);
        if let Err(e) = stop_accepting(&shared.listener) {
            tracing::warn!("could not close the listening socket: {e}");
        }
        // The watchdog sleeps until a panic or this (notified under its lock: no lost wake-up).
        let _count = TINY_HTTP_PANICS.0.lock();
        TINY_HTTP_PANICS.1.notify_all();
    }
}
