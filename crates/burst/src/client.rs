//! Fire N requests at once and time each one.
//!
//! Every request gets its own fresh connection. All connections are opened and handshaken
//! *first*; only when every one is ready are the requests released together, so connection set-up
//! never smears the burst. The release spread (first to last request written) is measured and
//! reported. Every failure — refused, reset, timed out — is a row of its own, never dropped.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::{watch, Barrier, Semaphore};
use twin_core::ServerKind;

/// Where to fire: a parsed `http://host:port/path?query` URL.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub uri: Uri,
    pub host_header: String,
    pub addr: SocketAddr,
}

/// A URL that cannot be fired at, or a server that is not there — one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FireError(pub String);

impl fmt::Display for FireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FireError {}

impl Target {
    /// Parse and resolve `url`. Only `http://` on a host that resolves is accepted; a URL with no
    /// scheme at all (`127.0.0.1:8000/io`) is taken to mean `http://`.
    pub async fn parse(url: &str) -> Result<Target, FireError> {
        let with_scheme;
        let url = if url.contains("://") {
            url
        } else {
            with_scheme = format!("http://{url}");
            &with_scheme
        };
        let bad = |why: &str| FireError(format!("bad URL {url:?}: {why}"));
        let uri: Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(bad(&format!(
                    "scheme {other}: only http:// is supported (the twins speak plain HTTP), \
                     e.g. http://127.0.0.1:8000/io"
                )))
            }
            None => return Err(bad("it needs http://, e.g. http://127.0.0.1:8000/io")),
        }
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let port = uri.port_u16().unwrap_or(80);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| bad(&format!("cannot resolve {host}: {e}")))?
            .next()
            .ok_or_else(|| bad(&format!("{host} has no address")))?;
        let host_header = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_else(|| host.to_owned());
        Ok(Target {
            url: url.to_owned(),
            uri,
            host_header,
            addr,
        })
    }

    /// The same server with another path and query, e.g. `/` to read its configuration.
    pub fn with_path(&self, path_and_query: &str) -> Result<Target, FireError> {
        let url = format!("http://{}{}", self.host_header, path_and_query);
        let uri: Uri = url
            .parse()
            .map_err(|e| FireError(format!("bad URL {url:?}: {e}")))?;
        Ok(Target {
            url,
            uri,
            host_header: self.host_header.clone(),
            addr: self.addr,
        })
    }

    fn path_and_query(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A complete response with this status (any status: a 503 is an answer too).
    Http(u16),
    /// No complete response within the timeout.
    Timeout,
    /// No connection: refused, or the connect phase timed out. Nothing was sent.
    Connect(String),
    /// The connection broke after the request was sent, or the response was malformed.
    Io(String),
    /// Given up before its answer came (Ctrl-C, the stage's Esc or `POST /cancel`): its
    /// connection was reset, so a twin that had not picked it up yet skips it.
    Cancelled,
}

impl Outcome {
    /// `ok`, `timeout` or `error`, as the CSV's `outcome` column says.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Http(_) => "ok",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::Connect(_) | Outcome::Io(_) => "error",
        }
    }

    /// What went wrong, for a failed request.
    pub fn error(&self) -> Option<String> {
        match self {
            Outcome::Connect(e) => Some(format!("connect: {e}")),
            Outcome::Io(e) => Some(e.clone()),
            Outcome::Http(_) | Outcome::Timeout | Outcome::Cancelled => None,
        }
    }
}

/// One request's account. Times are since the release, so they line up across requests.
#[derive(Debug, Clone, Serialize)]
pub struct RequestResult {
    /// 0-based, in the order connections were opened.
    pub index: usize,
    /// When it was due: the release for a burst (zero); `index / rate` for open-loop traffic.
    pub scheduled: Duration,
    /// When the request was written.
    pub sent: Duration,
    /// When the response head arrived.
    pub first_byte: Option<Duration>,
    /// When the response was complete.
    pub done: Option<Duration>,
    pub status: Option<u16>,
    pub bytes: u64,
    /// The server's `X-Worker`.
    pub worker: Option<String>,
    /// The server's own time for the request, from `Server-Timing: app;dur=…`.
    pub server_ms: Option<f64>,
    /// The part of `server_ms` spent waiting for a thread-pool slot (`pool-wait;dur=…`, the
    /// event-loop twin's `/io`): waiting, not service.
    pub pool_wait_ms: Option<f64>,
    /// CPU time the server's work took (`cpu;dur=…`, on `/cpu`).
    pub cpu_ms: Option<f64>,
    pub outcome: Outcome,
}

impl RequestResult {
    /// A request not sent yet: nothing measured, nothing gone wrong.
    pub fn new(index: usize) -> RequestResult {
        RequestResult {
            index,
            scheduled: Duration::ZERO,
            sent: Duration::ZERO,
            first_byte: None,
            done: None,
            status: None,
            bytes: 0,
            worker: None,
            server_ms: None,
            pool_wait_ms: None,
            cpu_ms: None,
            // Not sent yet: becomes an answer, a timeout or an error.
            outcome: Outcome::Io("not sent".to_owned()),
        }
    }

    /// Client-side latency: written to complete.
    pub fn latency(&self) -> Option<Duration> {
        self.done.map(|d| d.saturating_sub(self.sent))
    }

    /// Latency from when it was due: what a user who wanted it then waited. A client that
    /// sent it late (a closed loop waiting on an earlier answer) cannot hide that time.
    pub fn from_schedule(&self) -> Option<Duration> {
        self.done.map(|d| d.saturating_sub(self.scheduled))
    }

    /// How long the request was being served: the server's own time less any wait for a
    /// thread-pool slot inside it.
    pub fn served(&self) -> Option<Duration> {
        let ms = self.server_ms? - self.pool_wait_ms.unwrap_or(0.0);
        Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0))
    }

    /// When serving began, since the release: the one definition every view draws from.
    pub fn service_started(&self) -> Option<Duration> {
        Some(self.done?.saturating_sub(self.served()?).max(self.sent))
    }

    /// Time spent waiting rather than being served: for a worker, a loop or a thread-pool slot.
    pub fn waiting(&self) -> Option<Duration> {
        Some(self.service_started()?.saturating_sub(self.sent))
    }

    /// Answered with a 2xx. Anything else — a 400, a drain's 503, no answer — failed, for the
    /// lesson: `burst` counts it, shows it and exits 1.
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Http(status) if (200..300).contains(&status))
    }
}

/// A whole burst.
#[derive(Debug, Clone, Serialize)]
pub struct Burst {
    pub url: String,
    pub n: usize,
    /// This burst's run id: request `i` was sent with `X-Request-Id: {run}-{i}`, the id the
    /// server's `/events` and response name it by.
    pub run: String,
    /// The release, in µs since the Unix epoch: the server's event times line up with it.
    pub released_unix_us: u64,
    /// From the first request written to the last: how "at once" the burst really was.
    pub release_spread: Duration,
    /// From the release until the last request ended.
    pub wall: Duration,
    pub results: Vec<RequestResult>,
}

impl Burst {
    /// The time the burst covers: from the release to the last completion (or the wall time,
    /// if that is later — a timed-out request ends the burst without completing).
    pub fn span(&self) -> Duration {
        self.results
            .iter()
            .filter_map(|r| r.done)
            .max()
            .unwrap_or(self.wall)
            .max(self.wall)
    }
}

/// How to fire.
#[derive(Debug, Clone)]
pub struct FireOptions {
    pub n: usize,
    /// Per request, from the release.
    pub timeout: Duration,
    /// Counts requests as they end, for a progress line while a long burst runs.
    pub ended: Option<Arc<AtomicUsize>>,
    /// The response header that names the worker (`X-Worker` on the twins).
    pub worker_header: Arc<str>,
    /// The run id the requests' `X-Request-Id`s begin with; `None` makes a new one.
    pub run: Option<Arc<str>>,
    /// Becomes `true` to give up on every request still waiting for its answer.
    pub cancel: Option<watch::Receiver<bool>>,
}

/// A way to give up on a burst under way: [`Cancel::cancel`] ends every request still waiting
/// for its answer, as [`Outcome::Cancelled`].
#[derive(Debug, Clone)]
pub struct Cancel(Arc<watch::Sender<bool>>);

impl Default for Cancel {
    fn default() -> Cancel {
        Cancel(Arc::new(watch::channel(false).0))
    }
}

impl Cancel {
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// What a burst watches (for [`FireOptions::cancel`]).
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }
}

/// Until `cancel` says so (never, without one).
async fn cancelled(cancel: Option<watch::Receiver<bool>>) {
    match cancel {
        Some(mut rx) => {
            if rx.wait_for(|c| *c).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Now, in µs since the Unix epoch: the clock the twins' events use.
pub fn unix_us_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A new run id: unique per run (a burst of a `burst` process, or a stage's press of a key), short
/// enough to read in a log: the process id and the clock, in base 36.
pub fn run_id() -> String {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64 % 1_000_000_000);
    let seq = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}{}{}",
        base36(u64::from(std::process::id())),
        base36(now),
        base36(seq)
    )
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The twins' worker header.
pub const WORKER_HEADER: &str = "x-worker";

/// How long the connect phase (all connections, before the release) may take for one request.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Connections opened at once while preparing: more would overflow the server's SYN queue and
/// cost 1 s retransmits, which is slow but does not touch the burst itself.
const CONNECT_CONCURRENCY: usize = 256;

/// Open N connections, then release N requests at once; wait for all of them (or the timeout).
///
/// Errors only when not a single connection could be opened (nothing is listening).
pub async fn fire(target: &Target, opts: FireOptions) -> Result<Burst, FireError> {
    let mut bursts = fire_together(vec![(target.clone(), opts)]).await;
    bursts
        .pop()
        .unwrap_or_else(|| Err(FireError("nothing was fired".to_owned())))
}

/// Several bursts released at the same instant (the stage's "both"): every connection of every
/// burst is opened first, then all requests are written together.
pub async fn fire_together(bursts: Vec<(Target, FireOptions)>) -> Vec<Result<Burst, FireError>> {
    let total: usize = bursts.iter().map(|(_, o)| o.n).sum();
    let ready = Arc::new(Barrier::new(total + 1));
    let (go_tx, go_rx) = watch::channel::<Option<Instant>>(None);
    let connects = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut all = Vec::with_capacity(bursts.len());
    for (target, opts) in bursts {
        let target = Arc::new(target);
        let run: Arc<str> = opts.run.clone().unwrap_or_else(|| run_id().into());
        let mut tasks = Vec::with_capacity(opts.n);
        for index in 0..opts.n {
            let target = target.clone();
            let ready = ready.clone();
            let go = go_rx.clone();
            let connects = connects.clone();
            let (timeout, ended) = (opts.timeout, opts.ended.clone());
            let header = opts.worker_header.clone();
            let id = format!("{run}-{index}");
            let cancel = opts.cancel.clone();
            tasks.push(tokio::spawn(async move {
                let exchange = Exchange {
                    timeout,
                    worker_header: &header,
                    cancel,
                };
                let r = one_request(index, &id, &target, &ready, go, &connects, exchange).await;
                if let Some(ended) = ended {
                    ended.fetch_add(1, Ordering::Relaxed);
                }
                r
            }));
        }
        all.push((target, run, tasks));
    }
    ready.wait().await;
    let release = Instant::now();
    let released_unix_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let _ = go_tx.send(Some(release));
    // Each burst is collected on its own, so its wall time is its own, not the slowest one's.
    let collectors: Vec<_> = all
        .into_iter()
        .map(|(target, run, tasks)| {
            tokio::spawn(async move {
                let mut results = Vec::with_capacity(tasks.len());
                for (index, task) in tasks.into_iter().enumerate() {
                    results.push(task.await.unwrap_or_else(|e| RequestResult {
                        outcome: Outcome::Io(format!("task failed: {e}")),
                        ..RequestResult::new(index)
                    }));
                }
                let wall = release.elapsed();
                finish(&target, run.to_string(), released_unix_us, wall, results)
            })
        })
        .collect();
    let mut out = Vec::with_capacity(collectors.len());
    for collector in collectors {
        out.push(
            collector
                .await
                .unwrap_or_else(|e| Err(FireError(format!("a burst's task failed: {e}")))),
        );
    }
    out
}

/// One burst's account, or the error that nothing was listening at all.
fn finish(
    target: &Target,
    run: String,
    released_unix_us: u64,
    wall: Duration,
    results: Vec<RequestResult>,
) -> Result<Burst, FireError> {
    let n = results.len();
    let refused = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Connect(_)))
        .count();
    if n > 0 && refused == n {
        let why = results[0].outcome.error().unwrap_or_default();
        return Err(FireError(format!(
            "cannot connect to {} ({why}): nothing is listening there; start a twin first: {}",
            target.url,
            start_hint(target.addr.port())
        )));
    }
    let sent: Vec<Duration> = results
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Connect(_)))
        .map(|r| r.sent)
        .collect();
    let release_spread = match (sent.iter().min(), sent.iter().max()) {
        (Some(a), Some(b)) => *b - *a,
        _ => Duration::ZERO,
    };
    Ok(Burst {
        url: target.url.clone(),
        n,
        run,
        released_unix_us,
        release_spread,
        wall,
        results,
    })
}

/// How one request waits for its answer.
struct Exchange<'a> {
    timeout: Duration,
    worker_header: &'a str,
    cancel: Option<watch::Receiver<bool>>,
}

async fn one_request(
    index: usize,
    id: &str,
    target: &Target,
    ready: &Barrier,
    mut go: watch::Receiver<Option<Instant>>,
    connects: &Semaphore,
    how: Exchange<'_>,
) -> RequestResult {
    let mut result = RequestResult::new(index);
    // Prepare: connect and handshake before the release — within a time limit of its own, so a
    // server that accepts slowly cannot hang the burst before it starts.
    let prepared = async {
        let _permit = connects.acquire().await.map_err(|e| e.to_string())?;
        prepare(target, id).await
    }
    .await;
    ready.wait().await;
    let release = loop {
        if let Some(at) = *go.borrow_and_update() {
            break at;
        }
        if go.changed().await.is_err() {
            break Instant::now();
        }
    };
    match prepared {
        Ok((sender, request)) => exchange(sender, request, release, how, &mut result).await,
        Err(e) => result.outcome = Outcome::Connect(e),
    }
    result
}

/// A connection to `target`, handshaken, and the request to send on it.
async fn prepare(
    target: &Target,
    id: &str,
) -> Result<(SendRequest<Empty<Bytes>>, Request<Empty<Bytes>>), String> {
    let connect = async {
        let stream = TcpStream::connect(target.addr)
            .await
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        // Closed with a reset, not a FIN: a request given up on (Ctrl-C, a timeout, the stage's
        // Esc) is then one a twin skips rather than serves to nobody (a FIN could be a client
        // that only stopped sending and still waits for its answer). No TIME_WAIT is left
        // behind either, for bursts of thousands.
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        hyper::client::conn::http1::handshake(TokioIo::new(NoFin(stream)))
            .await
            .map_err(|e| e.to_string())
    };
    let (sender, conn) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()))??;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = Request::get(target.path_and_query())
        .header("Host", target.host_header.as_str())
        .header("User-Agent", concat!("burst/", env!("CARGO_PKG_VERSION")))
        .header("X-Request-Id", id)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    Ok((sender, request))
}

/// Send `request` now and wait for its answer, its timeout or the cancel; times are since
/// `clock`, and the timeout runs from `clock` too.
async fn exchange(
    mut sender: SendRequest<Empty<Bytes>>,
    request: Request<Empty<Bytes>>,
    clock: Instant,
    how: Exchange<'_>,
    result: &mut RequestResult,
) {
    let Exchange {
        timeout,
        worker_header,
        cancel,
    } = how;
    result.sent = clock.elapsed();
    let deadline = tokio::time::Instant::from_std(clock + timeout);
    let answer = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        result.first_byte = Some(clock.elapsed());
        result.status = Some(response.status().as_u16());
        let headers = response.headers();
        result.worker = headers
            .get(worker_header)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let timing = headers
            .get("server-timing")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        result.server_ms = server_timing(timing, "app");
        result.pool_wait_ms = server_timing(timing, "pool-wait");
        result.cpu_ms = server_timing(timing, "cpu");
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        result.bytes = body.to_bytes().len() as u64;
        result.done = Some(clock.elapsed());
        Ok::<(), String>(())
    };
    let outcome = tokio::select! {
        biased;
        () = cancelled(cancel) => None,
        answered = tokio::time::timeout_at(deadline, answer) => Some(answered),
    };
    result.outcome = match outcome {
        Some(Ok(Ok(()))) => Outcome::Http(result.status.unwrap_or_default()),
        Some(Ok(Err(e))) => Outcome::Io(e),
        Some(Err(_)) => Outcome::Timeout,
        None => {
            result.done = None;
            Outcome::Cancelled
        }
    };
}

/// Open-loop traffic: requests at a fixed rate, whatever the server does.
#[derive(Debug, Clone)]
pub struct SteadyOptions {
    /// Requests a second, λ.
    pub rate: f64,
    /// How long to send for.
    pub duration: Duration,
    /// Per request, from its scheduled send time.
    pub timeout: Duration,
    pub ended: Option<Arc<AtomicUsize>>,
    pub worker_header: Arc<str>,
    pub run: Option<Arc<str>>,
    /// Stops sending, and gives up on every request still waiting.
    pub cancel: Option<watch::Receiver<bool>>,
}

/// When request `i` of open-loop traffic at `rate` for `duration` is due: `i / rate`, for every
/// `i` with `i / rate < duration`.
pub fn schedule(rate: f64, duration: Duration) -> Vec<Duration> {
    let n = (rate * duration.as_secs_f64() - 1e-9).ceil().max(0.0) as usize;
    (0..n)
        .map(|i| Duration::from_secs_f64(i as f64 / rate))
        .collect()
}

/// Send one request every `1/rate` seconds for `duration`, each on a connection of its own
/// opened when it is due, as wrk2 and vegeta do: the schedule never waits for the server (an
/// open loop), so a server that falls behind shows it in every latency measured from the
/// schedule ([`RequestResult::from_schedule`]) — not hidden by a client that waited
/// (coordinated omission). The `Burst`'s times are since the first request was due.
pub async fn fire_steady(target: &Target, opts: SteadyOptions) -> Result<Burst, FireError> {
    let due = schedule(opts.rate, opts.duration);
    let run: Arc<str> = opts.run.clone().unwrap_or_else(|| run_id().into());
    let target = Arc::new(target.clone());
    let start = Instant::now() + Duration::from_millis(20);
    let released_unix_us = unix_us_now() + 20_000;
    let mut tasks = Vec::with_capacity(due.len());
    let mut cancel = opts.cancel.clone();
    for (index, &at) in due.iter().enumerate() {
        let when = tokio::time::Instant::from_std(start + at);
        let stopped = match cancel.as_mut() {
            Some(c) => tokio::select! {
                () = tokio::time::sleep_until(when) => false,
                _ = c.wait_for(|c| *c) => true,
            },
            None => {
                tokio::time::sleep_until(when).await;
                false
            }
        };
        if stopped {
            break;
        }
        let target = target.clone();
        let id = format!("{run}-{index}");
        let (timeout, ended, header) =
            (opts.timeout, opts.ended.clone(), opts.worker_header.clone());
        let cancel = opts.cancel.clone();
        tasks.push(tokio::spawn(async move {
            let mut result = RequestResult::new(index);
            result.scheduled = at;
            let how = Exchange {
                timeout,
                worker_header: &header,
                cancel,
            };
            // The clock is the schedule's: sent, done and the timeout all count from when the
            // first request was due, so a request's latency can be read from when it was due.
            match prepare(&target, &id).await {
                Ok((sender, request)) => exchange(sender, request, start, how, &mut result).await,
                Err(e) => {
                    result.sent = start.elapsed();
                    result.outcome = Outcome::Connect(e);
                }
            }
            if let Some(ended) = ended {
                ended.fetch_add(1, Ordering::Relaxed);
            }
            result
        }));
    }
    let mut results = Vec::with_capacity(due.len());
    for (index, task) in tasks.into_iter().enumerate() {
        results.push(task.await.unwrap_or_else(|e| RequestResult {
            outcome: Outcome::Io(format!("task failed: {e}")),
            ..RequestResult::new(index)
        }));
    }
    // Never sent (Ctrl-C stopped the schedule): each is a row, given up.
    for (index, &at) in due.iter().enumerate().skip(results.len()) {
        results.push(RequestResult {
            scheduled: at,
            sent: at,
            outcome: Outcome::Cancelled,
            ..RequestResult::new(index)
        });
    }
    let wall = start.elapsed();
    let mut burst = finish(&target, run.to_string(), released_unix_us, wall, results)?;
    // Spread from the schedule, not first-to-last: how late the worst request left.
    burst.release_spread = burst
        .results
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Connect(_) | Outcome::Cancelled))
        .map(|r| r.sent.saturating_sub(r.scheduled))
        .max()
        .unwrap_or_default();
    Ok(burst)
}

/// A burst's connection, which ends with the reset its `SO_LINGER` of zero sends when it is
/// closed — never with a FIN first, which hyper sends when it is done with a connection: after a
/// FIN, a server sees only "the client stopped sending", and a later reset is lost on it.
struct NoFin(TcpStream);

impl tokio::io::AsyncRead for NoFin {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for NoFin {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The `dur` of metric `name` in a `Server-Timing` value:
/// `app;dur=1001.3, pool-wait;dur=2.5` → `app` 1001.3, `pool-wait` 2.5.
pub fn server_timing(value: &str, name: &str) -> Option<f64> {
    value.split(',').find_map(|metric| {
        let mut parts = metric.split(';').map(str::trim);
        if parts.next() != Some(name) {
            return None;
        }
        parts
            .find_map(|p| p.strip_prefix("dur="))
            .and_then(|d| d.trim().parse().ok())
    })
}

/// The command that starts a twin of `kind` on `port`: the workspace's release build's binary,
/// not `cargo run -p` (which would build the package again with other features first: half a
/// minute on a laptop); `--port` only where it is not the twin's default.
pub fn start_command(kind: ServerKind, port: u16) -> String {
    let (binary, default) = match kind {
        ServerKind::Pool => ("pool-server", 8000),
        ServerKind::EventLoop => ("async-server", 8001),
    };
    let path = std::path::Path::new("target").join("release").join(binary);
    if port == default {
        format!("{}", path.display())
    } else {
        format!("{} --port {port}", path.display())
    }
}

/// How to start whatever should be listening on `port`: the pool on 8000, the event loop on
/// 8001, as their defaults are; on any other port, either.
pub fn start_hint(port: u16) -> String {
    match port {
        8000 => format!(
            "`{}` (listens on 8000)",
            start_command(ServerKind::Pool, port)
        ),
        8001 => format!(
            "`{}` (listens on 8001)",
            start_command(ServerKind::EventLoop, port)
        ),
        p => format!(
            "`{}` (or `{}`)",
            start_command(ServerKind::Pool, p),
            start_command(ServerKind::EventLoop, p)
        ),
    }
}

/// One plain GET, for reading a server's `GET /`.
pub async fn get(target: &Target, timeout: Duration) -> Result<(u16, String), FireError> {
    let fail = |e: String| FireError(format!("GET {} failed: {e}", target.url));
    let exchange = async {
        let stream = TcpStream::connect(target.addr)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = Request::get(target.path_and_query())
            .header("Host", target.host_header.as_str())
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((
            status,
            String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        ))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| fail("timed out".into()))?
        .map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_values() {
        assert_eq!(server_timing("app;dur=1001.3", "app"), Some(1001.3));
        assert_eq!(server_timing("app; dur=5", "app"), Some(5.0));
        assert_eq!(server_timing("app", "app"), None);
        let both = "app;dur=1001.3, pool-wait;dur=500.5";
        assert_eq!(server_timing(both, "app"), Some(1001.3));
        assert_eq!(server_timing(both, "pool-wait"), Some(500.5));
        assert_eq!(server_timing("app;dur=3", "pool-wait"), None);
    }

    #[test]
    fn a_thread_pool_wait_is_waiting_not_service() {
        let r = RequestResult {
            sent: Duration::from_millis(1),
            done: Some(Duration::from_millis(1001)),
            server_ms: Some(1000.0),
            pool_wait_ms: Some(500.0),
            ..RequestResult::new(0)
        };
        assert_eq!(r.served(), Some(Duration::from_millis(500)));
        assert_eq!(r.service_started(), Some(Duration::from_millis(501)));
        assert_eq!(r.waiting(), Some(Duration::from_millis(500)));
    }

    #[tokio::test]
    async fn a_url_without_a_scheme_means_http() {
        let t = Target::parse("127.0.0.1:8000/io?ms=5").await.unwrap();
        assert_eq!(t.url, "http://127.0.0.1:8000/io?ms=5");
        let e = Target::parse("https://127.0.0.1:8000/io")
            .await
            .unwrap_err();
        assert!(e.0.contains("only http://"), "{e}");
        assert!(start_hint(9000).contains("--port 9000"));
        assert!(start_hint(8001).contains("async-server"));
    }
}
