//! Bursts kept as recordings, and played back on the stage with no twins running.
//!
//! Every burst the stage fires is kept as a recording (`/bursts/{k}/replay.json`, linked under
//! the panels): each message the pages were sent, with its time since the burst began, and each
//! twin's `hello`. `burst stage --replay FILE` (repeatable) serves those instead of watching
//! twins: a key fires the recording of that route and N, played at its own pace, with its times
//! moved to now — a rehearsal without the twins, or a backup for a projector laptop too slow to
//! run them. The panels say it is a replay.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{json_response, lock, FireRequest, ForLater, Stage, TwinState};
use crate::client::{self, Cancel};

/// What a recording file says it is.
const FORMAT: &str = "twins-stage-replay/1";

/// One burst as the pages saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recording {
    pub format: String,
    /// The path fired (`/io`, `/io?ms=500`) and how many at once.
    pub route: String,
    pub n: usize,
    /// The twins it was fired at.
    pub at: Vec<String>,
    /// When it began, µs since the Unix epoch.
    pub recorded_unix_us: u64,
    /// Each twin's `hello`, as it was.
    pub hellos: Map<String, Value>,
    /// Each message with its time since the burst began, in ms.
    pub messages: Vec<(u64, Value)>,
}

impl Recording {
    /// Read a recording the stage wrote; a file that is not one says so in a line.
    pub fn load(path: &std::path::Path) -> Result<Recording, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let r: Recording = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{} is not a stage recording ({e}); save one from a burst's \"replay\" link",
                path.display()
            )
        })?;
        if r.format != FORMAT {
            return Err(format!(
                "{} is a recording of another kind ({:?}, this stage reads {FORMAT:?})",
                path.display(),
                r.format
            ));
        }
        Ok(r)
    }

    /// The path without its query: what the page's route keys name.
    fn route_path(&self) -> &str {
        self.route.split('?').next().unwrap_or("")
    }

    /// How long it lasted.
    fn duration(&self) -> Duration {
        Duration::from_millis(self.messages.last().map_or(0, |(t, _)| *t))
    }

    fn label(&self) -> Value {
        json!({"route": self.route, "n": self.n, "at": self.at,
               "seconds": self.duration().as_secs_f64()})
    }
}

/// Is this stage playing recordings rather than watching twins?
pub(super) fn offered(stage: &Stage) -> bool {
    !stage.recordings.is_empty()
}

/// The recording of the burst that just ended, as a file.
pub(super) fn record(stage: &Stage, request: &FireRequest) -> String {
    let (recorded_unix_us, messages) = {
        let kept = lock(&stage.kept);
        let messages = kept
            .messages
            .iter()
            .filter_map(|(t, m)| serde_json::from_str::<Value>(m).ok().map(|m| (*t, m)))
            .collect();
        (kept.began.map_or(0, |(_, us)| us), messages)
    };
    let hellos = stage
        .twins
        .iter()
        .filter_map(|t| stage.state(t).hello.map(|h| (t.name.to_owned(), h)))
        .collect();
    let recording = Recording {
        format: FORMAT.to_owned(),
        route: request.path(),
        n: request.n,
        at: request.twins.iter().map(|s| (*s).to_owned()).collect(),
        recorded_unix_us,
        hellos,
        messages,
    };
    serde_json::to_string(&recording).unwrap_or_else(|_| "{}".to_owned())
}

/// The twins as recorded: each panel shows the configuration its recording was made with.
pub(super) fn as_recorded(stage: &Stage) {
    for twin in &stage.twins {
        let hello = stage
            .recordings
            .iter()
            .find_map(|r| r.hellos.get(twin.name).cloned());
        let info = hello.clone().and_then(|h| serde_json::from_value(h).ok());
        let known = hello.is_some();
        *lock(&twin.state) = TwinState {
            hello,
            info,
            down: !known,
            why: (!known).then(|| "not in the recordings".to_owned()),
        };
    }
}

/// The recording that answers a press of a key: of the same route, those with the same N and
/// twins, else the same N, else any; several that fit equally take turns.
fn pick<'a>(stage: &'a Stage, request: &FireRequest, take_turn: bool) -> Option<&'a Recording> {
    let same_route: Vec<&Recording> = stage
        .recordings
        .iter()
        .filter(|r| r.route_path() == request.route)
        .collect();
    let covers = |r: &&Recording| request.twins.iter().all(|t| r.at.iter().any(|a| a == t));
    let best: Vec<&Recording> = [
        same_route
            .iter()
            .copied()
            .filter(|r| r.n == request.n && covers(r))
            .collect::<Vec<_>>(),
        same_route.iter().copied().filter(covers).collect(),
        same_route.clone(),
    ]
    .into_iter()
    .find(|fit| !fit.is_empty())?;
    let turn = if take_turn {
        stage.next_recording.fetch_add(1, Ordering::Relaxed)
    } else {
        stage.next_recording.load(Ordering::Relaxed)
    };
    best.get(turn % best.len()).copied()
}

/// What a press plays of `recording`: only the twins it asked for (the recording may hold both),
/// its last result the final one.
fn for_press(recording: &Recording, request: &FireRequest) -> Vec<(u64, Value)> {
    let asked = |t: &Value| t.as_str().is_none_or(|t| request.twins.contains(&t));
    let mut kept: Vec<(u64, Value)> = Vec::new();
    for (t, message) in &recording.messages {
        let mut m = message.clone();
        if !asked(&m["twin"]) {
            continue;
        }
        if let Some(twins) = m.get_mut("twins").and_then(Value::as_array_mut) {
            twins.retain(|t| asked(&t["twin"]));
            if twins.is_empty() {
                continue;
            }
        }
        kept.push((*t, m));
    }
    if let Some((_, last)) = kept.iter_mut().rev().find(|(_, m)| m["type"] == "result") {
        last["final"] = json!(true);
    }
    kept
}

/// `GET /plan` while replaying: how long the recording that a press would play lasts.
pub(super) fn plan(stage: &Stage, request: &FireRequest) -> Value {
    match pick(stage, request, false) {
        Some(r) => json!({"route": r.route, "n": r.n, "replay": true,
                          "predicted_ms": r.duration().as_millis() as u64,
                          "ask_first": false, "twins": []}),
        None => json!({"route": request.route, "n": request.n, "replay": true,
                       "predicted_ms": null, "ask_first": false, "twins": [],
                       "recorded": stage.recordings.iter().map(Recording::label).collect::<Vec<_>>()}),
    }
}

/// Play the recording a press asks for, at its own pace, with its times moved to now.
pub(super) async fn play(
    stage: &Stage,
    request: &FireRequest,
    one_at_a_time: tokio::sync::OwnedMutexGuard<()>,
) -> Response<Body> {
    let Some(recording) = pick(stage, request, true).cloned() else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "no recording of that route",
                    "detail": format!(
                        "this stage replays recordings; none of {}; recorded: {}",
                        request.route,
                        stage.recordings.iter()
                            .map(|r| format!("{} × {}", r.n, r.route))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    "recorded": stage.recordings.iter().map(Recording::label).collect::<Vec<_>>()}),
        );
    };
    let k = stage.next_burst.fetch_add(1, Ordering::Relaxed);
    let cancel = Cancel::default();
    let at: Vec<String> = request.twins.iter().map(|s| (*s).to_owned()).collect();
    let note = if recording.n != request.n {
        Some(format!(
            "no recording of {} × {}: playing the recorded {} × {}",
            request.n, request.route, recording.n, recording.route
        ))
    } else if recording.at != at {
        Some(format!(
            "playing the {} part of the recorded {} × {} at {}",
            at.join(" and "),
            recording.n,
            recording.route,
            recording.at.join(" and ")
        ))
    } else {
        None
    };
    let messages = for_press(&recording, request);
    let request_at: Vec<String> = request.twins.iter().map(|s| (*s).to_owned()).collect();
    let playing = {
        let (stage, cancel) = (stage.clone(), cancel.clone());
        async move {
            let at: Vec<&str> = request_at.iter().map(String::as_str).collect();
            let how = (note, at.as_slice());
            replay_messages(&stage, &recording, &messages, how, k, &cancel).await
        }
    };
    super::to_the_end(stage, k, cancel, one_at_a_time, playing).await
}

async fn replay_messages(
    stage: &Stage,
    recording: &Recording,
    messages: &[(u64, Value)],
    (note, request_at): (Option<String>, &[&str]),
    k: usize,
    cancel: &Cancel,
) -> Value {
    stage.narrate(format!(
        "burst {k}: replaying {} × {} ({:.1} s)",
        recording.n,
        recording.route,
        recording.duration().as_secs_f64()
    ));
    let start = Instant::now();
    let shift = client::unix_us_now().saturating_sub(recording.recorded_unix_us);
    // Fresh run ids, so that a page lines this playing up with its own release.
    let suffix = format!("r{k}");
    let mut last = json!({"type": "result", "burst": k, "final": true, "twins": []});
    for (first, (t_ms, message)) in messages.iter().enumerate() {
        let at = start + Duration::from_millis(*t_ms);
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        if cancel.is_cancelled() {
            let played: Vec<&str> = recording
                .at
                .iter()
                .map(String::as_str)
                .filter(|t| request_at.contains(t))
                .collect();
            last = json!({"type": "result", "burst": k, "route": recording.route,
                          "n": recording.n, "final": true, "replay": true,
                          "twins": played.iter().map(|t| json!({"twin": t,
                              "status": "cancelled", "verdict": "replay cancelled"}))
                              .collect::<Vec<_>>()});
            stage.say(&last, ForLater::Keep);
            return last;
        }
        let mut message = moved(message, shift, &suffix, k);
        if message["type"] == "firing" {
            message["replay_note"] = json!(note);
        }
        let keep = if first == 0 {
            ForLater::Restart
        } else {
            ForLater::Keep
        };
        if message["type"] == "result" {
            last = message.clone();
        }
        stage.say(&message, keep);
    }
    last
}

/// A recorded message as if it happened now: times shifted, runs renamed, the burst renumbered.
fn moved(message: &Value, shift_us: u64, suffix: &str, k: usize) -> Value {
    let mut m = message.clone();
    let Some(obj) = m.as_object_mut() else {
        return m;
    };
    if obj.contains_key("burst") {
        obj.insert("burst".into(), json!(k));
        obj.insert("replay".into(), json!(true));
    }
    if let Some(twins) = obj.get_mut("twins").and_then(Value::as_array_mut) {
        for t in twins {
            if let Some(run) = t.get("run").and_then(Value::as_str) {
                let renamed = format!("{run}{suffix}");
                t["run"] = json!(renamed);
            }
            // The recorded files belong to a stage that is not running.
            if let Some(t) = t.as_object_mut() {
                t.remove("json");
                t.remove("csv");
            }
        }
        obj.insert("chart".into(), Value::Null);
        obj.remove("recording");
    }
    if let Some(data) = obj.get_mut("data").and_then(Value::as_object_mut) {
        for field in ["t_us", "since_us"] {
            if let Some(t) = data.get(field).and_then(Value::as_u64) {
                data.insert(field.into(), json!(t + shift_us));
            }
        }
        if let Some((run, i)) = data
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| id.rsplit_once('-'))
        {
            let renamed = format!("{run}{suffix}-{i}");
            data.insert("id".into(), json!(renamed));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_played_message_happens_now_under_a_run_of_its_own() {
        let event = json!({"type": "finished", "twin": "pool",
                           "data": {"id": "abc-7", "t_us": 1000, "worker": "worker1"}});
        let m = moved(&event, 500, "r3", 3);
        assert_eq!(m["data"]["t_us"], 1500);
        assert_eq!(m["data"]["id"], "abcr3-7");
        let firing =
            json!({"type": "firing", "burst": 1, "twins": [{"twin": "pool", "run": "abc"}]});
        let m = moved(&firing, 500, "r3", 3);
        assert_eq!(
            (m["burst"].clone(), m["twins"][0]["run"].clone()),
            (json!(3), json!("abcr3"))
        );
    }
}
