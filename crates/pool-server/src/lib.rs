//! # pool-server — the WSGI-style twin
//!
//! A fixed pool of `--workers` blocking worker threads (`worker0`, `worker1`, …), like gunicorn's
//! sync workers running Flask. tiny_http accepts connections and queues the requests it reads;
//! each worker takes one request from that queue and holds it until the response is sent. A worker
//! that waits — blocking, or awaiting inside a fresh event loop — cannot pick up anything else, so
//! a burst of N requests that each wait T finishes in waves: request n (from 1) at ⌈n/workers⌉·T.
//!
//! - [`start`] binds nothing itself: it takes a listener (tests pass `127.0.0.1:0`) and returns a
//!   [`Running`] server that [`Running::shutdown`] drains.
//! - `handler.rs` is what a worker does with one request: read it to see every route.

mod handler;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use twin_core::listener::stop_accepting;
use twin_core::shutdown::{await_workers, DrainReport, InFlight};
use twin_core::{Config, Reply};

/// What every worker shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) server: tiny_http::Server,
    pub(crate) in_flight: InFlight,
    draining: AtomicBool,
}

/// A pool server with its workers running.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    config: Config,
    shared: Arc<Shared>,
    listener: TcpListener,
    done: mpsc::Receiver<()>,
}

// tiny_http's server has no `Debug`.
impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// Start `config.workers` workers serving `listener`. Sets `config.url` from the bound address.
pub fn start(listener: TcpListener, mut config: Config) -> io::Result<Running> {
    let addr = listener.local_addr()?;
    config.url = format!("http://{addr}");
    // A second handle on the socket lets a drain refuse new connections while tiny_http owns it.
    let control = listener.try_clone()?;
    let server = tiny_http::Server::from_listener(listener, None).map_err(io::Error::other)?;
    let shared = Arc::new(Shared {
        config: config.clone(),
        server,
        in_flight: InFlight::default(),
        draining: AtomicBool::new(false),
    });
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
        listener: control,
        done,
    })
}

/// One worker: take a request, serve it to the end, repeat.
///
/// On a drain, `begin_shutdown` queues one "unblock" per worker *behind* the requests already
/// queued, so each worker first answers those with a 503 and then meets its unblock and exits.
fn worker(shared: &Shared, k: usize) {
    loop {
        match shared.server.recv() {
            Ok(rq) if shared.draining.load(Ordering::SeqCst) => {
                handler::send(rq, Reply::shutting_down());
            }
            Ok(rq) => handler::handle(shared, k, rq),
            Err(_) if shared.draining.load(Ordering::SeqCst) => return,
            Err(e) => {
                // tiny_http ends its accept loop on any accept error (e.g. out of file
                // descriptors): requests already queued are still served, new ones are not.
                tracing::error!("worker{k}: the accept loop stopped: {e}");
            }
        }
    }
}

impl twin_core::run::Twin for Running {
    fn config(&self) -> &Config {
        Running::config(self)
    }

    fn in_flight(&self) -> usize {
        Running::in_flight(self)
    }

    fn shutdown(self, timeout: Duration) -> DrainReport {
        Running::shutdown(self, timeout)
    }
}

impl Running {
    /// The bound address (the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The effective configuration, with `url` set.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Requests picked up by a worker and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.count()
    }

    /// Begin the drain: refuse new connections and let every idle worker exit. Returns at once.
    pub fn begin_shutdown(&self) {
        let shared = &self.shared;
        shared.draining.store(true, Ordering::SeqCst);
        if let Err(e) = stop_accepting(&self.listener) {
            tracing::warn!("could not close the listening socket: {e}");
        }
        for _ in 0..self.config.workers {
            shared.server.unblock();
        }
    }

    /// Drain: stop accepting, let in-flight requests finish for up to `timeout`, stop the workers.
    pub fn shutdown(self, timeout: Duration) -> DrainReport {
        let began = Instant::now();
        self.begin_shutdown();
        await_workers(
            &self.done,
            usize::from(self.config.workers),
            began,
            timeout,
            &self.shared.in_flight,
        )
    }
}
