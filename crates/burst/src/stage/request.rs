//! What a press of the page (or `POST /fire`, `GET /plan`) asks for, read and checked once: a
//! burst of N, or steady traffic at a rate — and what each twin would be fired with, from the
//! model its `hello` carries. Both `fire` (bursts) and `steady` (traffic) take it from here.

use std::time::Duration;

use serde_json::{json, Value};

use super::Stage;
use crate::experiment::{self, Plan, Settings};
use crate::Target;

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

/// What `POST /fire` asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct FireRequest {
    pub route: String,
    /// `?ms=` for each request (the twin's T when not given; the twin's limits apply).
    pub ms: Option<u64>,
    pub n: usize,
    /// What `at=` asked for: a panel's name, a kind (`pool`, `event-loop`), or `all`.
    pub at: String,
    /// The panels that names, once read against the stage ([`read`]).
    pub twins: Vec<&'static str>,
    /// Steady traffic instead of a burst: this many requests a second for `duration`.
    pub rate: Option<f64>,
    pub duration: Duration,
}

/// Steady traffic on the stage: at most this many requests a second, for 1 to this many seconds,
/// and this many requests in all.
pub const MAX_RATE: f64 = 500.0;
pub const MAX_DURATION_S: f64 = 30.0;
pub const MAX_STEADY: f64 = 5000.0;

impl FireRequest {
    /// The path each request asks for.
    pub(super) fn path(&self) -> String {
        match self.ms {
            Some(ms) => format!("{}?ms={ms}", self.route),
            None => self.route.clone(),
        }
    }
}

/// Read `route=/io&n=16&at=both` (and `ms=`); a bad value is said with what is allowed.
pub fn parse_fire(query: &str) -> Result<FireRequest, Value> {
    let (mut route, mut n, mut at, mut ms) = (None, None, None, None);
    let (mut rate, mut duration) = (None::<String>, None::<String>);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "route" => route = Some(value.into_owned()),
            "n" => n = Some(value.into_owned()),
            "at" => at = Some(value.into_owned()),
            "ms" => ms = Some(value.into_owned()),
            "rate" => rate = Some(value.into_owned()),
            "duration" => duration = Some(value.into_owned()),
            other => {
                return Err(json!({"error": "unknown parameter", "parameter": other,
                                  "allowed": ["route", "n", "at", "ms", "rate", "duration"]}))
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
    let n_given = n.is_some();
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
    let at = at.unwrap_or_else(|| "all".to_owned());
    if at.is_empty() || at.chars().count() > 64 {
        return Err(json!({"error": "unknown target", "parameter": "at",
                          "allowed": "a panel's name, pool, event-loop, or all"}));
    }
    let number = |name: &str, text: &str, low: f64, high: f64, what: &str| match text.parse::<f64>()
    {
        Ok(v) if v.is_finite() && v >= low && v <= high => Ok(v),
        _ => Err(
            json!({"error": "out of range", "parameter": name, "received": text,
                        "allowed": what}),
        ),
    };
    let rate = match rate {
        None => None,
        Some(text) => Some(number(
            "rate",
            &text,
            0.1,
            MAX_RATE,
            &format!("0.1 to {MAX_RATE} requests a second"),
        )?),
    };
    let duration = match duration {
        None => 5.0,
        Some(text) => number(
            "duration",
            &text,
            1.0,
            MAX_DURATION_S,
            &format!("1 to {MAX_DURATION_S} seconds"),
        )?,
    };
    if rate.is_some() && n_given {
        return Err(json!({"error": "one or the other", "parameter": "n",
            "allowed": "n= for a burst, or rate= (and duration=) for steady traffic"}));
    }
    if let Some(rate) = rate {
        if rate * duration > MAX_STEADY {
            return Err(json!({"error": "out of range", "parameter": "rate",
                "received": rate,
                "allowed": format!("at most {MAX_STEADY} requests in all: rate × duration \
                                    ({duration} s)")}));
        }
    }
    Ok(FireRequest {
        route,
        ms,
        n,
        at,
        twins: Vec::new(),
        rate,
        duration: Duration::from_secs_f64(duration),
    })
}

/// A press read against this stage: `at=` resolved to its panels.
pub(super) fn read(stage: &Stage, query: &str) -> Result<FireRequest, Value> {
    let mut request = parse_fire(query)?;
    request.twins = stage.select(&request.at)?;
    Ok(request)
}

/// A burst ready to fire at one twin.
pub(super) struct Planned {
    pub(super) twin: &'static str,
    pub(super) target: Target,
    pub(super) plan: Plan,
}

/// What each twin would be fired with, or why not: the model's plan from the twin's `hello`,
/// refusing what the twin would refuse (a `?ms=` over its `--max-ms`).
pub(super) fn plans(
    stage: &Stage,
    request: &FireRequest,
) -> Result<(Vec<Planned>, Vec<Value>), Value> {
    let (mut planned, mut refused) = (Vec::new(), Vec::new());
    let path = request.path();
    for &name in &request.twins {
        let Some(twin) = stage.twin(name) else {
            continue;
        };
        let Some(info) = stage.state(twin).info else {
            refused.push(json!({"twin": name, "error":
                format!("not running: {}", twin.start)}));
            continue;
        };
        if let Some(ms) = request.ms {
            if ms > info.max_ms {
                return Err(
                    json!({"error": "out of range", "parameter": "ms", "received": ms,
                    "allowed": format!("0 to {} ({name}'s --max-ms)", info.max_ms)}),
                );
            }
        }
        let settings = Settings::default();
        let made = twin.base.with_path(&path).and_then(|target| {
            experiment::plan_for(&target, request.n, &settings, Some(info))
                .map(|plan| (target, plan))
        });
        match made {
            Ok((target, plan)) => planned.push(Planned {
                twin: name,
                target,
                plan,
            }),
            Err(e) => refused.push(json!({"twin": name, "error": e.0})),
        }
    }
    Ok((planned, refused))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fire_requests_are_read_or_refused_with_the_limit() {
        let ok = parse_fire("route=/async-io&n=100&at=event-loop").expect("valid");
        assert_eq!(
            (ok.route.as_str(), ok.n, ok.at.as_str()),
            ("/async-io", 100, "event-loop")
        );
        assert_eq!(parse_fire("").expect("defaults").at, "all");
        let e = parse_fire("n=1001").expect_err("over");
        assert_eq!(e["allowed"], "1 to 1000");
        assert_eq!(
            parse_fire("route=/nope").expect_err("route")["error"],
            "unknown route"
        );
        assert_eq!(
            parse_fire("at=").expect_err("at")["error"],
            "unknown target"
        );
        let steady = parse_fire("route=/io&rate=12&duration=5").expect("steady");
        assert_eq!(
            (steady.rate, steady.duration),
            (Some(12.0), Duration::from_secs(5))
        );
        assert_eq!(parse_fire("rate=0").expect_err("rate")["parameter"], "rate");
        assert_eq!(
            parse_fire("rate=400&duration=30").expect_err("total")["parameter"],
            "rate"
        );
        assert_eq!(
            parse_fire("rate=4&duration=99").expect_err("duration")["parameter"],
            "duration"
        );
    }
}
