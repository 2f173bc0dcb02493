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

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::config::Config;
use crate::reply::{self, Reply};
use crate::timefmt::{self, unix_micros};

/// The path of the stream.
pub const PATH: &str = "/events";

/// Events a watcher may fall behind by before it loses some: about 1,300 requests' worth on the
/// pool (three events each), a few hundred kilobytes at most.
pub const BUFFER: usize = 4096;

/// How often a watcher thread looks at the event loops' heartbeats (event-loop twin only).
const FROZEN_CHECK: Duration = Duration::from_millis(10);

/// A comment line now and then keeps proxies and idle-connection reapers from closing the stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

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
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Queued => "queued",
            Kind::PickedUp => "picked-up",
            Kind::Slot => "slot",
            Kind::Finished => "finished",
        }
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
        out.push('}');
        out
    }
}

/// Which loops are frozen now, and since when (µs since the epoch of their last tick).
pub type FrozenProbe = dyn Fn() -> Vec<Option<u64>> + Send + Sync;

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
    next_id: AtomicU64,
    closed: AtomicBool,
    frozen: Option<Box<FrozenProbe>>,
}

struct Subscriber {
    tx: SyncSender<Event>,
    missed: Arc<AtomicU64>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("watchers", &self.hub.count.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Events {
    /// Events with `buffer` events of room per watcher; `frozen` tells which loops are frozen
    /// (the event-loop twin's heartbeats).
    pub fn new(buffer: usize, frozen: Option<Box<FrozenProbe>>) -> Events {
        Events {
            hub: Arc::new(Hub {
                watchers: Mutex::new(Vec::new()),
                count: AtomicUsize::new(0),
                buffer: buffer.max(1),
                next_id: AtomicU64::new(1),
                closed: AtomicBool::new(false),
                frozen,
            }),
        }
    }

    /// Tell every watcher. Never blocks on a watcher: one that is behind loses this event.
    pub fn publish(&self, event: impl FnOnce() -> Event) {
        if self.hub.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let event = event();
        let Ok(mut watchers) = self.hub.watchers.lock() else {
            return;
        };
        watchers.retain(|w| match w.tx.try_send(event.clone()) {
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

    /// A new request id, for a request that came without `X-Request-Id`: unique in this process.
    pub fn new_id(&self, pid: u32) -> String {
        format!("{pid}-{}", self.hub.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// The drain: every stream ends (after what it has already been sent), and no new one begins.
    pub fn close(&self) {
        self.hub.closed.store(true, Ordering::SeqCst);
        if let Ok(mut watchers) = self.hub.watchers.lock() {
            watchers.clear();
            self.hub.count.store(0, Ordering::Relaxed);
        }
    }

    fn subscribe(&self) -> Option<(mpsc::Receiver<Event>, Arc<AtomicU64>)> {
        let (tx, rx) = mpsc::sync_channel(self.hub.buffer);
        let missed = Arc::new(AtomicU64::new(0));
        let mut watchers = self.hub.watchers.lock().ok()?;
        // Checked under the lock, so that `close` cannot miss a watcher.
        if self.hub.closed.load(Ordering::SeqCst) {
            return None;
        }
        watchers.push(Subscriber {
            tx,
            missed: missed.clone(),
        });
        self.hub.count.store(watchers.len(), Ordering::Relaxed);
        Some((rx, missed))
    }

    /// Serve one watcher on a thread of its own: the response head, `hello`, then every event
    /// until the watcher goes away or the server drains. `out` is the connection.
    pub fn watch(&self, config: &Config, out: Box<dyn Write + Send>) {
        let events = self.clone();
        let hello = Reply::index(config).body;
        let started = std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                if let Err(e) = events.stream(&hello, out) {
                    tracing::debug!("an events watcher went away: {e}");
                }
            });
        if let Err(e) = started {
            tracing::warn!("cannot start a thread for an events watcher: {e}");
        }
    }

    /// Serve a watcher on a connection no HTTP server has read yet (the event-loop twin hands
    /// it over before a loop touches it): read its request head, then as [`Events::watch`].
    pub fn watch_connection(&self, config: &Config, mut stream: std::net::TcpStream) {
        let events = self.clone();
        let hello = Reply::index(config).body;
        let started = std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                let read = read_head(&mut stream).and_then(|()| stream.try_clone());
                let result = read.and_then(|out| events.stream(&hello, Box::new(out)));
                if let Err(e) = result {
                    tracing::debug!("an events watcher went away: {e}");
                }
            });
        if let Err(e) = started {
            tracing::warn!("cannot start a thread for an events watcher: {e}");
        }
    }

    fn stream(&self, hello: &str, out: Box<dyn Write + Send>) -> io::Result<()> {
        let mut out = io::BufWriter::new(out);
        out.write_all(HEAD.as_bytes())?;
        let Some((rx, missed)) = self.subscribe() else {
            return out.flush();
        };
        write_event(&mut out, "hello", hello.trim_end())?;
        out.flush()?;
        let tick = if self.hub.frozen.is_some() {
            FROZEN_CHECK
        } else {
            LAGGED_CHECK
        };
        let mut frozen: Vec<Option<u64>> = Vec::new();
        let mut quiet_since = Instant::now();
        loop {
            match rx.recv_timeout(tick) {
                Ok(event) => {
                    self.lagged(&mut out, &missed)?;
                    write_event(&mut out, event.kind.as_str(), &event.data())?;
                    // Whatever else has queued goes out in the same write.
                    for event in rx.try_iter().take(256) {
                        write_event(&mut out, event.kind.as_str(), &event.data())?;
                    }
                    out.flush()?;
                    quiet_since = Instant::now();
                }
                Err(RecvTimeoutError::Timeout) => {
                    // What it lost with nothing after it is told too, not only before the next.
                    if missed.load(Ordering::Relaxed) > 0 {
                        self.lagged(&mut out, &missed)?;
                        out.flush()?;
                    }
                    if quiet_since.elapsed() >= KEEP_ALIVE {
                        out.write_all(b": still here\n\n")?;
                        out.flush()?;
                        quiet_since = Instant::now();
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return out.flush(),
            }
            if let Some(probe) = &self.hub.frozen {
                self.report_frozen(&mut out, probe(), &mut frozen)?;
            }
        }
    }

    fn lagged(&self, out: &mut impl Write, missed: &AtomicU64) -> io::Result<()> {
        let n = missed.swap(0, Ordering::Relaxed);
        if n > 0 {
            let data = json!({ "missed": n, "t_us": unix_micros(SystemTime::now()) });
            write_event(out, "lagged", &data.to_string())?;
        }
        Ok(())
    }

    /// `frozen` / `thawed` for each loop whose state changed since this watcher last looked.
    fn report_frozen(
        &self,
        out: &mut impl Write,
        now: Vec<Option<u64>>,
        seen: &mut Vec<Option<u64>>,
    ) -> io::Result<()> {
        seen.resize(now.len(), None);
        let mut wrote = false;
        for (k, (now, seen)) in now.iter().zip(seen.iter_mut()).enumerate() {
            match (*seen, *now) {
                (None, Some(since_us)) => {
                    let data = json!({
                        "worker": reply::worker_name(k),
                        "since_us": since_us,
                        "t_us": unix_micros(SystemTime::now()),
                    });
                    write_event(out, "frozen", &data.to_string())?;
                    wrote = true;
                }
                (Some(_), None) => {
                    let data = json!({
                        "worker": reply::worker_name(k),
                        "t_us": unix_micros(SystemTime::now()),
                    });
                    write_event(out, "thawed", &data.to_string())?;
                    wrote = true;
                }
                _ => {}
            }
            *seen = *now;
        }
        if wrote {
            out.flush()?;
        }
        Ok(())
    }
}

/// Read (and drop) a watcher's request head, and set the socket up for a stream.
fn read_head(stream: &mut std::net::TcpStream) -> io::Result<()> {
    crate::limits::skip_head(stream, Duration::from_secs(5))?;
    // Little kernel memory for a watcher that stops reading: its buffer here is what counts.
    socket2::SockRef::from(&*stream).set_send_buffer_size(64 * 1024)?;
    // A watcher that stops reading for this long is let go (its thread would wait forever).
    stream.set_write_timeout(Some(Duration::from_secs(30)))
}

/// The response head: the stream ends when the connection closes.
const HEAD: &str = "HTTP/1.1 200 OK\r\n\
Content-Type: text/event-stream\r\n\
Cache-Control: no-store\r\n\
Access-Control-Allow-Origin: *\r\n\
X-Accel-Buffering: no\r\n\
Connection: close\r\n\r\n\
retry: 1000\n\n";

fn write_event(out: &mut impl Write, name: &str, data: &str) -> io::Result<()> {
    write!(out, "event: {name}\ndata: {data}\n\n")
}

/// A request's id: its `X-Request-Id` when it sent a good one, or a new one. A bad one (empty,
/// too long, or with spaces or control characters) gets the 400 at pick-up, under a new id.
pub fn request_id(events: &Events, pid: u32, header: Option<&[u8]>) -> (Arc<str>, Option<Reply>) {
    match header {
        None => (events.new_id(pid).into(), None),
        Some(value) if valid_id(value) => (String::from_utf8_lossy(value).into(), None),
        Some(value) => (
            events.new_id(pid).into(),
            Some(Reply::bad_request_id(&String::from_utf8_lossy(value))),
        ),
    }
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

/// Longest `X-Request-Id` kept.
pub const MAX_ID: usize = 128;

fn valid_id(value: &[u8]) -> bool {
    !value.is_empty() && value.len() <= MAX_ID && value.iter().all(|b| b.is_ascii_graphic())
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

    fn ev(events: &Events, n: u64) {
        events.publish(|| Event {
            kind: Kind::Queued,
            id: format!("r{n}").into(),
            route: "/io".into(),
            worker: None,
            t_us: n,
            status: None,
            elapsed_us: None,
        });
    }

    #[test]
    fn a_watcher_behind_loses_events_counted_and_publishing_never_blocks() {
        let events = Events::new(4, None);
        let (rx, missed) = events.subscribe().expect("open");
        for n in 0..10 {
            ev(&events, n);
        }
        assert_eq!(missed.load(Ordering::Relaxed), 6);
        let kept: Vec<u64> = rx.try_iter().map(|e| e.t_us).collect();
        assert_eq!(kept, [0, 1, 2, 3]);
    }

    #[test]
    fn a_watcher_that_left_is_forgotten_and_a_drain_ends_every_stream() {
        let events = Events::new(4, None);
        let (rx, _) = events.subscribe().expect("open");
        drop(rx);
        ev(&events, 1);
        assert_eq!(events.hub.count.load(Ordering::Relaxed), 0);
        let (rx, _) = events.subscribe().expect("open");
        events.close();
        assert!(rx.recv().is_err());
        assert!(events.subscribe().is_none());
    }

    #[test]
    fn ids_are_kept_made_or_refused() {
        let events = Events::new(4, None);
        assert_eq!(&*request_id(&events, 7, Some(b"run1-3")).0, "run1-3");
        let (made, bad) = request_id(&events, 7, None);
        assert!(made.starts_with("7-") && bad.is_none());
        let (_, bad) = request_id(&events, 7, Some(b"has space"));
        assert_eq!(bad.map(|r| r.status), Some(400));
        assert!(request_id(&events, 7, Some(&[b'a'; MAX_ID + 1]))
            .1
            .is_some());
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
