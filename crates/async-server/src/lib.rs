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
//! - `handler.rs` is what an event loop does with one request: read it to see every route.

mod acceptor;
mod handler;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{mpsc, Arc};
use std::thread;

use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use twin_core::listener::stop_accepting;
use twin_core::run::Twin;
use twin_core::shutdown::InFlight;
use twin_core::{limits, Config};

use crate::acceptor::{Loops, Open};
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
    let slots = config.threadpool.unwrap_or(DEFAULT_THREADPOOL).max(1);
    let shared_config = Arc::new(config.clone());
    let in_flight = InFlight::default();
    let loops = Loops::new(usize::from(config.workers));
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
    thread::Builder::new()
        .name("acceptor".into())
        .spawn(move || acceptor::run(socket, loops, to_loops, stop_rx))?;
    Ok(Running {
        addr,
        config,
        listener,
        stop,
        done,
        in_flight,
    })
}

/// One event loop: serve the connections the acceptor hands it, each as a task, until told to
/// stop; then wait for the requests it holds.
async fn event_loop(
    mut incoming: UnboundedReceiver<(std::net::TcpStream, Open)>,
    state: LoopState,
    loops: Loops,
    mut stop: watch::Receiver<bool>,
) {
    let k = state.worker;
    let beat = loops.clone();
    // The heartbeat stops whenever something blocks this loop; the acceptor then passes it by.
    let heartbeat = tokio::spawn(async move {
        loop {
            beat.beat(k);
            tokio::time::sleep(acceptor::HEARTBEAT).await;
        }
    });
    let router = handler::router(state);
    // HTTP/1 only: the twins speak what gunicorn and uvicorn speak, and it keeps connections small.
    let mut http = hyper::server::conn::http1::Builder::new();
    // A head over the shared limits gets hyper's 431 before any handler runs.
    http.max_buf_size(limits::MAX_HEAD_BYTES)
        .max_headers(limits::MAX_HEADERS);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, open) = tokio::select! {
            biased;
            _ = stop.changed() => break,
            next = incoming.recv() => match next {
                Some(next) => next,
                None => break,
            },
        };
        let stream = match tokio::net::TcpStream::from_std(stream) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("worker{k}: cannot take a connection: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let http = http.clone();
        let watcher = graceful.watcher();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            // hyper allocates two 8 KiB buffers per connection; a connection that has sent
            // nothing yet (a burst's, waiting for its release) needs neither. A drain closes it.
            tokio::select! {
                readable = stream.readable() => if readable.is_err() { return },
                _ = stop.wait_for(|stopping| *stopping) => return,
            }
            let service = TowerToHyperService::new(router);
            let conn = watcher.watch(http.serve_connection(TokioIo::new(stream), service));
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(open);
        });
    }
    heartbeat.abort();
    drop(incoming);
    graceful.shutdown().await;
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

    fn begin_shutdown(&self) {
        let _ = self.stop.send(true);
        if let Err(e) = stop_accepting(&self.listener) {
            tracing::warn!("could not close the listening socket: {e}");
        }
    }
}
