//! The route catalogue: every path both twins serve, and what it means on each of them.
//!
//! This is the one place to read what a route *is*. How each twin carries it out lives in that
//! twin's `handler.rs`; the descriptions here are what `GET /` and the banner show.

use serde::{Deserialize, Serialize};

/// Which concurrency model a server uses — the one thing the twins differ in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ServerKind {
    /// WSGI-style: a fixed pool of blocking workers, one request each (gunicorn + Flask).
    Pool,
    /// ASGI-style: event loops that hold many waiting requests each (uvicorn + FastAPI).
    EventLoop,
}

impl std::fmt::Display for ServerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ServerKind {
    /// The name used in JSON bodies and by `burst`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Pool => "pool",
            ServerKind::EventLoop => "event-loop",
        }
    }

    /// The binary's name.
    pub fn binary(self) -> &'static str {
        match self {
            ServerKind::Pool => "pool-server",
            ServerKind::EventLoop => "async-server",
        }
    }

    /// What one worker is called on this twin: "worker thread" or "event loop".
    pub fn worker_noun(self) -> &'static str {
        match self {
            ServerKind::Pool => "worker thread",
            ServerKind::EventLoop => "event loop",
        }
    }

    /// One line for the banner: what this twin imitates.
    pub fn tagline(self) -> &'static str {
        match self {
            ServerKind::Pool => {
                "WSGI-style: a fixed pool of blocking workers, one request each (like gunicorn + Flask)"
            }
            ServerKind::EventLoop => {
                "ASGI-style: event loops that hold many waiting requests each (like uvicorn + FastAPI)"
            }
        }
    }
}

/// Every route both twins serve. All are `GET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Route {
    Index,
    Healthz,
    Io,
    AsyncIo,
    AsyncIoMulti,
    AsyncIoBlocking,
    Cpu,
}

/// What a request holds while it is served — the queueing rule, in one place. `GET /` publishes
/// it for every route, and `burst`'s model reads it from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Holds {
    /// A pool worker, from pick-up to response: `workers` at a time.
    Worker,
    /// A slot of its event loop's thread pool: `threadpool` per loop at a time.
    ThreadPoolSlot,
    /// The event loop itself: nothing else on that loop runs meanwhile.
    EventLoop,
    /// Nothing: the request is parked while it waits, and the loop serves others.
    Nothing,
}

/// How long a request holds what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Service {
    /// T.
    #[serde(rename = "T")]
    Wait,
    /// T/K: K waits of T/K overlap inside the request.
    #[serde(rename = "T/K")]
    Slice,
    /// T of CPU work: threads beyond the cores share them.
    #[serde(rename = "T of CPU")]
    Cpu,
    /// No time to speak of.
    #[serde(rename = "0")]
    Instant,
}

/// Query parameters a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// `?ms=`: the wait T in milliseconds.
    Ms,
    /// `?tasks=`: how many concurrent waits K on `/async-io-multi`.
    Tasks,
}

impl Param {
    pub fn name(self) -> &'static str {
        match self {
            Param::Ms => "ms",
            Param::Tasks => "tasks",
        }
    }
}

impl Route {
    /// In the order `GET /` and the banner list them.
    pub const ALL: [Route; 7] = [
        Route::Io,
        Route::AsyncIo,
        Route::AsyncIoMulti,
        Route::AsyncIoBlocking,
        Route::Cpu,
        Route::Index,
        Route::Healthz,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Route::Index => "/",
            Route::Healthz => "/healthz",
            Route::Io => "/io",
            Route::AsyncIo => "/async-io",
            Route::AsyncIoMulti => "/async-io-multi",
            Route::AsyncIoBlocking => "/async-io-blocking",
            Route::Cpu => "/cpu",
        }
    }

    pub fn from_path(path: &str) -> Option<Route> {
        Route::ALL.into_iter().find(|r| r.path() == path)
    }

    /// Routes that do a timed piece of work (and so take `?ms=`).
    pub fn is_work(self) -> bool {
        !matches!(self, Route::Index | Route::Healthz)
    }

    pub fn params(self) -> &'static [Param] {
        match self {
            Route::Index | Route::Healthz => &[],
            Route::AsyncIoMulti => &[Param::Ms, Param::Tasks],
            _ => &[Param::Ms],
        }
    }

    /// What a request on this route holds on a twin of `kind` while it is served.
    pub fn holds(self, kind: ServerKind) -> Holds {
        use Route::*;
        match (kind, self) {
            // On a pool, everything a worker picks up holds it until the response.
            (ServerKind::Pool, _) => Holds::Worker,
            (ServerKind::EventLoop, Io) => Holds::ThreadPoolSlot,
            (ServerKind::EventLoop, AsyncIoBlocking | Cpu) => Holds::EventLoop,
            (ServerKind::EventLoop, AsyncIo | AsyncIoMulti | Index | Healthz) => Holds::Nothing,
        }
    }

    /// How many requests hold what this route holds at once, server-wide (`None`: it holds
    /// nothing, so any number at once).
    pub fn slots(self, config: &crate::Config) -> Option<usize> {
        let workers = usize::from(config.workers);
        match self.holds(config.kind) {
            Holds::Worker => Some(config.pool_slots()),
            Holds::ThreadPoolSlot => Some(workers * config.threadpool.unwrap_or(1) as usize),
            Holds::EventLoop => Some(workers),
            Holds::Nothing => None,
        }
    }

    /// How long it holds it.
    pub fn service(self) -> Service {
        match self {
            Route::Io | Route::AsyncIo | Route::AsyncIoBlocking => Service::Wait,
            Route::AsyncIoMulti => Service::Slice,
            Route::Cpu => Service::Cpu,
            Route::Index | Route::Healthz => Service::Instant,
        }
    }

    /// An example query for the route table's curl line.
    pub fn example_query(self) -> &'static str {
        match self {
            Route::AsyncIoMulti => "?ms=1000&tasks=2",
            r if r.is_work() => "?ms=1000",
            _ => "",
        }
    }

    /// What the route does on the given twin, in one line.
    pub fn describe(self, kind: ServerKind) -> &'static str {
        use Route::*;
        use ServerKind::*;
        match (self, kind) {
            (Index, _) => "this server's kind, pid, configuration and route table (JSON)",
            (Healthz, _) => "200 ok at once; not in the access log unless --log-healthz",
            (Io, Pool) => "blocking wait of T: the worker is tied up for T",
            (Io, EventLoop) => {
                "blocking wait of T on the loop's bounded thread pool (--threadpool slots, like a \
                 FastAPI `def` route); the loop stays free, and beyond the slots requests queue"
            }
            (AsyncIo, Pool) => {
                "async view, Flask-style: a fresh event loop inside the worker awaits T; the worker \
                 is tied up all the same"
            }
            (AsyncIo, EventLoop) => "awaits one async wait of T; the loop serves others meanwhile",
            (AsyncIoMulti, Pool) => {
                "fresh event loop, K concurrent waits of T/K: the worker is tied up only ~T/K"
            }
            (AsyncIoMulti, EventLoop) => "K concurrent async waits of T/K on the event loop",
            (AsyncIoBlocking, Pool) => {
                "async task that calls a blocking wait of T: on a pool worker no different from /io"
            }
            (AsyncIoBlocking, EventLoop) => {
                "the classic mistake: an async handler that blocks for T, freezing its event loop \
                 and every request on it"
            }
            (Cpu, Pool) => {
                "a fixed amount of CPU work, about T on a free core: the worker is tied up, and \
                 workers beyond the cores share them"
            }
            (Cpu, EventLoop) => {
                "a fixed amount of CPU work (about T on a free core) on the event loop: async does \
                 not help CPU-bound work, and loops beyond the cores share them"
            }
        }
    }
}
