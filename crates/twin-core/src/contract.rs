//! What a twin says about itself — one typed contract, serde both ways: the twins write it
//! (`GET /`: [`crate::reply::Reply::index`]; `GET /events`: `events.rs`), `burst` and the stage
//! read it, and `python/twin_common.py` writes the same for gunicorn and uvicorn.
//!
//! - [`ServerInfo`]: the model's inputs — what kind of server, how many workers, T, K, the
//!   thread pool, the cores — and every route's queueing rule ([`RouteRule`]: what a request
//!   holds, [`Holds`], for how long, [`Service`]).
//! - [`EventName`]: the events of `GET /events`, as named on the stream.
//!
//! Strings become these types once, where they come in; a server that says something the
//! contract does not know is a server with no model, said as such — never a silent default.

use serde::{Deserialize, Serialize};

pub use crate::route::{Holds, ServerKind, Service};

/// What `GET /` says about a server: the model's inputs. Fields a server need not send (a
/// server that is not a twin) are optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// What the server calls itself (`pool-server`, `gunicorn + Flask`, …).
    #[serde(default)]
    pub server: Option<String>,
    pub kind: ServerKind,
    pub workers: u32,
    pub task_ms: u64,
    pub multi_tasks: u32,
    #[serde(default)]
    pub threadpool: Option<u32>,
    /// Threads per pool worker (gunicorn's `--threads`): `workers × threads` served at once.
    #[serde(default)]
    pub threads: Option<u32>,
    /// `--limit-concurrency`: a request that finds this many in the server gets a 503 at once.
    #[serde(default)]
    pub limit_concurrency: Option<u32>,
    /// The pool's `--max-queue`: a request that finds this many waiting gets a 503 at once.
    #[serde(default)]
    pub max_queue: Option<u32>,
    #[serde(default)]
    pub max_ms: u64,
    /// Cores the server may use; unknown for a server that does not say.
    #[serde(default)]
    pub cores: Option<u32>,
    /// Told on the command line (`burst --model`), not read from the server: a path the model
    /// does not know is then taken as one wait of T — held by a worker on a pool, awaited on a
    /// loop.
    #[serde(skip)]
    pub told: bool,
    /// Each route's queueing rule, as the server publishes it.
    #[serde(default)]
    pub routes: Vec<RouteRule>,
}

impl ServerInfo {
    pub fn is_pool(&self) -> bool {
        self.kind == ServerKind::Pool
    }
}

/// One route of a server's `GET /`: what a request holds while served, and for how long (the
/// queueing rule); the rest is for people reading it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRule {
    pub path: String,
    #[serde(default)]
    pub holds: Option<Holds>,
    #[serde(default)]
    pub service: Option<Service>,
    /// How many requests hold it at once, server-wide: the pool's worker threads
    /// (`workers × threads`), the loops' thread-pool slots (`workers × threadpool`), the loops.
    /// None for what holds nothing.
    #[serde(default)]
    pub slots: Option<u32>,
    /// Set when each worker queues its own requests (gunicorn's gthread: each process accepts
    /// connections for its own threads): this many at once per worker. The twins' pool has one
    /// queue for all its threads, and says nothing here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_worker: Option<u32>,
}

/// The events of `GET /events`, as the stream names them (`event: picked-up`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventName {
    /// First on every stream: the twin's `GET /` ([`ServerInfo`]).
    Hello,
    /// Waiting: for a pool worker, or (event-loop `/io`) for a thread-pool slot.
    Queued,
    /// A worker or loop started it: the access-log moment.
    PickedUp,
    /// Event-loop `/io`: a thread-pool slot took it; waiting is over.
    Slot,
    /// Its response was handed to the connection.
    Finished,
    /// An event loop stopped ticking (something blocks it), and ticks again.
    Frozen,
    Thawed,
    /// The watcher fell behind and missed this many events.
    Lagged,
}

impl EventName {
    pub const ALL: [EventName; 8] = [
        EventName::Hello,
        EventName::Queued,
        EventName::PickedUp,
        EventName::Slot,
        EventName::Finished,
        EventName::Frozen,
        EventName::Thawed,
        EventName::Lagged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventName::Hello => "hello",
            EventName::Queued => "queued",
            EventName::PickedUp => "picked-up",
            EventName::Slot => "slot",
            EventName::Finished => "finished",
            EventName::Frozen => "frozen",
            EventName::Thawed => "thawed",
            EventName::Lagged => "lagged",
        }
    }

    /// The event a stream line names, if the contract knows it.
    pub fn parse(name: &str) -> Option<EventName> {
        EventName::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::reply::Reply;
    use crate::route::Route;

    /// What the twins write at `GET /` is what `burst` reads, field by field and rule by rule.
    #[test]
    fn the_index_reads_back_as_server_info() {
        for kind in [ServerKind::Pool, ServerKind::EventLoop] {
            let config = Config::for_tests(kind, 3, 250);
            let info: ServerInfo = match serde_json::from_str(&Reply::index(&config).body) {
                Ok(info) => info,
                Err(e) => panic!("{kind}: the index does not read back: {e}"),
            };
            assert_eq!(info.kind, kind);
            assert_eq!(info.server.as_deref(), Some(kind.binary()));
            assert_eq!((info.workers, info.task_ms), (3, 250));
            assert_eq!(info.multi_tasks, config.multi_tasks);
            assert_eq!(info.threadpool, config.threadpool);
            assert_eq!(
                (info.max_ms, info.cores),
                (config.max_ms, Some(config.cores))
            );
            assert_eq!(info.routes.len(), Route::ALL.len());
            for (rule, route) in info.routes.iter().zip(Route::ALL) {
                assert_eq!(rule.path, route.path());
                assert_eq!(rule.holds, Some(route.holds(kind)));
                assert_eq!(rule.service, Some(route.service()));
                assert_eq!(
                    rule.slots,
                    route.slots(&config).map(|n| n as u32),
                    "{}",
                    rule.path
                );
            }
        }
    }

    #[test]
    fn event_names_read_back() {
        for e in EventName::ALL {
            assert_eq!(EventName::parse(e.as_str()), Some(e));
            assert_eq!(
                serde_json::to_string(&e).ok(),
                Some(format!("\"{}\"", e.as_str()))
            );
        }
        assert_eq!(EventName::parse("picked_up"), None);
    }
}
