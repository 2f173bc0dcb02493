//! Following each twin's `GET /events`, and relaying what it says to the pages.
//!
//! A real stack (gunicorn + Flask, uvicorn + FastAPI) serves no stream from a worker — that would
//! take a worker from the lesson — but its `/events` answer (a 404) names where its relay serves
//! one (`"events": "http://127.0.0.1:8101/events"`); the stage follows it there, on the same host
//! only, and keeps following it there until it goes away.
//!
//! A twin is a process on this machine, but its bytes are not trusted: every event is read with
//! a bounded line length, must be one the stage knows, and must carry one JSON object, which serde
//! reads whole before any page sees it (a `hello` is written again; the others, a hundred thousand
//! a second from a busy twin, are passed on as they came once read). A twin that says something
//! else is not a twin: the panel says so.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{lock, ForLater, Stage, TwinState, Watched};
use twin_core::contract::{EventName, ServerInfo};

/// How often a twin that is down is looked for again.
const RETRY: Duration = Duration::from_millis(500);

/// The longest line of an event stream the stage reads: a twin's `hello` is a few KiB.
const MAX_LINE: u64 = 64 * 1024;

/// Follow twin `i` for as long as the stage runs: connect, relay, and when it goes away, say so
/// and look for it again.
pub(super) async fn follow_twin(stage: Stage, i: usize) {
    loop {
        let why = match follow(&stage, i).await {
            Ok(()) => "it closed the stream (stopped or restarting)".to_owned(),
            Err(e) => e,
        };
        let twin = &stage.twins[i];
        // Said again when the reason changes (stopped, then up but refusing more watchers).
        let newly_down = {
            let mut st = lock(&twin.state);
            let newly = !st.down || st.why.as_deref() != Some(why.as_str());
            *st = TwinState {
                down: true,
                why: Some(why.clone()),
                ..TwinState::default()
            };
            newly
        };
        if newly_down {
            stage.narrate(format!(
                "the {} twin at {}: {why}",
                twin.name, twin.base.url
            ));
            stage.say(&down_message(twin, &why), ForLater::Skip);
        }
        tokio::time::sleep(RETRY).await;
    }
}

pub(super) fn down_message(twin: &Watched, why: &str) -> Value {
    json!({
        "type": "down",
        "twin": twin.name,
        "url": twin.base.url,
        "why": why,
        "full": why.starts_with(FULL),
        "start": twin.start,
    })
}

/// Where a server's event stream is.
#[derive(Debug, Clone)]
pub(super) struct Stream {
    addr: SocketAddr,
    host_header: String,
    path: String,
}

impl Stream {
    /// `/events` on the server's own port: a twin's.
    fn own(base: &crate::Target) -> Stream {
        Stream {
            addr: base.addr,
            host_header: base.host_header.clone(),
            path: "/events".to_owned(),
        }
    }

    /// The stream a server's `/events` answer names (`"events": URL`), if it is one the stage
    /// may follow: plain HTTP, on the same host as the server, with a port of its own.
    fn named_by(base: &crate::Target, body: &str) -> Option<Stream> {
        let doc: Value = serde_json::from_str(body).ok()?;
        let uri: axum::http::Uri = doc.get("events")?.as_str()?.parse().ok()?;
        let same_host = uri.host().is_some() && uri.host() == base.uri.host();
        if uri.scheme_str() != Some("http") || !same_host {
            return None;
        }
        let port = uri.port_u16()?;
        Some(Stream {
            addr: SocketAddr::new(base.addr.ip(), port),
            host_header: format!("{}:{port}", uri.host()?),
            path: uri.path().to_owned(),
        })
    }

    fn url(&self) -> String {
        format!("http://{}{}", self.host_header, self.path)
    }
}

/// One connection to a twin's `/events` (or to the stream it names), relayed until it ends.
async fn follow(stage: &Stage, i: usize) -> Result<(), String> {
    let twin = &stage.twins[i];
    // Twice at most: the server's own `/events`, then the stream its answer named.
    let mut lines = None;
    for _ in 0..2 {
        let named = lock(&twin.events).clone();
        let at = named.clone().unwrap_or_else(|| Stream::own(&twin.base));
        let mut opened = match open(&at).await {
            Ok(opened) => opened,
            Err(e) if named.is_some() => {
                // Looked up again from the server next time: it may have a new relay.
                *lock(&twin.events) = None;
                return Err(format!(
                    "its events relay at {} is not running ({e})",
                    at.url()
                ));
            }
            Err(e) => return Err(format!("not running ({e})")),
        };
        let status = opened
            .next()
            .await?
            .map(Cow::into_owned)
            .unwrap_or_default();
        if status.starts_with("HTTP/1.1 200") {
            lines = Some(opened);
            break;
        }
        let body = rest(&mut opened).await;
        match Stream::named_by(&twin.base, &body) {
            Some(stream) if named.is_none() && status.starts_with("HTTP/1.1 404") => {
                stage.narrate(format!(
                    "{} at {} publishes its events at {}",
                    twin.name,
                    twin.base.url,
                    stream.url()
                ));
                *lock(&twin.events) = Some(stream);
            }
            _ => return Err(refusal(&status, &body)),
        }
    }
    let Some(mut lines) = lines else {
        return Err("its /events answer named a stream that named another".to_owned());
    };
    // The head: nothing in it the stage needs.
    while let Some(line) = lines.next().await? {
        if line.is_empty() {
            break;
        }
    }
    // The panel's name as the messages to the page carry it (a JSON string), written once.
    let name = Value::from(twin.name).to_string();
    let (mut event, mut data) = (String::new(), String::new());
    while let Some(line) = lines.next().await? {
        if let Some(name) = line.strip_prefix("event: ") {
            event.clear();
            event.push_str(name);
        } else if let Some(d) = line.strip_prefix("data: ") {
            data.clear();
            data.push_str(d);
        } else if line.is_empty() && !event.is_empty() {
            relay(stage, twin, &name, &event, &data)?;
            event.clear();
            data.clear();
        }
    }
    Ok(())
}

/// Connect to `at` and ask for its stream.
async fn open(at: &Stream) -> Result<Lines, String> {
    let mut stream = TcpStream::connect(at.addr)
        .await
        .map_err(|e| e.to_string())?;
    // `Connection: close`: the stream is this connection's only request, and on a drain the
    // pool twin (tiny_http) then closes it rather than wait for a next request.
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\
         Connection: close\r\nUser-Agent: burst-stage\r\n\r\n",
        at.path, at.host_header
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    Ok(Lines::new(stream))
}

/// The last line of an answer that is not a stream: its JSON body. At most a few lines, each
/// bounded, and a second for all of them.
async fn rest(lines: &mut Lines) -> String {
    let mut body = String::new();
    let read = async {
        let mut k = 0;
        while let Ok(Some(line)) = lines.next().await {
            body = line.into_owned();
            k += 1;
            if k > 64 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), read).await;
    body
}

/// Why a twin answered `/events` with something else than its stream: a twin whose watchers
/// are full says so (its 503 names `--max-watchers`); a relay says why in its `detail`;
/// anything else is not a twin.
fn refusal(status: &str, body: &str) -> String {
    if status.starts_with("HTTP/1.1 503") && body.contains("--max-watchers") {
        let limit = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v["limit"].as_u64())
            .map_or(String::new(), |n| format!(" {n}"));
        return format!(
            "{FULL}: it is running, but --max-watchers{limit} others watch it already; close \
             one (a `curl …/events`?) or restart it with a larger --max-watchers"
        );
    }
    let shown: String = status.chars().take(80).collect();
    let detail = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        v.get("detail")?
            .as_str()
            .map(|d| d.chars().take(200).collect::<String>())
    });
    match detail {
        Some(detail) => format!("it answered /events with {shown:?}: {detail}"),
        None if status.starts_with("HTTP/1.1 404") => format!(
            "it answered /events with {shown:?} and named no stream: a real stack publishes its \
             events through python/events_relay.py (scripts/real-stacks.sh --live starts it)"
        ),
        None => format!("it answered /events with {shown:?}: not a twin, or an older build"),
    }
}

/// How a watched twin that refuses more watchers is said to be down.
pub(super) const FULL: &str = "watched by too many";

/// Lines of an event stream, none longer than [`MAX_LINE`].
struct Lines {
    reader: BufReader<TcpStream>,
    buf: Vec<u8>,
}

impl Lines {
    fn new(stream: TcpStream) -> Lines {
        Lines {
            reader: BufReader::new(stream),
            buf: Vec::new(),
        }
    }

    async fn next(&mut self) -> Result<Option<Cow<'_, str>>, String> {
        self.buf.clear();
        let read = (&mut self.reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut self.buf)
            .await
            .map_err(|e| e.to_string())?;
        if read == 0 {
            return Ok(None);
        }
        if self.buf.last() != Some(&b'\n') {
            return Err(format!(
                "it sent a line over {} KiB: not a twin's event stream",
                MAX_LINE / 1024
            ));
        }
        let line = match String::from_utf8_lossy(&self.buf) {
            Cow::Borrowed(line) => Cow::Borrowed(line.trim_end_matches(['\r', '\n'])),
            Cow::Owned(line) => Cow::Owned(line.trim_end_matches(['\r', '\n']).to_owned()),
        };
        Ok(Some(line))
    }
}

/// One event from a twin, checked, to the pages.
fn relay(
    stage: &Stage,
    twin: &Watched,
    twin_json: &str,
    event: &str,
    data: &str,
) -> Result<(), String> {
    let Some(name) = EventName::parse(event) else {
        // A newer twin's event, say: not for this page.
        return Ok(());
    };
    let not_a_twin = || format!("its {event:?} event carried no JSON object: not a twin");
    if name == EventName::Hello {
        let data: Map<String, Value> = serde_json::from_str(data).map_err(|_| not_a_twin())?;
        let info = serde_json::from_value::<ServerInfo>(Value::Object(data.clone())).ok();
        let pid = data.get("pid").and_then(Value::as_u64).unwrap_or(0);
        stage.narrate(format!(
            "the {} twin is up at {} (pid {pid})",
            twin.name, twin.base.url
        ));
        *lock(&twin.state) = TwinState {
            hello: Some(Value::Object(data.clone())),
            info,
            down: false,
            why: None,
        };
        stage.say(
            &json!({"type": name, "twin": twin.name, "data": data}),
            ForLater::Skip,
        );
        return Ok(());
    }
    // The rest as they came, once read whole: a map built and written again for each would be
    // most of the stage's work while a busy twin sends a hundred thousand a second.
    let fields = Fields::read(data).ok_or_else(not_a_twin)?;
    if name == EventName::Finished {
        if let Some(id) = fields.id.as_ref().and_then(Value::as_str) {
            let skipped = fields.status.as_ref().and_then(Value::as_u64) == Some(499);
            ended(stage, id, skipped);
        }
    }
    stage.say_text(
        format!(
            r#"{{"type":"{}","twin":{twin_json},"data":{data}}}"#,
            name.as_str()
        ),
        ForLater::Keep,
    );
    Ok(())
}

/// What the stage itself reads of an event (any other field is the page's).
#[derive(Debug, serde::Deserialize)]
struct Fields {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    status: Option<Value>,
}

impl Fields {
    /// `data` read whole by serde as one JSON object (an array would do for a struct, so the
    /// brace is asked for), with no carriage return: JSON allows one between its tokens, and in
    /// the page's event stream it would end the line.
    fn read(data: &str) -> Option<Fields> {
        if !data.trim_start().starts_with('{') || data.contains('\r') {
            return None;
        }
        serde_json::from_str(data).ok()
    }
}

/// A request of a run the stage fires has ended (`{run}-{i}`; `skipped`: a 499, its client gone
/// before pick-up): counted for [`wait_for_ends`].
fn ended(stage: &Stage, id: &str, skipped: bool) {
    let Some((run, _)) = id.rsplit_once('-') else {
        return;
    };
    let mut ends = lock(&stage.ends);
    if let Some(count) = ends.iter_mut().find(|c| c.run == run) {
        count.ended += 1;
        count.skipped += usize::from(skipped);
        stage.ended.notify_waiters();
    }
}

/// The ends of one run the stage fires, as its twin tells them.
#[derive(Debug, Clone, Default)]
pub(super) struct Ends {
    run: String,
    pub(super) ended: usize,
    /// Ended as 499: skipped, their client gone before a worker picked them up.
    pub(super) skipped: usize,
}

/// How long a `result` waits for the twins' last `finished` events to arrive.
pub(super) const ENDS_GRACE: Duration = Duration::from_secs(1);

/// Count the ends of `run`'s requests from now on.
pub(super) fn count_ends(stage: &Stage, run: &str) {
    lock(&stage.ends).push(Ends {
        run: run.to_owned(),
        ..Ends::default()
    });
}

/// Wait (at most `limit`) until the twin has said `expected` of `run`'s requests ended, then
/// stop counting them: a burst's `result` then comes after its requests' ends on every page.
pub(super) async fn wait_for_ends(
    stage: &Stage,
    run: &str,
    expected: usize,
    limit: Duration,
) -> Ends {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let notified = stage.ended.notified();
        let seen = lock(&stage.ends)
            .iter()
            .find(|c| c.run == run)
            .map_or(expected, |c| c.ended);
        if seen >= expected || tokio::time::timeout_at(deadline, notified).await.is_err() {
            break;
        }
    }
    let mut ends = lock(&stage.ends);
    let counted = ends.iter().find(|c| c.run == run).cloned();
    ends.retain(|c| c.run != run);
    counted.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::Fields;

    #[test]
    fn an_event_passes_on_only_as_one_json_object_read_whole() {
        let fields = Fields::read(r#"{"id":"3-7","route":"/io","status":499}"#).expect("object");
        assert_eq!(fields.id.as_ref().and_then(|v| v.as_str()), Some("3-7"));
        assert_eq!(fields.status.as_ref().and_then(|v| v.as_u64()), Some(499));
        assert!(Fields::read("{}").is_some());
        for bad in [
            r#"["3-7", 499]"#,                   // a struct would take an array
            r#"{"id":"3-7"} trailing"#,          // more than one value
            r#"{"id":"3-7"}</script>"#,          // not JSON after the object
            "{\"id\":\"3-7\",\r\"status\":200}", // a CR would end the page's line
            r#"{"id":"3-7""#,                    // cut off
            r#""a string""#,
            "",
        ] {
            assert!(Fields::read(bad).is_none(), "{bad:?}");
        }
    }
}
