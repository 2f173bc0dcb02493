//! # async-server — the ASGI-style twin
//!
//! `--workers` event loops, like uvicorn's worker processes running FastAPI: each loop is one
//! thread running its own single-threaded tokio runtime, and all of them accept from the same
//! listening socket, as uvicorn's workers share the socket they inherit. A loop parks a request
//! that awaits and picks up the next one, so a burst of IO-bound requests is served all at once.
//! Because each loop is its own thread, one blocked loop (`/async-io-blocking`, `/cpu`) stalls
//! only the requests it holds — exactly as one stuck uvicorn worker would.
//!
//! Each loop also has its own blocking thread pool of `--threadpool` slots (40, as FastAPI's
//! default thread limiter), where `/io` — a plain blocking route — runs.
//!
//! - [`start`] takes a listener (tests pass `127.0.0.1:0`) and returns a [`Running`] server.
//! - `handler.rs` is what an event loop does with one request: read it to see every route.

mod handler;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;
use twin_core::listener::stop_accepting;
use twin_core::shutdown::{await_workers, DrainReport, InFlight};
use twin_core::Config;

use crate::handler::LoopState;

/// Default blocking-pool slots per event loop, as FastAPI's (anyio's) thread limiter.
pub const DEFAULT_THREADPOOL: u32 = 40;

/// An event-loop server with its loops running.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    config: Config,
    listener: TcpListener,
    stop: watch::Sender<bool>,
    done: mpsc::Receiver<()>,
    in_flight: InFlight,
}

/// Start `config.workers` event loops serving `listener`. Sets `config.url` from the bound address.
pub fn start(listener: TcpListener, mut config: Config) -> io::Result<Running> {
    let addr = listener.local_addr()?;
    config.url = format!("http://{addr}");
    listener.set_nonblocking(true)?;
    let slots = config.threadpool.unwrap_or(DEFAULT_THREADPOOL).max(1);
    let shared_config = Arc::new(config.clone());
    let in_flight = InFlight::default();
    let (stop, stop_rx) = watch::channel(false);
    let (done_tx, done) = mpsc::channel();
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
        };
        let socket = listener.try_clone()?;
        let stop_rx = stop_rx.clone();
        let done_tx = done_tx.clone();
        thread::Builder::new()
            .name(format!("worker{k}"))
            .spawn(move || {
                runtime.block_on(event_loop(socket, state, stop_rx));
                // Anything still on the blocking pool was cut off by the drain timeout.
                runtime.shutdown_background();
                let _ = done_tx.send(());
            })?;
    }
    Ok(Running {
        addr,
        config,
        listener,
        stop,
        done,
        in_flight,
    })
}

/// One event loop: accept connections and serve each as a task until told to stop, then wait for
/// the requests it holds.
async fn event_loop(socket: TcpListener, state: LoopState, mut stop: watch::Receiver<bool>) {
    let k = state.worker;
    let listener = match tokio::net::TcpListener::from_std(socket) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("worker{k}: cannot register the listening socket: {e}");
            return;
        }
    };
    let router = handler::router(state);
    // HTTP/1 only: the twins speak what gunicorn and uvicorn speak, and it keeps connections small.
    let http = hyper::server::conn::http1::Builder::new();
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let service = TowerToHyperService::new(router.clone());
                    let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!("connection ended: {e}");
                        }
                    });
                }
                Err(e) => {
                    // Out of descriptors and the like: say so, back off briefly, keep serving.
                    tracing::error!("worker{k}: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
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

    /// Requests picked up by an event loop and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.count()
    }

    /// Begin the drain: every loop stops accepting and closes idle connections. Returns at once.
    pub fn begin_shutdown(&self) {
        let _ = self.stop.send(true);
        if let Err(e) = stop_accepting(&self.listener) {
            tracing::warn!("could not close the listening socket: {e}");
        }
    }

    /// Drain: stop accepting, let in-flight requests finish for up to `timeout`, stop the loops.
    pub fn shutdown(self, timeout: Duration) -> DrainReport {
        let began = Instant::now();
        self.begin_shutdown();
        await_workers(
            &self.done,
            usize::from(self.config.workers),
            began,
            timeout,
            &self.in_flight,
        )
    }
}
