//! `GET /events`: every request's life as it happens, for the live stage (or `curl -N`).
//!
//! A Server-Sent Events stream with one event per step of every request — `queued`, `picked-up`,
//! `finished` (and on the event-loop twin `slot`, when an `/io` request gets a thread-pool
//! slot; `frozen` / `thawed`, when a loop stops or resumes ticking) — after a `hello` with the
//! server's configuration (as `GET /`). Each event names the request id, route, worker and a server
//! time in microseconds since the Unix epoch.
//!
//! **Observing must never perturb the experiment.** So:
//! - each watcher is served by a thread of its own, never by a pool worker or an event loop (a
//!   frozen loop must not freeze the stream that reports it frozen);
//! - publishing is a non-blocking send into each watcher's bounded buffer; a watcher that falls
//!   behind loses events, counted, and is told how many in a `lagged` event — a request is never
//!   delayed, and a stalled watcher holds at most its buffer (plus a small socket buffer);
//! - with no watcher, publishing is one atomic load.
//!
//! **Watching costs what it must, and no more.** At most `--max-watchers` watch at once (one more
//! gets a JSON 503; watchers whose clients have gone are let go first); an idle watcher's thread
//! sleeps until something happens; one that stops reading is let go once a write to it has taken
//! `events_stall` (10 s, `config::WATCHER_WRITE_STALL`); the event loops' heartbeats are looked at
//! by one thread for all watchers, and only while some loop holds a connection. No `Access-Control-Allow-Origin`: other web pages
//! cannot read the stream.

use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::config::Config;
use crate::contract::EventName;
use crate::limits;
use crate::reply::{self, Reply};
use crate::timefmt::{self, unix_micros};

/// The path of the stream.
pub const PATH: &str = "/events";

/// How often a watcher thread looks at the event loops' heartbeats (event-loop twin only).
const FROZEN_CHECK: Duration = Duration::from_millis(10);

/// A comment line now and then keeps proxies and idle-connection reapers from closing the stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A write of this many events at once means they come faster than a watcher needs them one by
/// one: its thread then pauses [`BUSY_PAUSE`] before it looks again, so that publishing wakes
/// nobody. Well inside the 100 ms an event may take to reach the page, and inside a watcher's
/// buffer at any rate the twins reach (4,096 events: 27 ms of them even at 150,000 a second).
const BUSY_BATCH: usize = 16;
const BUSY_PAUSE: Duration = Duration::from_millis(5);

/// How soon a watcher that fell behind is told how much it missed, when nothing else comes.
const LAGGED_CHECK: Duration = Duration::from_millis(250);

/// What happened to a request (or a loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Waiting: for a pool worker, or (event-loop `/io`) for a thread-pool slot.
    Queued,
    /// A worker or loop started it: the access-log moment.
    PickedUp,
    /// Event-loop `/io`: a thread-pool slot took it; waiting is over.
    Slot,
    /// Its response was handed to the connection.
    Finished,
}

impl Kind {
    /// Its name on the stream (the contract's).
    pub fn name(self) -> EventName {
        match self {
            Kind::Queued => EventName::Queued,
            Kind::PickedUp => EventName::PickedUp,
            Kind::Slot => EventName::Slot,
            Kind::Finished => EventName::Finished,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.name().as_str()
    }
}

/// One step of one request.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: Kind,
    pub id: Arc<str>,
    /// The request's path (the route, or whatever was asked for).
    pub route: Arc<str>,
    pub worker: Option<usize>,
    /// Server time, µs since the Unix epoch.
    pub t_us: u64,
    /// `finished`: the status and the time since pick-up.
    pub status: Option<u16>,
    pub elapsed_us: Option<u64>,
    /// `finished` 503 of a request turned away at once over a limit (`--limit-concurrency`,
    /// `--max-queue`): no worker ever had it.
    pub shed: bool,
}

impl Event {
    /// Step `kind` of request `id` for `target`, at `at`.
    pub fn new(
        kind: Kind,
        id: &Arc<str>,
        target: &str,
        worker: Option<usize>,
        at: SystemTime,
    ) -> Event {
        Event {
            kind,
            id: id.clone(),
            route: route_of(target),
            worker,
            t_us: unix_micros(at),
            status: None,
            elapsed_us: None,
            shed: false,
        }
    }

    /// With the response's status and the time since pick-up (`finished`).
    pub fn ended(mut self, status: u16, elapsed: Duration) -> Event {
        self.status = Some(status);
        self.elapsed_us = Some(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
        self
    }

    /// The event's JSON, written directly: a watcher thread writes thousands of these a second.
    fn data(&self) -> String {
        use std::fmt::Write as _;
        let text = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
        let mut out = format!(
            "{{\"id\":{},\"route\":{},\"worker\":",
            text(&self.id),
            text(&self.route)
        );
        match self.worker {
            Some(k) => {
                let _ = write!(out, "\"worker{k}\"");
            }
            None => out.push_str("null"),
        }
        let _ = write!(out, ",\"t_us\":{}", self.t_us);
        if self.kind == Kind::PickedUp {
            // The body's `started`, to the millisecond.
            let at = UNIX_EPOCH + Duration::from_micros(self.t_us);
            let _ = write!(out, ",\"started\":\"{}\"", timefmt::rfc3339_ms(at));
        }
        if let Some(status) = self.status {
            let _ = write!(out, ",\"status\":{status}");
        }
        if let Some(us) = self.elapsed_us {
            let _ = write!(out, ",\"elapsed_us\":{us}");
        }
        if self.shed {
            out.push_str(",\"shed\":true");
        }
        out.push('}');
        out
    }
}

/// Which loops are frozen now, and since when (µs since the epoch of their last tick); `None`
/// while no loop holds a connection (nothing can be frozen, and nothing needs looking at).
pub type FrozenProbe = dyn Fn() -> Option<Vec<Option<u64>>> + Send + Sync;

/// The events of one server: where requests publish and watchers subscribe. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    hub: Arc<Hub>,
}

struct Hub {
    watchers: Mutex<Vec<Subscriber>>,
    /// How many watchers there are: publishing with none is one load.
    count: AtomicUsize,
    buffer: usize,
    max_watchers: usize,
    /// How long one write to a watcher may take (`config::WATCHER_WRITE_STALL`).
    stall: Duration,
    next_id: AtomicU64,
    closed: AtomicBool,
    frozen: Option<Frozen>,
}

/// The event loops' heartbeats, looked at by one thread for every watcher — every
/// [`FROZEN_CHECK`] while some watcher watches and some loop holds a connection, never otherwise.
struct Frozen {
    probe: Box<FrozenProbe>,
    /// Each loop's state as last published, for a watcher that joins mid-freeze.
    now: Mutex<Vec<Option<u64>>>,
    thread: std::sync::OnceLock<std::thread::Thread>,
}

struct Subscriber {
    id: u64,
    tx: SyncSender<Message>,
    missed: Arc<AtomicU64>,
    /// The watcher's connection, to see whether it is still there when the watchers are full.
    socket: Option<Arc<TcpStream>>,
}

/// What a watcher's thread is sent.
#[derive(Debug, Clone)]
enum Message {
    Step(Event),
    /// Its client has closed the connection: the stream is over.
    HungUp,
    /// Loop `worker` froze (`Some(since_us)`) or thawed (`None`), at `t_us`.
    Loop {
        worker: usize,
        since_us: Option<u64>,
        t_us: u64,
    },
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("watchers", &self.hub.count.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Events {
    /// The events of a server configured by `config` (`--max-watchers`, and each watcher's
    /// buffer and write stall); `frozen` tells which loops are frozen (the event-loop twin's
    /// heartbeats).
    pub fn new(config: &Config, frozen: Option<Box<FrozenProbe>>) -> Events {
        Events::with(
            config.events_buffer,
            config.max_watchers,
            config.events_stall,
            frozen,
        )
    }

    fn with(
        buffer: usize,
        max_watchers: usize,
        stall: Duration,
        frozen: Option<Box<FrozenProbe>>,
    ) -> Events {
        Events {
            hub: Arc::new(Hub {
                watchers: Mutex::new(Vec::new()),
                count: AtomicUsize::new(0),
                buffer: buffer.max(1),
                max_watchers,
                stall,
                next_id: AtomicU64::new(1),
                closed: AtomicBool::new(false),
                frozen: frozen.map(|probe| Frozen {
                    probe,
                    now: Mutex::new(Vec::new()),
                    thread: std::sync::OnceLock::new(),
                }),
            }),
        }
    }

    /// Tell every watcher. Never blocks on a watcher: one that is behind loses this event.
    pub fn publish(&self, event: impl FnOnce() -> Event) {
        if self.hub.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        self.send(Message::Step(event()));
    }

    fn send(&self, message: Message) {
        let Ok(mut watchers) = self.hub.watchers.lock() else {
            return;
        };
        watchers.retain(|w| match w.tx.try_send(message.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                w.missed.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
        self.hub.count.store(watchers.len(), Ordering::Relaxed);
    }

    /// Step `kind` of request `id` for `target`, now. Like every publish, it builds nothing when
    /// nobody watches: the request path pays one atomic load.
    pub fn step(&self, kind: Kind, id: &Arc<str>, target: &str, worker: Option<usize>) {
        self.publish(|| Event::new(kind, id, target, worker, SystemTime::now()));
    }

    /// `finished`: the response's status, `elapsed` since pick-up.
    pub fn finished(
        &self,
        id: &Arc<str>,
        target: &str,
        worker: Option<usize>,
        status: u16,
        elapsed: Duration,
    ) {
        self.publish(|| {
            Event::new(Kind::Finished, id, target, worker, SystemTime::now()).ended(status, elapsed)
        });
    }

    /// `finished` 503 with `"shed": true`: request `id` was turned away at once over a limit, by
    /// no worker.
    pub fn shed(&self, id: &Arc<str>, target: &str) {
        self.publish(|| {
            let mut event = Event::new(Kind::Finished, id, target, None, SystemTime::now())
                .ended(503, Duration::ZERO);
            event.shed = true;
            event
        });
    }

    /// A loop may have begun holding connections: the frozen-loop watch looks again (it sleeps
    /// while every loop is idle). Costs nothing when nobody has ever watched.
    pub fn loops_busy(&self) {
        if let Some(thread) = self.hub.frozen.as_ref().and_then(|f| f.thread.get()) {
            thread.unpark();
        }
    }

    /// The drain: every stream ends (after what it has already been sent), and no new one begins.
    pub fn close(&self) {
        self.hub.closed.store(true, Ordering::SeqCst);
        if let Ok(mut watchers) = self.hub.watchers.lock() {
            // Each hang-up waiter wakes and says so, behind the events already queued.
            for w in watchers.iter() {
                if let Some(socket) = &w.socket {
                    let _ = socket.shutdown(std::net::Shutdown::Read);
                }
            }
            watchers.clear();
            self.hub.count.store(0, Ordering::Relaxed);
        }
        self.loops_busy();
    }

    /// A place for a new watcher on `socket`, or the answer that refuses it: the JSON 503 when
    /// `--max-watchers` are watching already (watchers whose clients have gone are let go
    /// first), the drain's 503 once the server drains.
    pub fn subscribe(&self, socket: Option<Arc<TcpStream>>) -> Result<Watcher, Reply> {
        let (tx, rx) = mpsc::sync_channel(self.hub.buffer);
        let missed = Arc::new(AtomicU64::new(0));
        let mut watchers = self
            .hub
            .watchers
            .lock()
            .map_err(|_| Reply::shutting_down())?;
        // Checked under the lock, so that `close` cannot miss a watcher.
        if self.hub.closed.load(Ordering::SeqCst) {
            return Err(Reply::shutting_down());
        }
        if watchers.len() >= self.hub.max_watchers {
            watchers.retain(|w| {
                !w.socket
                    .as_deref()
                    .is_some_and(crate::platform::peer_closed)
            });
        }
        if watchers.len() >= self.hub.max_watchers {
            return Err(Reply::overloaded("--max-watchers", self.hub.max_watchers));
        }
        let id = self.hub.next_id.fetch_add(1, Ordering::Relaxed);
        watchers.push(Subscriber {
            id,
            tx: tx.clone(),
            missed: missed.clone(),
            socket: socket.clone(),
        });
        self.hub.count.store(watchers.len(), Ordering::Relaxed);
        drop(watchers);
        self.start_frozen_watch();
        Ok(Watcher {
            events: self.clone(),
            id,
            rx,
            hang_up: Some(tx),
            missed,
            socket,
        })
    }

    /// A watcher is done: its place, buffer and thread are given back now, not at the next
    /// publish (an idle server publishes nothing).
    fn unsubscribe(&self, id: u64) {
        if let Ok(mut watchers) = self.hub.watchers.lock() {
            watchers.retain(|w| w.id != id);
            self.hub.count.store(watchers.len(), Ordering::Relaxed);
        }
    }

    /// The one thread that looks at the loops' heartbeats for every watcher (event-loop twin).
    fn start_frozen_watch(&self) {
        let Some(frozen) = &self.hub.frozen else {
            return;
        };
        if frozen.thread.get().is_some() {
            return self.loops_busy();
        }
        let events = self.clone();
        let started = std::thread::Builder::new()
            .name("events-frozen".into())
            .spawn(move || events.watch_frozen());
        match started {
            Ok(handle) => {
                let _ = frozen.thread.set(handle.thread().clone());
            }
            Err(e) => tracing::warn!("cannot start the frozen-loop watch: {e}"),
        }
    }

    fn watch_frozen(&self) {
        let Some(frozen) = &self.hub.frozen else {
            return;
        };
        loop {
            if self.hub.closed.load(Ordering::SeqCst) {
                return;
            }
            let watched = self.hub.count.load(Ordering::Relaxed) > 0;
            let states = if watched { (frozen.probe)() } else { None };
            // Idle, or nobody watching: loops that were frozen are not any more.
            let busy = states.is_some();
            let states = states.unwrap_or_else(|| {
                let known = frozen.now.lock().map_or(0, |now| now.len());
                vec![None; known]
            });
            let changed: Vec<(usize, Option<u64>)> = {
                let Ok(mut now) = frozen.now.lock() else {
                    return;
                };
                now.resize(states.len(), None);
                let changed = states
                    .iter()
                    .zip(now.iter())
                    .enumerate()
                    .filter(|(_, (new, old))| new.is_some() != old.is_some())
                    .map(|(k, (new, _))| (k, *new))
                    .collect();
                *now = states;
                changed
            };
            let t_us = unix_micros(SystemTime::now());
            for (worker, since_us) in changed {
                self.send(Message::Loop {
                    worker,
                    since_us,
                    t_us,
                });
            }
            if busy {
                std::thread::sleep(FROZEN_CHECK);
            } else {
                // Until `loops_busy` (a loop took a connection, a watcher came) or the drain.
                std::thread::park();
            }
        }
    }

    /// Loops frozen now, as last looked at: for a watcher that joins mid-freeze.
    fn frozen_now(&self) -> Vec<(usize, u64)> {
        let Some(frozen) = &self.hub.frozen else {
            return Vec::new();
        };
        frozen.now.lock().map_or(Vec::new(), |now| {
            now.iter()
                .enumerate()
                .filter_map(|(k, since)| since.map(|s| (k, s)))
                .collect()
        })
    }

    /// Serve a watcher on a connection no HTTP server has read yet (the event-loop twin hands
    /// it over before a loop touches it): on a thread of its own, read its request head, then
    /// as [`Watcher::serve`] — or answer the 503 that refuses it.
    pub fn watch_connection(&self, config: &Config, mut stream: TcpStream) {
        let events = self.clone();
        let hello = Reply::index(config).body;
        let config_kind = config.kind;
        let started = std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                let read = limits::skip_head(&mut stream, Duration::from_secs(5))
                    .and_then(|()| stream.try_clone());
                let result = read.and_then(|mut out| {
                    let socket = Arc::new(stream);
                    match events.subscribe(Some(socket.clone())) {
                        Ok(watcher) => watcher.stream(config_kind, &hello, Box::new(out)),
                        Err(reply) => {
                            // As every answer of this twin, and closed after it.
                            let bytes = crate::head::refusal_bytes(&reply, config_kind);
                            out.write_all(&bytes)?;
                            socket.shutdown(std::net::Shutdown::Write)
                        }
                    }
                });
                if let Err(e) = result {
                    tracing::debug!("an events watcher went away: {e}");
                }
            });
        if let Err(e) = started {
            tracing::warn!("cannot start a thread for an events watcher: {e}");
        }
    }
}

/// A watcher's place: its buffer of events, until its thread serves it ([`Watcher::serve`]).
pub struct Watcher {
    events: Events,
    id: u64,
    rx: mpsc::Receiver<Message>,
    /// For the thread that waits for the client to hang up (taken when it starts: the stream
    /// ends when every sender is gone).
    hang_up: Option<SyncSender<Message>>,
    missed: Arc<AtomicU64>,
    socket: Option<Arc<TcpStream>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

impl Watcher {
    /// Serve this watcher on a thread of its own: the response head, `hello`, then every event
    /// until the watcher goes away or the server drains. `out` is the connection.
    pub fn serve(self, config: &Config, out: Box<dyn Write + Send>) {
        let hello = Reply::index(config).body;
        let kind = config.kind;
        let started = std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                if let Err(e) = self.stream(kind, &hello, out) {
                    tracing::debug!("an events watcher went away: {e}");
                }
            });
        if let Err(e) = started {
            tracing::warn!("cannot start a thread for an events watcher: {e}");
        }
    }

    fn stream(
        self,
        kind: crate::route::ServerKind,
        hello: &str,
        out: Box<dyn Write + Send>,
    ) -> io::Result<()> {
        let (events, id, socket) = (self.events.clone(), self.id, self.socket.clone());
        let streamed = self.write_events(kind, hello, out);
        // Done (the client went, the drain, a stall): its place and buffer go now, and the
        // thread waiting for the client to hang up is released.
        events.unsubscribe(id);
        if let Some(socket) = socket {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
        streamed
    }

    fn write_events(
        mut self,
        kind: crate::route::ServerKind,
        hello: &str,
        out: Box<dyn Write + Send>,
    ) -> io::Result<()> {
        // With no socket to watch the sender goes here: the stream ends when the hub lets go.
        if let (Some(socket), Some(tell)) = (&self.socket, self.hang_up.take()) {
            wait_for_hang_up(socket.clone(), tell);
            // Little kernel memory for a watcher that stops reading: its buffer here is what
            // counts, and WATCHER_WRITE_STALL lets it go.
            let _ = socket2::SockRef::from(&**socket).set_send_buffer_size(64 * 1024);
        }
        let out = Stall {
            out,
            socket: self.socket.clone(),
            limit: self.events.hub.stall,
            since: None,
        };
        let mut out = io::BufWriter::new(out);
        out.write_all(head(kind).as_bytes())?;
        write_event(&mut out, EventName::Hello, hello.trim_end())?;
        for (worker, since_us) in self.events.frozen_now() {
            let t_us = unix_micros(SystemTime::now());
            let message = Message::Loop {
                worker,
                since_us: Some(since_us),
                t_us,
            };
            write_message(&mut out, &message)?;
        }
        out.flush()?;
        let mut quiet_since = Instant::now();
        loop {
            // Asleep while nothing happens: woken by an event, to tell a loss, or to say it is
            // still here (which also finds out that a watcher has gone).
            let behind = self.missed.load(Ordering::Relaxed) > 0;
            let wait = if behind {
                LAGGED_CHECK
            } else {
                KEEP_ALIVE.saturating_sub(quiet_since.elapsed())
            };
            match self.rx.recv_timeout(wait) {
                Ok(message) => {
                    lagged(&mut out, &self.missed)?;
                    // Whatever else has queued goes out in the same write — up to a hang-up,
                    // after which there is nobody to write to.
                    let queued = self.rx.try_iter().take(256);
                    let mut batch = 0;
                    for message in std::iter::once(message).chain(queued) {
                        if let Message::HungUp = message {
                            return out.flush();
                        }
                        write_message(&mut out, &message)?;
                        batch += 1;
                    }
                    out.flush()?;
                    quiet_since = Instant::now();
                    if batch >= BUSY_BATCH {
                        // Events come thick and fast: let the next ones gather for a moment.
                        // While this thread sleeps rather than waits, a request's publishing
                        // wakes nobody (a wake-up per event cost the requests a third of their
                        // throughput at zero wait); the page draws every 30 ms anyway.
                        std::thread::sleep(BUSY_PAUSE);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    // What it lost with nothing after it is told too, not only before the next.
                    lagged(&mut out, &self.missed)?;
                    if quiet_since.elapsed() >= KEEP_ALIVE {
                        out.write_all(b": still here\n\n")?;
                        quiet_since = Instant::now();
                    }
                    out.flush()?;
                }
                Err(RecvTimeoutError::Disconnected) => return out.flush(),
            }
        }
    }
}

/// A watcher sends nothing after its request, so a read on its connection waits — asleep, at no
/// cost — until the client closes it (or the stream ends and shuts the socket): then the
/// watcher's thread is told at once, instead of at its next write.
fn wait_for_hang_up(socket: Arc<TcpStream>, tell: SyncSender<Message>) {
    let started = std::thread::Builder::new()
        .name("events-hangup".into())
        .spawn(move || {
            use std::io::{ErrorKind, Read};
            // The HTTP layer may have left a read timeout on the socket (the pool's tiny_http
            // times the reading of a head): a watcher's wait has none.
            let _ = socket.set_read_timeout(None);
            let mut buf = [0u8; 64];
            loop {
                match (&*socket).read(&mut buf) {
                    Ok(0) => break,
                    // Bytes after the request (a pipelined request nobody will answer): ignored.
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                        ) => {}
                    Err(_) => break,
                }
            }
            let _ = tell.try_send(Message::HungUp);
        });
    if let Err(e) = started {
        tracing::debug!("cannot watch for an events watcher hanging up: {e}");
    }
}

fn lagged(out: &mut impl Write, missed: &AtomicU64) -> io::Result<()> {
    let n = missed.swap(0, Ordering::Relaxed);
    if n > 0 {
        let data = json!({ "missed": n, "t_us": unix_micros(SystemTime::now()) });
        write_event(out, EventName::Lagged, &data.to_string())?;
    }
    Ok(())
}

fn write_message(out: &mut impl Write, message: &Message) -> io::Result<()> {
    match message {
        Message::Step(event) => write_event(out, event.kind.name(), &event.data()),
        Message::HungUp => Ok(()),
        Message::Loop {
            worker,
            since_us: Some(since_us),
            t_us,
        } => {
            let data = json!({
                "worker": reply::worker_name(*worker),
                "since_us": since_us,
                "t_us": t_us,
            });
            write_event(out, EventName::Frozen, &data.to_string())
        }
        Message::Loop {
            worker,
            since_us: None,
            t_us,
        } => {
            let data = json!({ "worker": reply::worker_name(*worker), "t_us": t_us });
            write_event(out, EventName::Thawed, &data.to_string())
        }
    }
}

/// A watcher's connection, where one write may take at most `events_stall` (or the test's): each write gets
/// what is left of that time (a watcher that reads a little now and then does not reset it);
/// a flush that completes starts it again.
struct Stall {
    out: Box<dyn Write + Send>,
    socket: Option<Arc<TcpStream>>,
    limit: Duration,
    since: Option<Instant>,
}

impl Write for Stall {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let since = *self.since.get_or_insert_with(Instant::now);
        let left = self.limit.saturating_sub(since.elapsed());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the watcher stopped reading",
            ));
        }
        if let Some(socket) = &self.socket {
            socket.set_write_timeout(Some(left))?;
        }
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.since = None;
        Ok(())
    }
}

/// The response head, with the `Server` and `Date` every answer has: the stream ends when the
/// connection closes.
fn head(kind: crate::route::ServerKind) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
         Server: {}\r\nDate: {}\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\n\
         retry: 1000\n\n",
        crate::head::server(kind),
        crate::head::http_date(SystemTime::now())
    )
}

fn write_event(out: &mut impl Write, name: EventName, data: &str) -> io::Result<()> {
    write!(out, "event: {}\ndata: {data}\n\n", name.as_str())
}

/// The route an event names: the request's path, cut to a sane length.
pub fn route_of(target: &str) -> Arc<str> {
    let path = crate::request::split_target(target).0;
    let mut end = path.len().min(128);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    path[..end].into()
}

/// Is this head a `GET /events` (the whole path, any query)? For a server that must recognise the
/// stream before handing a connection to a worker.
/// `None`: too few bytes yet to tell.
pub fn is_events_request(head: &[u8]) -> Option<bool> {
    const WANT: &[u8] = b"GET /events";
    let n = WANT.len().min(head.len());
    if head[..n] != WANT[..n] {
        return Some(false);
    }
    match head.get(WANT.len()) {
        None => None,
        Some(b' ' | b'?') => Some(true),
        Some(_) => Some(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WATCHER_WRITE_STALL;

    fn ev(events: &Events, n: u64) {
        events.publish(|| Event {
            kind: Kind::Queued,
            id: format!("r{n}").into(),
            route: "/io".into(),
            worker: None,
            t_us: n,
            status: None,
            elapsed_us: None,
            shed: false,
        });
    }

    fn times(w: &Watcher) -> Vec<u64> {
        w.rx.try_iter()
            .filter_map(|m| match m {
                Message::Step(e) => Some(e.t_us),
                Message::Loop { .. } | Message::HungUp => None,
            })
            .collect()
    }

    #[test]
    fn a_watcher_behind_loses_events_counted_and_publishing_never_blocks() {
        let events = Events::with(4, 8, WATCHER_WRITE_STALL, None);
        let w = events.subscribe(None).expect("open");
        for n in 0..10 {
            ev(&events, n);
        }
        assert_eq!(w.missed.load(Ordering::Relaxed), 6);
        assert_eq!(times(&w), [0, 1, 2, 3]);
    }

    #[test]
    fn a_watcher_that_left_is_forgotten_and_a_drain_ends_every_stream() {
        let events = Events::with(4, 8, WATCHER_WRITE_STALL, None);
        drop(events.subscribe(None).expect("open"));
        ev(&events, 1);
        assert_eq!(events.hub.count.load(Ordering::Relaxed), 0);
        let mut w = events.subscribe(None).expect("open");
        // Its hang-up waiter is not started here (no socket): it would have ended at the drain.
        drop(w.hang_up.take());
        events.close();
        assert!(w.rx.recv().is_err());
        assert_eq!(
            events.subscribe(None).map_err(|r| r.status).err(),
            Some(503)
        );
    }

    #[test]
    fn watchers_beyond_the_cap_get_the_503_that_says_it() {
        let events = Events::with(4, 2, WATCHER_WRITE_STALL, None);
        let _held = (events.subscribe(None), events.subscribe(None));
        let refused = events.subscribe(None).expect_err("over the cap");
        assert_eq!(refused.status, 503);
        assert!(
            refused.body.contains("--max-watchers 2"),
            "{}",
            refused.body
        );
    }

    #[test]
    fn the_stream_is_recognised_from_its_first_bytes() {
        assert_eq!(is_events_request(b"GET /events HTTP/1.1\r\n"), Some(true));
        assert_eq!(is_events_request(b"GET /events?x=1 HTTP/1.1"), Some(true));
        assert_eq!(is_events_request(b"GET /eventsx HTTP/1.1"), Some(false));
        assert_eq!(is_events_request(b"GET /io HTTP/1.1"), Some(false));
        assert_eq!(is_events_request(b"GET /ev"), None);
        assert_eq!(is_events_request(b"GET /events"), None);
    }
}
