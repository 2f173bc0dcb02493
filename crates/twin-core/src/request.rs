//! From a request line to a decision: answer at once, or a [`Job`] for the worker to carry out.
//!
//! Both twins call [`dispatch`] with the method and the request target exactly as sent, so a bad
//! parameter, an unknown path or a wrong method gets the same answer from either of them.

use std::time::Duration;

use crate::config::{Config, MAX_TASKS};
pub use crate::job::{Job, ParamError};
use crate::reply::Reply;
use crate::route::{Param, Route};

/// What a worker does with a request.
#[derive(Debug)]
pub enum Dispatch {
    /// Timed work, then a reply built by [`Reply::work`].
    Work(Job),
    /// An answer that needs no work: the index, the health check, or an error.
    Reply(Reply),
}

/// Split a request target (`/io?ms=5`, or absolute-form `http://host/io?ms=5`) into path and query.
pub fn split_target(target: &str) -> (&str, Option<&str>) {
    let origin = match target.find("://") {
        Some(i) if !target[..i].contains('/') => {
            let rest = &target[i + 3..];
            match rest.find(['/', '?']) {
                Some(j) if rest.as_bytes()[j] == b'/' => &rest[j..],
                Some(j) => &rest[j..],
                None => "",
            }
        }
        _ => target,
    };
    // A query with no path (`http://host?x`) still means the root.
    let (path, query) = match origin.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (origin, None),
    };
    (if path.is_empty() { "/" } else { path }, query)
}

/// The browser's icon request: answered at once with no content, and kept out of the access log.
pub const FAVICON: &str = "/favicon.ico";

/// Does a request's `Accept` header ask for a web page first (a browser), rather than anything
/// (curl, burst)? `GET /` then answers with a small HTML page instead of JSON.
pub fn wants_html(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',')
            .next()
            .is_some_and(|first| first.trim().starts_with("text/html"))
    })
}

/// Decide what to do with a request. `method` and `target` are as the client sent them; `html`
/// is [`wants_html`] of its `Accept` header.
pub fn dispatch(method: &str, target: &str, html: bool, config: &Config) -> Dispatch {
    let (path, query) = split_target(target);
    if path == FAVICON {
        return Dispatch::Reply(Reply::no_content());
    }
    let Some(route) = Route::from_path(path) else {
        return Dispatch::Reply(Reply::not_found(path));
    };
    // HEAD is GET without the body, as in Flask and FastAPI; each server leaves the body out.
    if method != "GET" && method != "HEAD" {
        return Dispatch::Reply(Reply::method_not_allowed(method, route));
    }
    let job = match parse_params(route, query.unwrap_or(""), config) {
        Ok(job) => job,
        Err(e) => return Dispatch::Reply(Reply::bad_request(route, &e)),
    };
    match route {
        Route::Index if html => Dispatch::Reply(Reply::index_html(config)),
        Route::Index => Dispatch::Reply(Reply::index(config)),
        Route::Healthz => Dispatch::Reply(Reply::health()),
        _ => Dispatch::Work(job),
    }
}

/// Parse and validate the query for `route`. Values out of range are rejected, never clamped.
pub fn parse_params(route: Route, query: &str, config: &Config) -> Result<Job, ParamError> {
    let mut ms: Option<u64> = None;
    let mut tasks: Option<u32> = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let Some(param) = route.params().iter().copied().find(|p| p.name() == name) else {
            return Err(ParamError {
                error: "unknown parameter",
                parameter: name.into_owned(),
                received: value.into_owned(),
                allowed: allowed_params(route),
            });
        };
        let already = match param {
            Param::Ms => ms.is_some(),
            Param::Tasks => tasks.is_some(),
        };
        if already {
            return Err(ParamError {
                error: "parameter given more than once",
                parameter: name.into_owned(),
                received: value.into_owned(),
                allowed: "each parameter at most once".to_owned(),
            });
        }
        match param {
            Param::Ms => ms = Some(parse_in_range(param, &value, 0, config.max_ms)?),
            Param::Tasks => {
                let k = parse_in_range(param, &value, 1, u64::from(MAX_TASKS))?;
                // parse_in_range bounds k by MAX_TASKS, which fits in u32.
                tasks = Some(u32::try_from(k).unwrap_or(MAX_TASKS));
            }
        }
    }
    let tasks = if route == Route::AsyncIoMulti {
        tasks.unwrap_or(config.multi_tasks)
    } else {
        1
    };
    Ok(Job {
        route,
        wait: Duration::from_millis(ms.unwrap_or(config.task_ms)),
        tasks,
    })
}

fn parse_in_range(param: Param, value: &str, min: u64, max: u64) -> Result<u64, ParamError> {
    let allowed = match param {
        Param::Ms => format!("integer milliseconds {min}..={max}"),
        Param::Tasks => format!("integer number of tasks {min}..={max}"),
    };
    let reject = |error| ParamError {
        error,
        parameter: param.name().to_owned(),
        received: value.to_owned(),
        allowed: allowed.clone(),
    };
    // A negative whole number is a number, just not one in range.
    if value.len() > 1 && value.starts_with('-') && value[1..].bytes().all(|b| b.is_ascii_digit()) {
        return Err(reject("out of range"));
    }
    // Only plain ASCII digits: no sign, no spaces, no fractions.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(reject("not a whole number"));
    }
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(reject("out of range")),
    }
}

fn allowed_params(route: Route) -> String {
    let names: Vec<&str> = route.params().iter().map(|p| p.name()).collect();
    if names.is_empty() {
        format!("{} takes no parameters", route.path())
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::ServerKind;

    fn cfg() -> Config {
        Config::for_tests(ServerKind::Pool, 4, 1000)
    }

    fn job(target: &str) -> Job {
        match dispatch("GET", target, false, &cfg()) {
            Dispatch::Work(j) => j,
            Dispatch::Reply(r) => panic!("expected work for {target}, got {} {}", r.status, r.body),
        }
    }

    fn reply(method: &str, target: &str) -> Reply {
        match dispatch(method, target, false, &cfg()) {
            Dispatch::Reply(r) => r,
            Dispatch::Work(j) => panic!("expected a reply for {target}, got {j:?}"),
        }
    }

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(job("/io").wait, Duration::from_millis(1000));
        assert_eq!(job("/io").tasks, 1);
        assert_eq!(job("/io?ms=250").wait, Duration::from_millis(250));
        let multi = job("/async-io-multi?tasks=5&ms=100");
        assert_eq!((multi.wait, multi.tasks), (Duration::from_millis(100), 5));
        assert_eq!(multi.slice(), Duration::from_millis(20));
        assert_eq!(job("/async-io-multi").tasks, 2);
        assert_eq!(job("/cpu?ms=0").wait, Duration::ZERO);
    }

    #[test]
    fn targets_split_like_a_server_would() {
        assert_eq!(split_target("/io?ms=1"), ("/io", Some("ms=1")));
        assert_eq!(split_target("/io"), ("/io", None));
        assert_eq!(split_target("http://h:1/io?ms=1"), ("/io", Some("ms=1")));
        assert_eq!(split_target("http://h:1"), ("/", None));
        assert_eq!(split_target("http://h?x=1"), ("/", Some("x=1")));
        assert_eq!(
            split_target("/a?b=http://x/y"),
            ("/a", Some("b=http://x/y"))
        );
    }

    #[test]
    fn bad_parameters_name_themselves() {
        for (target, param, error) in [
            ("/io?ms=abc", "ms", "not a whole number"),
            ("/io?ms=-1", "ms", "out of range"),
            ("/io?ms=-", "ms", "not a whole number"),
            ("/io?ms=+5", "ms", "not a whole number"),
            ("/io?ms=", "ms", "not a whole number"),
            ("/io?ms=1.5", "ms", "not a whole number"),
            ("/io?ms=60001", "ms", "out of range"),
            ("/io?ms=99999999999999999999999", "ms", "out of range"),
            ("/async-io-multi?tasks=0", "tasks", "out of range"),
            ("/async-io-multi?tasks=1001", "tasks", "out of range"),
            ("/io?tasks=2", "tasks", "unknown parameter"),
            ("/io?ms=1&ms=2", "ms", "parameter given more than once"),
            ("/?x=1", "x", "unknown parameter"),
        ] {
            let r = reply("GET", target);
            assert_eq!(r.status, 400, "{target}");
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(v["parameter"], param, "{target}");
            assert_eq!(v["error"], error, "{target}");
            assert!(
                v["allowed"].as_str().is_some_and(|s| !s.is_empty()),
                "{target}"
            );
        }
        let r = reply("GET", "/io?ms=70000");
        assert!(
            r.body.contains("0..=60000"),
            "the limit is stated: {}",
            r.body
        );
    }

    #[test]
    fn unknown_paths_and_methods() {
        let r = reply("GET", "/nope");
        assert_eq!(r.status, 404);
        assert!(r.body.contains("/async-io-multi"), "404 lists the routes");
        let r = reply("POST", "/io");
        assert_eq!(r.status, 405);
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| *k == "Allow" && v == "GET, HEAD"));
        assert_eq!(reply("GET", "/healthz").status, 200);
        assert_eq!(reply("GET", "/").status, 200);
        assert_eq!(reply("HEAD", "/").status, 200);
        assert!(matches!(
            dispatch("HEAD", "/io", false, &cfg()),
            Dispatch::Work(_)
        ));
        assert_eq!(reply("GET", "/favicon.ico").status, 204);
    }

    #[test]
    fn browsers_get_a_page_and_everyone_else_json() {
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(wants_html(Some(browser)));
        assert!(!wants_html(Some("*/*")));
        assert!(!wants_html(None));
        assert!(!wants_html(Some("application/json, text/html")));
        let page = match dispatch("GET", "/", true, &cfg()) {
            Dispatch::Reply(r) => r,
            Dispatch::Work(_) => panic!("a page"),
        };
        assert!(page.content_type.starts_with("text/html"), "{page:?}");
        assert!(page.body.contains("href=\"/io?ms=1000\""), "{}", page.body);
        assert!(page.body.contains("burst"), "{}", page.body);
    }
}
