//! # The live stage: watch every worker's lane fill, both twins side by side
//!
//! `burst stage` serves one page (default `http://127.0.0.1:8080`). The page *watches*; this
//! server *fires*:
//!
//! - For each twin it follows `GET /events` (reconnecting every half second while the twin is
//!   down) and relays every event to the page over one stream of its own, `GET /feed`, in batches
//!   of up to [`BATCH`] so that a burst of 1,000 is a few dozen messages, not thousands.
//! - `POST /fire?route=/io&n=16&at=both` fires a burst with burst's own client — every connection
//!   opened first, then every request released at the same instant, at one twin or both — checks
//!   each against the model read from the twin's `hello`, and keeps the burst's JSON, CSV and
//!   completion chart at `/bursts/{k}/…`. A browser never fires: it sends about 6 requests at a
//!   time to one host, and would fake the waves.
//!
//! Everything the page needs is inside the binary (`stage/`: plain HTML, CSS and JavaScript), so
//! it works in a room with no network.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, Response, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};

use crate::client::{self, Target};
use crate::experiment::{self, Cell, Experiment, Settings, Status};
use crate::model::{self, ServerInfo};
use crate::output;

const PAGE: &str = include_str!("../stage/index.html");
const SCRIPT: &str = include_str!("../stage/stage.js");
const STYLE: &str = include_str!("../stage/stage.css");

/// The routes the page offers (the lesson's, and its two failure modes).
pub const ROUTES: [&str; 5] = [
    "/io",
    "/async-io",
    "/async-io-multi",
    "/async-io-blocking",
    "/cpu",
];
/// The largest burst the stage fires.
pub const MAX_N: usize = 1000;
/// Most events relayed to the page in one message.
const BATCH: usize = 512;
/// How long a batch may wait for more events: well inside the 100 ms an event may take to show.
const BATCH_WINDOW: Duration = Duration::from_millis(15);
/// How often a twin that is down is looked for again.
const RETRY: Duration = Duration::from_millis(500);
/// Bursts whose files are kept for the page's links.
const KEEP: usize = 20;

/// Messages kept for a page that connects mid-burst: a burst of 1,000 at both twins is ~8,000.
const REPLAY: usize = 24_000;

/// What a message does to the replay a new page gets.
#[derive(Debug, Clone, Copy)]
enum Replay {
    /// A burst begins: the replay starts again from this message.
    Restart,
    Keep,
    /// A twin's state (`hello`, `down`): a new page gets the current one instead.
    Skip,
}

/// The twins the stage watches.
#[derive(Debug, Clone)]
pub struct StageConfig {
    pub pool: Target,
    pub event_loop: Target,
}

/// Serve the stage on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: StageConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stage = Stage::new(config);
    for i in 0..stage.twins.len() {
        tokio::spawn(follow_twin(stage.clone(), i));
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
        .route("/fire", post(fire).get(fire_is_a_post))
        .route("/bursts/{k}/{file}", get(burst_file))
        .fallback(|| async {
            json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": "not found", "paths": ["/", "/feed", "POST /fire", "/bursts/{k}/{file}"]}),
            )
        })
        .with_state(stage);
    // The page's feed never ends by itself, so there is nothing to drain: stop at once.
    tokio::select! {
        served = axum::serve(listener, app) => served,
        () = shutdown => Ok(()),
    }
}

/// One watched twin.
#[derive(Debug)]
struct Twin {
    /// `pool` or `event-loop`: the page's panel.
    name: &'static str,
    base: Target,
    /// The command that starts it, for a panel whose twin is not running.
    start: String,
    state: Mutex<TwinState>,
}

#[derive(Debug, Default)]
struct TwinState {
    /// Its last `hello` (raw JSON) while it is up; `None` while it is down.
    hello: Option<Arc<str>>,
    info: Option<ServerInfo>,
    /// Known down (said so to the page), as opposed to not looked at yet.
    down: bool,
}

#[derive(Debug, Clone)]
struct Stage(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    twins: [Twin; 2],
    /// Every message for the pages, as JSON text.
    feed: broadcast::Sender<Arc<str>>,
    bursts: Mutex<VecDeque<Stored>>,
    /// The latest burst of each twin × route × N, for the completion chart of all bursts of an N.
    cells: Mutex<Vec<Cell>>,
    /// Every message since the stage's last burst began (its `firing`, events, `result`, and
    /// whatever came after from elsewhere), for a page that connects or reloads meanwhile: it
    /// draws the same picture. Held under this lock while sent, so a new page misses nothing and
    /// gets nothing twice.
    replay: Mutex<Vec<Arc<str>>>,
    next_burst: AtomicUsize,
    /// One burst at a time: two would share the machine and spoil both.
    firing: Arc<tokio::sync::Mutex<()>>,
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
    fn new(config: StageConfig) -> Stage {
        let twin = |name, base: Target| Twin {
            name,
            start: start_command(name, base.addr.port()),
            base,
            state: Mutex::new(TwinState::default()),
        };
        // Room for a burst of 1,000 at both twins (about 8,000 events) before a slow page lags.
        let (feed, _) = broadcast::channel(16_384);
        Stage(Arc::new(Inner {
            twins: [
                twin("pool", config.pool),
                twin("event-loop", config.event_loop),
            ],
            feed,
            bursts: Mutex::new(VecDeque::new()),
            cells: Mutex::new(Vec::new()),
            replay: Mutex::new(Vec::new()),
            next_burst: AtomicUsize::new(1),
            firing: Arc::new(tokio::sync::Mutex::new(())),
        }))
    }

    fn say(&self, message: String, replay: Replay) {
        let message: Arc<str> = message.into();
        let mut kept = self.replay.lock().unwrap_or_else(|p| p.into_inner());
        match replay {
            Replay::Restart => {
                kept.clear();
                kept.push(message.clone());
            }
            Replay::Keep if kept.len() < REPLAY => kept.push(message.clone()),
            Replay::Keep | Replay::Skip => {}
        }
        // No page watching is fine.
        let _ = self.feed.send(message);
    }

    fn twin(&self, name: &str) -> Option<&Twin> {
        self.twins.iter().find(|t| t.name == name)
    }
}

/// The command that starts the twin a panel watches.
/// The release build's binary, not `cargo run -p`: the workspace's `cargo build --release` has
/// built it, and `-p` alone would build the package again with other features (half a minute).
fn start_command(name: &str, port: u16) -> String {
    let (binary, default) = match name {
        "pool" => ("pool-server", 8000),
        _ => ("async-server", 8001),
    };
    let path = std::path::Path::new("target").join("release").join(binary);
    if port == default {
        format!("{}", path.display())
    } else {
        format!("{} --port {port}", path.display())
    }
}

// ---- following a twin's /events ---------------------------------------------------------------

/// Follow twin `i` for as long as the stage runs: connect, relay, and when it goes away, say so
/// and look for it again.
async fn follow_twin(stage: Stage, i: usize) {
    loop {
        let why = match follow(&stage, i).await {
            Ok(()) => "it closed the stream (stopped or restarting)".to_owned(),
            Err(e) => e,
        };
        let twin = &stage.twins[i];
        let newly_down = {
            let mut st = twin.state.lock().unwrap_or_else(|p| p.into_inner());
            let newly = !st.down;
            *st = TwinState {
                down: true,
                ..TwinState::default()
            };
            newly
        };
        if newly_down {
            stage.say(down_message(twin, &why), Replay::Skip);
        }
        tokio::time::sleep(RETRY).await;
    }
}

fn down_message(twin: &Twin, why: &str) -> String {
    json!({
        "type": "down",
        "twin": twin.name,
        "url": twin.base.url,
        "why": why,
        "start": twin.start,
    })
    .to_string()
}

/// One connection to a twin's `/events`, relayed until it ends.
async fn follow(stage: &Stage, i: usize) -> Result<(), String> {
    let twin = &stage.twins[i];
    let mut stream = TcpStream::connect(twin.base.addr)
        .await
        .map_err(|e| format!("not running ({e})"))?;
    // `Connection: close`: the stream is this connection's only request, and on a drain the
    // pool twin (tiny_http) then closes it rather than wait for a next request.
    let request = format!(
        "GET /events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\
         Connection: close\r\nUser-Agent: burst-stage\r\n\r\n",
        twin.base.host_header
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(stream).lines();
    let status = lines.next_line().await.map_err(|e| e.to_string())?;
    let status = status.unwrap_or_default();
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "it answered /events with {status:?}: not a twin, or an older build"
        ));
    }
    // The head: nothing in it the stage needs.
    while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
        if line.is_empty() {
            break;
        }
    }
    let (mut event, mut data) = (String::new(), String::new());
    while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
        if let Some(name) = line.strip_prefix("event: ") {
            event = name.to_owned();
        } else if let Some(d) = line.strip_prefix("data: ") {
            data = d.to_owned();
        } else if line.is_empty() && !event.is_empty() {
            relay(stage, twin, &event, &data);
            event.clear();
            data.clear();
        }
    }
    Ok(())
}

/// One event from a twin, to the pages.
fn relay(stage: &Stage, twin: &Twin, event: &str, data: &str) {
    if event == "hello" {
        let info = serde_json::from_str::<ServerInfo>(data).ok();
        let hello: Arc<str> = data.into();
        let mut st = twin.state.lock().unwrap_or_else(|p| p.into_inner());
        *st = TwinState {
            hello: Some(hello),
            info,
            down: false,
        };
    }
    // The data is the twin's own JSON: relayed as it is, not parsed and written again.
    let replay = if event == "hello" {
        Replay::Skip
    } else {
        Replay::Keep
    };
    stage.say(
        format!(
            r#"{{"type":"{event}","twin":"{}","data":{data}}}"#,
            twin.name
        ),
        replay,
    );
}

// ---- the page and its feed ---------------------------------------------------------------------

async fn page() -> Response<Body> {
    asset(PAGE, "text/html; charset=utf-8").await
}

async fn asset(text: &'static str, content_type: &'static str) -> Response<Body> {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(text))
        .unwrap_or_default()
}

/// `GET /feed`: what each twin is now, then every event as it comes, batched.
async fn feed(State(stage): State<Stage>) -> Response<Body> {
    let (tx, body) = mpsc::channel::<Bytes>(64);
    let mut first: Vec<Arc<str>> = Vec::new();
    for twin in &stage.twins {
        let st = twin.state.lock().unwrap_or_else(|p| p.into_inner());
        first.push(match &st.hello {
            Some(hello) => format!(
                r#"{{"type":"hello","twin":"{}","data":{hello}}}"#,
                twin.name
            )
            .into(),
            None if st.down => down_message(twin, "not running").into(),
            None => continue,
        });
    }
    // Subscribed under the replay's lock: what is said from here on comes through `rx`.
    let mut rx = {
        let kept = stage.replay.lock().unwrap_or_else(|p| p.into_inner());
        first.extend(kept.iter().cloned());
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

// ---- firing ------------------------------------------------------------------------------------

/// What `POST /fire` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FireRequest {
    pub route: String,
    /// `?ms=` for each request (the twin's T when not given; the twin's limits apply).
    pub ms: Option<u64>,
    pub n: usize,
    /// `pool`, `event-loop`, or both.
    pub at: Vec<&'static str>,
}

/// Read `route=/io&n=16&at=both` (and `ms=`); a bad value is said with what is allowed.
pub fn parse_fire(query: &str) -> Result<FireRequest, Value> {
    let (mut route, mut n, mut at, mut ms) = (None, None, None, None);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "route" => route = Some(value.into_owned()),
            "n" => n = Some(value.into_owned()),
            "at" => at = Some(value.into_owned()),
            "ms" => ms = Some(value.into_owned()),
            other => {
                return Err(json!({"error": "unknown parameter", "parameter": other,
                                  "allowed": ["route", "n", "at", "ms"]}))
            }
        }
    }
    let ms = match ms {
        None => None,
        Some(text) => match text.parse::<u64>() {
            Ok(ms) => Some(ms),
            Err(_) => {
                return Err(
                    json!({"error": "not a number", "parameter": "ms", "received": text,
                                  "allowed": "a whole number of milliseconds, within the twin's --max-ms"}),
                )
            }
        },
    };
    let route = route.unwrap_or_else(|| "/io".to_owned());
    if !ROUTES.contains(&route.as_str()) {
        return Err(
            json!({"error": "unknown route", "parameter": "route", "received": route,
                          "allowed": ROUTES}),
        );
    }
    let n_text = n.unwrap_or_else(|| "16".to_owned());
    let n = match n_text.parse::<usize>() {
        Ok(n) if (1..=MAX_N).contains(&n) => n,
        _ => {
            return Err(
                json!({"error": "out of range", "parameter": "n", "received": n_text,
                              "allowed": format!("1 to {MAX_N}")}),
            )
        }
    };
    let at = match at.as_deref().unwrap_or("both") {
        "pool" => vec!["pool"],
        "event-loop" | "async" => vec!["event-loop"],
        "both" => vec!["pool", "event-loop"],
        other => {
            return Err(
                json!({"error": "unknown target", "parameter": "at", "received": other,
                              "allowed": ["pool", "event-loop", "both"]}),
            )
        }
    };
    Ok(FireRequest { route, ms, n, at })
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(format!("{body}\n")))
        .unwrap_or_default()
}

/// `POST /fire`: fire, check, keep the files, tell the pages; answer with the same result.
async fn fire(State(stage): State<Stage>, RawQuery(query): RawQuery) -> Response<Body> {
    let request = match parse_fire(query.as_deref().unwrap_or("")) {
        Ok(r) => r,
        Err(body) => return json_response(StatusCode::BAD_REQUEST, &body),
    };
    let Ok(one_at_a_time) = stage.firing.clone().try_lock_owned() else {
        return json_response(
            StatusCode::CONFLICT,
            &json!({"error": "a burst is running", "detail": "wait for its result, then fire again"}),
        );
    };
    // The burst runs to its end even if the page that asked is closed meanwhile: every page
    // watching gets its result.
    let burst = tokio::spawn(async move {
        let _one_at_a_time = one_at_a_time;
        let result = fire_burst(&stage, &request).await;
        stage.say(result.to_string(), Replay::Keep);
        result
    });
    match burst.await {
        Ok(result) => json_response(StatusCode::OK, &result),
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": "the burst failed", "detail": e.to_string()}),
        ),
    }
}

/// `GET /fire`: a link or a curl without `-X POST` fires nothing, and says so.
async fn fire_is_a_post() -> Response<Body> {
    let mut response = json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({"error": "method not allowed", "allowed": "POST",
                "detail": "fire with POST, e.g. curl -s -X POST 'http://127.0.0.1:8080/fire?route=/io&n=16&at=both'"}),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    response
}

async fn fire_burst(stage: &Stage, request: &FireRequest) -> Value {
    let k = stage.next_burst.fetch_add(1, Ordering::Relaxed);
    let run = client::run_id();
    let path = match request.ms {
        Some(ms) => format!("{}?ms={ms}", request.route),
        None => request.route.clone(),
    };
    let settings = Settings::default();
    let mut plans = Vec::new();
    let mut refused = Vec::new();
    for &name in &request.at {
        let Some(twin) = stage.twin(name) else {
            continue;
        };
        let info = twin
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .info
            .clone();
        let Some(info) = info else {
            refused.push(json!({"twin": name, "error":
                format!("not running: start it with `{}`", twin.start)}));
            continue;
        };
        let planned = twin.base.with_path(&path).and_then(|target| {
            experiment::plan_for(&target, request.n, &settings, Some(info))
                .map(|plan| (target, plan))
        });
        match planned {
            Ok(p) => plans.push((name, p)),
            Err(e) => refused.push(json!({"twin": name, "error": e.0})),
        }
    }
    let firing: Vec<Value> = plans
        .iter()
        .map(|(name, (_, plan))| {
            json!({
                "twin": name,
                "predicted_ms": plan.predicted_end().map(|d| d.as_millis() as u64),
                "model": plan.prediction.as_ref().map(|p| model::describe(p, plan.n)),
            })
        })
        .collect();
    if !firing.is_empty() {
        stage.say(
            json!({"type": "firing", "burst": k, "run": run, "route": path, "n": request.n,
                   "twins": firing})
            .to_string(),
            Replay::Restart,
        );
    }
    let names: Vec<&'static str> = plans.iter().map(|(name, _)| *name).collect();
    let fired =
        experiment::fire_together(plans.into_iter().map(|(_, p)| p).collect(), &settings, &run)
            .await;
    let mut twins = refused;
    let mut cells = Vec::new();
    let mut files = Vec::new();
    for (name, outcome) in names.into_iter().zip(fired) {
        match outcome {
            Ok(e) => {
                files.push((format!("{name}.json"), "application/json", report_json(&e)));
                let rows = output::rows(&e.burst, e.check.as_ref());
                files.push((
                    format!("{name}.csv"),
                    "text/csv; charset=utf-8",
                    output::csv(&rows),
                ));
                twins.push(twin_result(k, name, &e));
                cells.push(Cell {
                    server: name.to_owned(),
                    kind: e.server.as_ref().map(|s| s.kind.clone()),
                    route: path.clone(),
                    n: request.n,
                    experiment: e,
                });
            }
            Err(e) => twins.push(json!({"twin": name, "error": e.0})),
        }
    }
    // The chart: every twin × route kept for this N (the latest of each), so that /io, /async-io
    // and /async-io-multi fired one after another make the reference chart.
    let chart = (!cells.is_empty()).then(|| {
        let io_bound = |c: &Cell| {
            let path = c.route.split('?').next().unwrap_or("");
            ["/io", "/async-io", "/async-io-multi"].contains(&path)
        };
        let mut kept = stage.cells.lock().unwrap_or_else(|p| p.into_inner());
        // Earlier bursts stay only as the reference chart has them: IO-bound, every request ok.
        kept.retain(|old| {
            io_bound(old)
                && old.experiment.status() != Status::Failed
                && !cells
                    .iter()
                    .any(|c| c.server == old.server && c.route == old.route && c.n == old.n)
        });
        kept.extend(cells);
        while kept.len() > 4 * ROUTES.len() {
            kept.remove(0);
        }
        let mut shown: Vec<Cell> = kept.iter().filter(|c| c.n == request.n).cloned().collect();
        let rank = |c: &Cell| {
            let path = c.route.split('?').next().unwrap_or("");
            (c.server != "pool", ROUTES.iter().position(|r| *r == path))
        };
        shown.sort_by_key(rank);
        let pool = shown.iter().any(|c| c.server == "pool");
        let event_loop = shown.iter().any(|c| c.server != "pool");
        let title = match (shown.iter().all(io_bound), pool, event_loop) {
            (true, true, true) => "IO-bound bursts: a pool of blocking workers vs event loops",
            (false, true, true) => "Bursts at the stage: a pool of blocking workers vs event loops",
            (_, true, false) => "Bursts at the stage: a pool of blocking workers",
            _ => "Bursts at the stage: event loops",
        };
        let subtitle = format!(
            "{} at once; the latest burst of each route, fired by the stage",
            request.n
        );
        files.push((
            "chart.svg".to_owned(),
            "image/svg+xml",
            experiment::completion_svg(&shown, title, &subtitle),
        ));
        format!("/bursts/{k}/chart.svg")
    });
    {
        let mut kept = stage.bursts.lock().unwrap_or_else(|p| p.into_inner());
        kept.push_back(Stored { k, files });
        while kept.len() > KEEP {
            kept.pop_front();
        }
    }
    json!({"type": "result", "burst": k, "run": run, "route": path, "n": request.n,
           "twins": twins, "chart": chart})
}

fn twin_result(k: usize, name: &str, e: &Experiment) -> Value {
    let status = match e.status() {
        Status::Ok => "ok",
        Status::NotAsPredicted => "not-as-predicted",
        Status::Failed => "failed",
    };
    // The model's verdict already says how many failed.
    let verdict = match &e.check {
        Some(c) => c.verdict.clone(),
        None => format!(
            "{} of {} answered; no model to check",
            e.summary.ok, e.burst.n
        ),
    };
    json!({
        "twin": name,
        "status": status,
        "verdict": verdict,
        "waves": e.check.as_ref().map(|c| c.waves.iter().map(|w| w.size).collect::<Vec<_>>()),
        "expected_waves": e.check.as_ref().map(|c| c.expected_wave_sizes.clone()),
        "wall_ms": e.summary.wall_ms,
        "ok": e.summary.ok,
        "json": format!("/bursts/{k}/{name}.json"),
        "csv": format!("/bursts/{k}/{name}.csv"),
    })
}

fn report_json(e: &Experiment) -> String {
    let report = output::Report {
        url: &e.burst.url,
        n: e.burst.n,
        release_spread_ms: e.summary.release_spread_ms,
        wall_ms: e.summary.wall_ms,
        server: e.server.as_ref(),
        model: e.check.as_ref(),
        summary: &e.summary,
        requests: output::rows(&e.burst, e.check.as_ref()),
    };
    serde_json::to_string_pretty(&report).unwrap_or_else(|_| "{}".to_owned())
}

/// `GET /bursts/{k}/{file}`: a kept burst's JSON, CSV or chart.
async fn burst_file(
    State(stage): State<Stage>,
    Path((k, file)): Path<(usize, String)>,
) -> Response<Body> {
    let kept = stage.bursts.lock().unwrap_or_else(|p| p.into_inner());
    let found = kept
        .iter()
        .find(|s| s.k == k)
        .and_then(|s| s.files.iter().find(|(name, _, _)| *name == file));
    match found {
        Some((_, content_type, body)) => Response::builder()
            .header(header::CONTENT_TYPE, *content_type)
            .body(Body::from(body.clone()))
            .unwrap_or_default(),
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
    fn fire_requests_are_read_or_refused_with_the_limit() {
        let ok = parse_fire("route=/async-io&n=100&at=event-loop").expect("valid");
        assert_eq!(
            (ok.route.as_str(), ok.n, ok.at),
            ("/async-io", 100, vec!["event-loop"])
        );
        assert_eq!(parse_fire("").expect("defaults").at, ["pool", "event-loop"]);
        let e = parse_fire("n=1001").expect_err("over");
        assert_eq!(e["allowed"], "1 to 1000");
        assert_eq!(
            parse_fire("route=/nope").expect_err("route")["error"],
            "unknown route"
        );
        assert_eq!(
            parse_fire("at=mars").expect_err("at")["error"],
            "unknown target"
        );
    }

    #[test]
    fn a_panel_names_the_command_that_starts_its_twin() {
        let sep = std::path::MAIN_SEPARATOR;
        assert_eq!(
            start_command("pool", 8000),
            format!("target{sep}release{sep}pool-server")
        );
        assert_eq!(
            start_command("event-loop", 9001),
            format!("target{sep}release{sep}async-server --port 9001")
        );
    }
}
