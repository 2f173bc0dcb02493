//! # The live stage: watch every worker's lane fill, both twins side by side
//!
//! `burst stage` serves one page (default `http://127.0.0.1:8080`). The page *watches*; this
//! server *fires*. It watches the two twins, or up to four named servers (`--target NAME=URL`):
//! the real gunicorn + Flask and uvicorn + FastAPI beside their twins, whose events come through
//! a relay their `/events` answer names (`python/events_relay.py`).
//!
//! | module | its job |
//! |---|---|
//! | this one | the axum app: the page, `GET /feed` (every message, batched), who may fire |
//! | [`relay`] | follows each server's `GET /events` (or the stream it names), checks every event, relays it |
//! | [`request`] | what a press asks for (a burst, or steady traffic), checked; each twin's plan |
//! | [`fire`] | `POST /fire` (fire, check against the model, keep the files), `POST /cancel`, `GET /plan` |
//! | [`steady`] | steady traffic from the stage: both twins at once, each held against its model |
//! | [`replay`] | a burst kept as a recording, played back at its own pace with no twins running |
//!
//! A browser never fires: it sends about 6 requests at a time to one host, and would fake the
//! waves. Firing is for the presenter only: `POST /fire` and `POST /cancel` are refused (a JSON
//! 403) to another origin (`Origin`, `Sec-Fetch-Site`: no web page but the stage's own can fire)
//! and to any other machine (bound to a room's network, the room watches and the presenter's
//! machine fires). Nothing a twin sends is trusted: each event is parsed, checked and written
//! again before a page sees it.
//!
//! Everything the page needs is inside the binary (`stage/`: plain HTML, CSS and JavaScript), so
//! it works in a room with no network.

mod fire;
mod relay;
mod replay;
mod request;
mod steady;

use std::collections::VecDeque;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, Response, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

use crate::client::start_command;
use crate::client::{Cancel, Target};
use crate::experiment::Cell;
use crate::model::ServerInfo;
use twin_core::ServerKind;

pub use replay::Recording;
pub use request::{parse_fire, FireRequest, MAX_N, ROUTES};

const PAGE: &str = include_str!("../../stage/index.html");
const SCRIPT: &str = include_str!("../../stage/stage.js");
const STYLE: &str = include_str!("../../stage/stage.css");

/// Most events relayed to the page in one message.
const BATCH: usize = 512;
/// How long a batch may wait for more events: well inside the 100 ms an event may take to show.
const BATCH_WINDOW: Duration = Duration::from_millis(15);
/// Bursts whose files are kept for the page's links.
const KEEP: usize = 20;
/// Messages kept for a page that connects mid-burst: a burst of 1,000 at both twins is ~8,000.
const REPLAY: usize = 24_000;

/// What a message does to what a page that connects later is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ForLater {
    /// A burst begins: what is kept starts again from this message.
    Restart,
    Keep,
    /// A twin's state (`hello`, `down`): a new page gets the current one instead.
    Skip,
}

/// The most panels the page lays out legibly on a 1280×720 projector (two rows of two).
pub const MAX_PANELS: usize = 4;

/// What the stage watches and fires at.
#[derive(Debug, Clone)]
pub struct StageConfig {
    /// Each server by the name its panel shows, in the page's order (a real stack beside its
    /// twin). `pool` and `event-loop` are the twins' own names.
    pub targets: Vec<(String, Target)>,
    /// Recorded bursts to play instead of watching twins (`burst stage --replay FILE`): for a
    /// rehearsal with no twins running, or a slow projector laptop.
    pub recordings: Vec<Recording>,
    /// Say on stderr what happens (twins coming and going, bursts and their verdicts): for the
    /// presenter's terminal. Off in tests.
    pub narrate: bool,
}

impl StageConfig {
    /// Watch the twins at `pool` and `event_loop`.
    pub fn watching(pool: Target, event_loop: Target) -> StageConfig {
        StageConfig::named(vec![
            ("pool".to_owned(), pool),
            ("event-loop".to_owned(), event_loop),
        ])
    }

    /// Watch each named server (at most [`MAX_PANELS`]; the rest are not shown).
    pub fn named(mut targets: Vec<(String, Target)>) -> StageConfig {
        targets.truncate(MAX_PANELS);
        StageConfig {
            targets,
            recordings: Vec::new(),
            narrate: false,
        }
    }
}

/// Serve the stage on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: StageConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let bound = listener.local_addr()?.ip();
    let stage = Stage::new(config, bound);
    if stage.recordings.is_empty() {
        for i in 0..stage.twins.len() {
            tokio::spawn(relay::follow_twin(stage.clone(), i));
        }
    } else {
        replay::as_recorded(&stage);
    }
    let app = Router::new()
        .route("/", get(page))
        .route(
            "/stage.js",
            get(|| asset(SCRIPT, "text/javascript; charset=utf-8")),
        )
        .route(
            "/stage.css",
            get(|| asset(STYLE, "text/css; charset=utf-8")),
        )
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/feed", get(feed))
        .route("/plan", get(fire::plan))
        .route("/fire", post(fire::fire).get(fire::fire_is_a_post))
        .route("/cancel", post(fire::cancel).get(fire::fire_is_a_post))
        .route("/bursts/{k}/{file}", get(burst_file))
        .fallback(|| async {
            json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": "not found",
                        "paths": ["/", "/feed", "GET /plan", "POST /fire", "POST /cancel",
                                  "/bursts/{k}/{file}"]}),
            )
        })
        .with_state(stage);
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    // The page's feed never ends by itself, so there is nothing to drain: stop at once.
    tokio::select! {
        served = axum::serve(listener, app) => served,
        () = shutdown => Ok(()),
    }
}

/// One watched server: a twin, or a real stack whose `GET /` names where its events are.
#[derive(Debug)]
struct Watched {
    /// Its panel's name (`pool`, `event-loop`, `gunicorn + Flask`, …): fixed for the stage's
    /// life, so kept as a `&'static str` like the twins' own.
    name: &'static str,
    /// The name as a file name: `gunicorn-flask` (its burst's JSON and CSV).
    slug: String,
    /// What kind of server its name says it is (the twins' own names), until its `hello` says.
    named_kind: Option<ServerKind>,
    base: Target,
    /// How to start it, for a panel whose server is not running.
    start: String,
    /// Where its event stream is, when not at `/events` on its own port (a real stack's relay,
    /// as its `/events` answer named it).
    events: Mutex<Option<relay::Stream>>,
    state: Mutex<TwinState>,
}

impl Watched {
    /// Its kind: as its `hello` said, else as its name says.
    fn kind(&self) -> Option<ServerKind> {
        lock(&self.state)
            .info
            .as_ref()
            .map(|i| i.kind)
            .or(self.named_kind)
    }
}

#[derive(Debug, Default, Clone)]
struct TwinState {
    /// Its last `hello` while it is up; `None` while it is down.
    hello: Option<Value>,
    info: Option<ServerInfo>,
    /// Known down (said so to the page), as opposed to not looked at yet; and why.
    down: bool,
    why: Option<String>,
}

#[derive(Debug, Clone)]
struct Stage(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    twins: Vec<Watched>,
    /// The stage's own address: a connection from it (or from loopback) is the presenter's.
    bound: IpAddr,
    /// Every message for the pages, as JSON text.
    feed: broadcast::Sender<Arc<str>>,
    bursts: Mutex<VecDeque<Stored>>,
    /// The latest burst of each twin × route × N, for the completion chart of all bursts of an N.
    cells: Mutex<Vec<Cell>>,
    /// Every message since the stage's last burst began (its `firing`, events, `result`, and
    /// whatever came after from elsewhere), for a page that connects or reloads meanwhile — it
    /// draws the same picture — and for the burst's recording. Held under this lock while sent,
    /// so a new page misses nothing and gets nothing twice.
    kept: Mutex<Kept>,
    next_burst: AtomicUsize,
    /// One burst at a time: two would share the machine and spoil both.
    firing: Arc<tokio::sync::Mutex<()>>,
    /// The running burst's way out (`POST /cancel`, Esc on the page).
    cancel: Mutex<Option<(usize, Cancel)>>,
    /// `finished` events of the runs being fired, counted, so that a burst's `result` follows
    /// its last request's end on every page, as it does on a page that watched.
    ends: Mutex<Vec<relay::Ends>>,
    ended: tokio::sync::Notify,
    recordings: Vec<Recording>,
    /// Which recording of a route a press plays next (several of the same take turns).
    next_recording: AtomicUsize,
    narrate: bool,
}

#[derive(Debug, Default)]
struct Kept {
    /// When the burst began: the stage's clock and the Unix time in µs.
    began: Option<(Instant, u64)>,
    /// Each message with its time since then, in ms.
    messages: Vec<(u64, Arc<str>)>,
}

#[derive(Debug)]
struct Stored {
    k: usize,
    files: Vec<(String, &'static str, String)>,
}

impl std::ops::Deref for Stage {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Stage {
    fn new(config: StageConfig, bound: IpAddr) -> Stage {
        let twin = |(name, base): (String, Target)| {
            let named_kind = match name.as_str() {
                "pool" => Some(ServerKind::Pool),
                "event-loop" => Some(ServerKind::EventLoop),
                _ => None,
            };
            let start = match named_kind {
                Some(kind) => format!("start it with `{}`", start_command(kind, base.addr.port())),
                None => "start it (scripts/real-stacks.sh --live starts all four)".to_owned(),
            };
            Watched {
                slug: slug(&name),
                // Leaked once per panel at start: the stage lives as long as the process.
                name: Box::leak(name.into_boxed_str()),
                named_kind,
                start,
                base,
                events: Mutex::new(None),
                state: Mutex::new(TwinState::default()),
            }
        };
        // Room for a burst of 1,000 at both twins (about 8,000 events) before a slow page lags.
        let (feed, _) = broadcast::channel(16_384);
        Stage(Arc::new(Inner {
            twins: config.targets.into_iter().map(twin).collect(),
            bound,
            feed,
            bursts: Mutex::new(VecDeque::new()),
            cells: Mutex::new(Vec::new()),
            kept: Mutex::new(Kept::default()),
            next_burst: AtomicUsize::new(1),
            firing: Arc::new(tokio::sync::Mutex::new(())),
            cancel: Mutex::new(None),
            ends: Mutex::new(Vec::new()),
            ended: tokio::sync::Notify::new(),
            recordings: config.recordings,
            next_recording: AtomicUsize::new(0),
            narrate: config.narrate,
        }))
    }

    /// A line for the presenter's terminal.
    fn narrate(&self, line: String) {
        if self.narrate {
            eprintln!("burst stage: {line}");
        }
    }

    /// Tell every page (and keep it for those that come later, as `keep` says).
    fn say(&self, message: &Value, keep: ForLater) {
        self.say_text(message.to_string(), keep);
    }

    /// [`Stage::say`] for a message already written as JSON.
    fn say_text(&self, message: String, keep: ForLater) {
        let message: Arc<str> = message.into();
        let mut kept = lock(&self.kept);
        match keep {
            ForLater::Restart => {
                let now = Instant::now();
                kept.began = Some((now, crate::client::unix_us_now()));
                kept.messages.clear();
                kept.messages.push((0, message.clone()));
            }
            ForLater::Keep if kept.messages.len() < REPLAY => {
                let at = kept
                    .began
                    .map_or(0, |(t, _)| t.elapsed().as_millis() as u64);
                kept.messages.push((at, message.clone()));
            }
            ForLater::Keep | ForLater::Skip => {}
        }
        // No page watching is fine.
        let _ = self.feed.send(message);
    }

    fn twin(&self, name: &str) -> Option<&Watched> {
        self.twins.iter().find(|t| t.name == name)
    }

    /// The panels a press's `at=` names: one by its name; `all` (or `both`); or every server of a
    /// kind (`pool`, `event-loop`) where no panel has that name. Else what is allowed.
    fn select(&self, at: &str) -> Result<Vec<&'static str>, Value> {
        if let Some(twin) = self.twin(at) {
            return Ok(vec![twin.name]);
        }
        let kind = match at {
            "all" | "both" => return Ok(self.twins.iter().map(|t| t.name).collect()),
            "pool" => ServerKind::Pool,
            "event-loop" | "async" => ServerKind::EventLoop,
            _ => {
                let mut allowed: Vec<&str> = self.twins.iter().map(|t| t.name).collect();
                for kind in ["pool", "event-loop", "all"] {
                    if !allowed.contains(&kind) {
                        allowed.push(kind);
                    }
                }
                return Err(json!({"error": "unknown target", "parameter": "at",
                                  "received": at, "allowed": allowed}));
            }
        };
        Ok(self
            .twins
            .iter()
            .filter(|t| t.kind() == Some(kind))
            .map(|t| t.name)
            .collect())
    }

    fn state(&self, twin: &Watched) -> TwinState {
        lock(&twin.state).clone()
    }

    /// Is this connection the presenter's: from this machine?
    fn presenter(&self, peer: SocketAddr) -> bool {
        is_presenter(peer.ip(), self.bound)
    }
}

/// A connection from `peer` to a stage bound to `bound` comes from the stage's own machine:
/// over loopback, or to the one address the stage was bound to from that same address.
fn is_presenter(peer: IpAddr, bound: IpAddr) -> bool {
    let unmapped = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let (peer, bound) = (unmapped(peer), unmapped(bound));
    peer.is_loopback() || (!bound.is_unspecified() && peer == bound)
}

/// Run burst `k` (fired, or replayed) on a task of its own, `cancel` its way out while it runs,
/// and answer with its result. It runs to its end even if the page that asked is closed: every
/// page watching gets its result.
async fn to_the_end(
    stage: &Stage,
    k: usize,
    cancel: Cancel,
    one_at_a_time: tokio::sync::OwnedMutexGuard<()>,
    burst: impl Future<Output = Value> + Send + 'static,
) -> Response<Body> {
    *lock(&stage.cancel) = Some((k, cancel));
    let task = tokio::spawn({
        let stage = stage.clone();
        async move {
            let _one_at_a_time = one_at_a_time;
            let result = burst.await;
            *lock(&stage.cancel) = None;
            result
        }
    });
    match task.await {
        Ok(result) => json_response(StatusCode::OK, &result),
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": "the burst failed", "detail": e.to_string()}),
        ),
    }
}

/// A lock whose holder never panics while holding it (plain data); a poisoned one is still
/// good data.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A name as a file name: lower-case letters and digits, dashes between (`gunicorn-flask`).
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "server".to_owned()
    } else {
        out.to_owned()
    }
}

/// Why a request that fires or cancels is refused, if it is: it comes from another machine, or
/// from a web page of another origin (a page anywhere can send a form or a no-cors `fetch` to
/// this machine; the browser says where it came from). curl sends neither header.
fn refused(stage: &Stage, peer: SocketAddr, headers: &HeaderMap) -> Option<Response<Body>> {
    let forbid = |detail: String| {
        Some(json_response(
            StatusCode::FORBIDDEN,
            &json!({"error": "forbidden", "detail": detail}),
        ))
    };
    if !stage.presenter(peer) {
        return forbid(format!(
            "only the presenter fires: from the machine the stage runs on (http://127.0.0.1:{}); \
             {} can watch",
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.rsplit_once(':'))
                .map_or("8080", |(_, port)| port),
            peer.ip()
        ));
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return forbid(format!(
                "a {site} page cannot fire: only the stage's own page (or curl)"
            ));
        }
    }
    if let Some(origin) = header("origin") {
        let own = header("host").map(|host| format!("http://{host}"));
        if own.as_deref() != Some(origin) {
            return forbid(format!(
                "a page from {origin} cannot fire: only the stage's own page (or curl)"
            ));
        }
    }
    None
}

// ---- the page and its feed ---------------------------------------------------------------------

/// The page, with a panel for each watched server already in it: it shows the right panels from
/// its first paint, before the feed has said anything.
async fn page(State(stage): State<Stage>) -> Response<Body> {
    use twin_core::reply::html_escape as esc;
    let mut sections = String::new();
    for t in &stage.twins {
        let title = match t.name {
            "pool" => "pool",
            "event-loop" => "event loop",
            other => other,
        };
        sections.push_str(&format!(
            "<section class=\"panel\" id=\"panel-{}\" data-twin=\"{}\" data-kind=\"{}\">\
             <div class=\"head\"><h2>{} <small></small></h2>\
             <div class=\"counter\" aria-live=\"polite\"></div><div class=\"what\"></div></div>\
             <div class=\"stage-area\"><canvas></canvas><div class=\"lanes\"></div>\
             <div class=\"down\" hidden></div></div>\
             <div class=\"foot\"><div class=\"verdict\"></div><div class=\"links\"></div></div>\
             </section>\n",
            t.slug,
            esc(t.name),
            t.named_kind.map_or("", |k| k.as_str()),
            esc(title),
        ));
    }
    // Four panels: two rows of two, each a little more compact.
    let four = stage.twins.len() > 2;
    let html = PAGE
        .replace(
            "<main id=\"panels\"></main>",
            &format!(
                "<main id=\"panels\"{}>\n{sections}</main>",
                if four { " class=\"grid\"" } else { "" }
            ),
        )
        .replace(
            "<body>",
            if four {
                "<body class=\"four\">"
            } else {
                "<body>"
            },
        );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(html))
        .unwrap_or_default()
}

async fn asset(text: &'static str, content_type: &'static str) -> Response<Body> {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(text))
        .unwrap_or_default()
}

/// `GET /feed`: what this page may do, what each twin is now, what happened since the last burst
/// began, then every message as it comes, batched.
async fn feed(
    State(stage): State<Stage>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response<Body> {
    let (tx, body) = mpsc::channel::<Bytes>(64);
    let panels: Vec<Value> = stage
        .twins
        .iter()
        .map(|t| {
            json!({"twin": t.name, "kind": t.named_kind.map(|k| k.as_str()),
                        "url": t.base.url})
        })
        .collect();
    let mode = json!({
        "type": "mode",
        "can_fire": stage.presenter(peer),
        "replay": replay::offered(&stage),
        "panels": panels,
    });
    let mut first: Vec<Arc<str>> = vec![mode.to_string().into()];
    for twin in &stage.twins {
        let st = stage.state(twin);
        first.push(match &st.hello {
            Some(hello) => json!({"type": "hello", "twin": twin.name, "data": hello})
                .to_string()
                .into(),
            None if st.down => {
                let why = st.why.as_deref().unwrap_or("not running");
                relay::down_message(twin, why).to_string().into()
            }
            None => continue,
        });
    }
    // Subscribed under the lock of what is kept: what is said from here on comes through `rx`.
    let mut rx = {
        let kept = lock(&stage.kept);
        first.extend(kept.messages.iter().map(|(_, m)| m.clone()));
        stage.feed.subscribe()
    };
    tokio::spawn(async move {
        if tx.send(frame(&first)).await.is_err() {
            return;
        }
        loop {
            let mut batch: Vec<Arc<str>> = Vec::new();
            match rx.recv().await {
                Ok(m) => batch.push(m),
                Err(broadcast::error::RecvError::Lagged(n)) => batch.push(lagged(n)),
                Err(broadcast::error::RecvError::Closed) => return,
            }
            // Gather what else comes within the window, so a burst is a few messages.
            let window = tokio::time::sleep(BATCH_WINDOW);
            tokio::pin!(window);
            while batch.len() < BATCH {
                tokio::select! {
                    _ = &mut window => break,
                    m = rx.recv() => match m {
                        Ok(m) => batch.push(m),
                        Err(broadcast::error::RecvError::Lagged(n)) => batch.push(lagged(n)),
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                }
            }
            // A page that stopped reading fills this channel; then this task waits, and the
            // broadcast counts what the page missed (told as `lagged`).
            if tx.send(frame(&batch)).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::new(Feed(body)))
        .unwrap_or_default()
}

fn lagged(n: u64) -> Arc<str> {
    json!({"type": "lagged", "twin": null, "data": {"missed": n}})
        .to_string()
        .into()
}

/// One SSE message: a JSON array of messages.
fn frame(batch: &[Arc<str>]) -> Bytes {
    let mut s = String::from("data: [");
    for (k, m) in batch.iter().enumerate() {
        if k > 0 {
            s.push(',');
        }
        s.push_str(m);
    }
    s.push_str("]\n\n");
    Bytes::from(s)
}

/// The feed's body: frames from the task above.
struct Feed(mpsc::Receiver<Bytes>);

impl http_body::Body for Feed {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|m| m.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// JSON for a person at a terminal (curl) as much as for a script: indented, one field a line.
fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let text = serde_json::to_string_pretty(body).unwrap_or_else(|_| body.to_string());
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(format!("{text}\n")))
        .unwrap_or_default()
}

/// `GET /bursts/{k}/{file}`: a kept burst's JSON, CSV, chart or recording.
async fn burst_file(
    State(stage): State<Stage>,
    Path((k, file)): Path<(usize, String)>,
) -> Response<Body> {
    let kept = lock(&stage.bursts);
    let burst = kept.iter().find(|s| s.k == k);
    let found = burst.and_then(|s| s.files.iter().find(|(name, _, _)| *name == file));
    if burst.is_some() && found.is_none() {
        let files: Vec<&str> = burst
            .map(|s| s.files.iter().map(|(f, _, _)| f.as_str()).collect())
            .unwrap_or_default();
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "no such burst file",
                    "detail": format!("burst {k} has no {file} (nothing was fired at that twin?)"),
                    "files": files}),
        );
    }
    match found {
        Some((name, content_type, body)) => {
            let mut response = Response::builder()
                .header(header::CONTENT_TYPE, *content_type)
                .header(header::CACHE_CONTROL, "no-store");
            if name.ends_with("replay.json") {
                let disposition = format!("attachment; filename=\"stage-burst-{k}.json\"");
                response = response.header(header::CONTENT_DISPOSITION, disposition);
            }
            response.body(Body::from(body.clone())).unwrap_or_default()
        }
        None => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "no such burst file",
                    "detail": format!("the stage keeps the last {KEEP} bursts' files")}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machine_fires() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("an address");
        assert!(is_presenter(ip("127.0.0.1"), ip("0.0.0.0")));
        assert!(is_presenter(ip("::ffff:127.0.0.1"), ip("::")));
        assert!(is_presenter(ip("192.168.1.5"), ip("192.168.1.5")));
        assert!(!is_presenter(ip("192.168.1.9"), ip("0.0.0.0")));
        assert!(!is_presenter(ip("192.168.1.9"), ip("192.168.1.5")));
    }

    #[test]
    fn a_panel_names_the_command_that_starts_its_twin() {
        let sep = std::path::MAIN_SEPARATOR;
        assert_eq!(
            start_command(ServerKind::Pool, 8000),
            format!("target{sep}release{sep}pool-server")
        );
        assert_eq!(
            start_command(ServerKind::EventLoop, 9001),
            format!("target{sep}release{sep}async-server --port 9001")
        );
    }
}
