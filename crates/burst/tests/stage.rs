//! The live stage in a real browser: headless Chromium, driven through WebDriver, reads what the
//! page shows while the stage fires at two twins started here — and what it shows when a twin
//! stops and starts again. Screenshots of each step go to `target/tmp/stage-screens/`.
//!
//! Needs Chromium and its WebDriver (`.ci/run` installs Debian's `chromium` and
//! `chromium-driver`); without them the test fails and says what to install, unless
//! `TWINS_SKIP_BROWSER=1` says to skip it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use burst::stage::{self, StageConfig};
use burst::Target;
use serde_json::Value;
use testkit::browser::Browser;
use twin_core::run::Twin;
use twin_core::{Config, ServerKind};

/// T for both twins: short, so a 4-wave burst takes well under a second.
const T_MS: u64 = 200;

fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn start_pool(addr: SocketAddr) -> pool_server::Running {
    let listener = twin_core::listener::bind(addr, 1024).expect("bind the pool twin");
    pool_server::start(listener, Config::for_tests(ServerKind::Pool, 4, T_MS)).expect("pool")
}

fn start_event_loop(addr: SocketAddr) -> async_server::Running {
    let listener = twin_core::listener::bind(addr, 1024).expect("bind the event-loop twin");
    async_server::start(listener, Config::for_tests(ServerKind::EventLoop, 4, T_MS)).expect("async")
}

/// A stage watching twins at `pool` and `event_loop` (running or not), on its own runtime.
fn start_stage(pool: SocketAddr, event_loop: SocketAddr) -> (tokio::runtime::Runtime, SocketAddr) {
    start_stage_of(&[
        ("pool", format!("http://{pool}")),
        ("event-loop", format!("http://{event_loop}")),
    ])
}

/// A stage watching these named servers, one panel each, on its own runtime.
fn start_stage_of(servers: &[(&str, String)]) -> (tokio::runtime::Runtime, SocketAddr) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let addr = rt.block_on(async {
        let mut targets = Vec::new();
        for (name, url) in servers {
            targets.push(((*name).to_owned(), Target::parse(url).await.expect("url")));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(stage::serve(
            listener,
            StageConfig::named(targets),
            std::future::pending(),
        ));
        addr
    });
    (rt, addr)
}

struct Page {
    browser: Browser,
    shots: PathBuf,
}

impl Page {
    /// Headless Chromium for a test, with a folder for its screenshots; `None` (said) when
    /// TWINS_SKIP_BROWSER=1.
    fn open() -> Option<Page> {
        if std::env::var_os("TWINS_SKIP_BROWSER").is_some_and(|v| v == "1") {
            eprintln!("SKIPPED: TWINS_SKIP_BROWSER=1");
            return None;
        }
        let browser = match Browser::start(1280, 720) {
            Ok(b) => b,
            Err(e) => panic!("{e} (or set TWINS_SKIP_BROWSER=1 to skip this test)"),
        };
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("stage-screens");
        std::fs::create_dir_all(&shots).expect("screenshot folder");
        Some(Page { browser, shots })
    }

    fn summary(&self) -> Value {
        self.browser
            .eval("return window.stage.summary();")
            .expect("read the page")
    }

    /// Wait (up to 15 s) until the page shows what `cond` looks for.
    fn wait(&self, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            let s = self.summary();
            if cond(&s) {
                return s;
            }
            assert!(Instant::now() < end, "the page never showed {what}: {s:#}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The N and the route the page would fire.
    fn n_and_route(&self) -> (Value, Value) {
        let read = |what: &str| {
            self.browser
                .eval(&format!("return window.stage.{what}();"))
                .expect("read the page")
        };
        (read("n"), read("route"))
    }

    fn text(&self, selector: &str) -> String {
        let script = format!("return document.querySelector('{selector}').innerText;");
        self.browser
            .eval(&script)
            .expect("read text")
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    fn shot(&self, name: &str) {
        let png = self.browser.screenshot().expect("screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("save screenshot");
    }
}

fn served(s: &Value, twin: &str) -> Vec<u64> {
    s[twin]["lanes"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|l| l["served"].as_u64().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_stage_shows_waves_at_the_pool_one_wave_at_the_loop_and_twins_coming_and_going() {
    let Some(page) = Page::open() else {
        return;
    };

    let (pool_addr, loop_addr) = (free_addr(), free_addr());
    let (_rt, stage) = start_stage(pool_addr, loop_addr);
    let stage_url = format!("http://{stage}");

    // Nothing running yet: each panel says what to start.
    page.browser.goto(&stage_url).expect("open the stage");
    page.wait("both twins down", |s| {
        s["pool"]["up"] == false && s["event-loop"]["up"] == false
    });
    let says = page.text("#panel-pool .down");
    assert!(
        says.contains(&format!(
            "release{}pool-server --port {}",
            std::path::MAIN_SEPARATOR,
            pool_addr.port()
        )),
        "{says}"
    );
    page.shot("1-nothing-running");

    // Both start: the panels come alive by themselves.
    let pool = start_pool(pool_addr);
    let event_loop = start_event_loop(loop_addr);
    page.wait("both twins up", |s| {
        s["pool"]["up"] == true && s["event-loop"]["up"] == true
    });
    page.shot("2-both-up");

    // /io × 16 at the pool, with one key: 4 served while 12 wait, then 4 waves of 4.
    page.browser.press("p").expect("press P");
    page.wait("the pool's first wave: 4 served, 12 waiting", |s| {
        s["pool"]["serving"] == 4 && s["pool"]["waiting"] == 12
    });
    page.shot("3-pool-first-wave");
    let s = page.wait("the pool's result", |s| s["pool"]["result"].is_object());
    page.shot("4-pool-done");
    assert_eq!(served(&s, "pool"), [4, 4, 4, 4], "{s:#}");
    let result = &s["pool"]["result"];
    assert_eq!(result["status"], "ok", "{result:#}");
    assert_eq!(
        result["waves"],
        serde_json::json!([4, 4, 4, 4]),
        "{result:#}"
    );
    let verdict = page.text("#panel-pool .verdict");
    assert!(
        verdict.starts_with('✓') && verdict.contains("4 waves"),
        "{verdict}"
    );

    // A reload later draws what the page that watched drew: the same axis, not one stretched
    // to the time since the burst.
    let watched_span = s["pool"]["spanUs"].as_f64().expect("a span");
    std::thread::sleep(Duration::from_millis(1500)); // the presenter reloads a while later
    page.browser.goto(&stage_url).expect("reload");
    let s = page.wait("the pool's result after the reload", |s| {
        s["pool"]["result"].is_object() && s["pool"]["spanUs"].as_f64().is_some_and(|x| x > 0.0)
    });
    let reloaded_span = s["pool"]["spanUs"].as_f64().expect("a span");
    assert!(
        (reloaded_span - watched_span).abs() <= watched_span * 0.05,
        "the axis was {watched_span} µs as watched, {reloaded_span} µs after a reload"
    );
    assert_eq!(served(&s, "pool"), [4, 4, 4, 4], "{s:#}");
    page.shot("4b-pool-done-after-reload");

    // Typing N, then a route key: N is what was typed, the route what the key says.
    page.browser
        .eval("const n = document.getElementById('n'); n.focus(); n.select(); return null;")
        .expect("focus N");
    page.browser.press("8").expect("type 8");
    let end = Instant::now() + Duration::from_secs(5);
    while page
        .browser
        .eval("return document.getElementById('n').classList.contains('editing');")
        .expect("read N")
        == Value::Bool(true)
    {
        assert!(Instant::now() < end, "a typed N was never taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    page.browser.press("5").expect("press 5");
    assert_eq!(page.n_and_route(), (Value::from("8"), Value::from("/cpu")));

    // /cpu at both: one twin after the other (together they would share the cores), and a ✓
    // only beside a verdict that held.
    page.browser.press("b").expect("press B");
    let s = page.wait("both /cpu results", |s| {
        s["pool"]["result"]["status"].is_string()
            && s["event-loop"]["result"]["status"].is_string()
            && s["event-loop"]["result"]["wall_ms"].is_number()
    });
    page.shot("4c-cpu-one-after-the-other");
    let pool_end = s["pool"]["lastDoneUs"].as_f64().unwrap_or(0.0);
    let loop_start = s["event-loop"]["t0"].as_f64().unwrap_or(0.0);
    assert!(
        loop_start >= pool_end - 5_000.0,
        "the event loop's /cpu began {} ms before the pool's ended",
        (pool_end - loop_start) / 1000.0
    );
    for twin in ["pool", "event-loop"] {
        let verdict = page.text(&format!("#panel-{twin} .verdict"));
        let ok = s[twin]["result"]["status"] == "ok";
        assert_eq!(verdict.starts_with('✓'), ok, "{twin}: {verdict}");
    }

    // A burst the model says takes long is asked about first; Esc leaves it unfired.
    page.browser.press("1").expect("press 1");
    page.browser
        .eval("const n = document.getElementById('n'); n.value = '1000'; n.dispatchEvent(new Event('input')); n.blur(); return null;")
        .expect("N = 1000");
    let end = Instant::now() + Duration::from_secs(5);
    while page
        .browser
        .eval("return window.stage.plan()?.predicted_ms ?? 0;")
        .expect("plan")
        .as_f64()
        .unwrap_or(0.0)
        < 30_000.0
    {
        assert!(Instant::now() < end, "no prediction for 1000 × /io");
        std::thread::sleep(Duration::from_millis(20));
    }
    page.browser.press("p").expect("press P");
    let asked = page
        .browser
        .eval("return !document.getElementById('confirm').hidden;")
        .expect("read the question");
    assert_eq!(
        asked,
        Value::Bool(true),
        "a 1000-request burst fired unasked"
    );
    page.shot("4d-asks-before-a-long-burst");
    page.browser.press("\u{E00C}").expect("press Esc");
    let s = page.summary();
    assert_eq!(s["pool"]["serving"], 0, "{s:#}");

    // Esc during a long burst: it ends, and the twin is free again within about T.
    page.browser.press("\u{E015}").expect("press ↓: 100");
    page.browser.press("p").expect("press P");
    page.wait("the pool busy with 100", |s| s["pool"]["serving"] == 4);
    let stopped = Instant::now();
    page.browser.press("\u{E00C}").expect("press Esc");
    page.wait("the burst cancelled", |s| {
        s["pool"]["result"]["status"] == "cancelled"
    });
    page.shot("4e-cancelled");
    assert_eq!(testkit::get(pool_addr, "/io?ms=0").status, 200);
    let free = stopped.elapsed();
    assert!(
        free < Duration::from_millis(T_MS + 1500),
        "the pool was busy {free:?} after Esc (T = {T_MS} ms)"
    );

    // Another origin's page cannot fire: a no-cors fetch from the pool twin's own page. Bursts
    // are numbered: one fired from a terminal before and one after must follow each other.
    let from_terminal = || {
        let r = testkit::raw_exchange(
            stage,
            b"POST /fire?route=/io&n=4&at=pool HTTP/1.1\r\nHost: stage\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            Duration::from_secs(10),
        )
        .expect("a burst fired from a terminal");
        let fired: Value = serde_json::from_str(&r.body).expect("JSON");
        fired["burst"].as_u64().expect("a burst number")
    };
    let before = from_terminal();
    page.browser
        .goto(&format!("http://{pool_addr}/"))
        .expect("another origin");
    let attempt = format!(
        "fetch('http://{stage}/fire?route=/io&n=4&at=pool', {{method: 'POST', mode: 'no-cors'}})\
         .catch(() => null); return null;"
    );
    page.browser
        .eval(&attempt)
        .expect("try to fire from another origin");
    std::thread::sleep(Duration::from_millis(300)); // the fetch's time to arrive, if it would
    assert_eq!(
        from_terminal(),
        before + 1,
        "a burst was fired from another origin's page"
    );
    page.browser.goto(&stage_url).expect("back to the stage");
    page.browser.press("\u{E013}").expect("press ↑: 1000");
    page.browser.press("r").expect("press R: reset");
    assert_eq!(page.n_and_route(), (Value::from("16"), Value::from("/io")));

    // /async-io × 16 at the event loop: all 16 served at once, one wave.
    page.browser.press("2").expect("press 2");
    page.browser.press("a").expect("press A");
    page.wait("16 being served at once on the event loop", |s| {
        s["event-loop"]["serving"] == 16
    });
    page.shot("5-event-loop-all-at-once");
    let s = page.wait("the event loop's result", |s| {
        s["event-loop"]["result"]["waves"] == serde_json::json!([16])
    });
    assert_eq!(s["event-loop"]["result"]["status"], "ok", "{s:#}");
    assert_eq!(served(&s, "event-loop").iter().sum::<u64>(), 16);

    // ↑ makes it 100: still one wave, the lanes' bars stacked 25 deep.
    page.browser.press("\u{E013}").expect("press ↑");
    page.browser.press("a").expect("press A");
    page.wait("100 being served at once", |s| {
        s["event-loop"]["serving"] == 100
    });
    page.shot("6-event-loop-100-at-once");
    let s = page.wait("the result of 100", |s| {
        s["event-loop"]["result"]["waves"] == serde_json::json!([100])
    });
    assert_eq!(served(&s, "event-loop"), [25, 25, 25, 25], "{s:#}");

    // A blocking call in an async handler: the loops are shown frozen while it runs.
    page.browser.press("\u{E015}").expect("press ↓");
    page.browser.press("4").expect("press 4");
    page.browser.press("a").expect("press A");
    page.wait("a frozen lane", |s| {
        s["event-loop"]["lanes"]
            .as_array()
            .is_some_and(|l| l.iter().any(|l| l["frozen"] == true))
    });
    page.shot("7-event-loop-frozen");
    let label = page.text("#panel-event-loop .lanes");
    assert!(label.contains("FROZEN"), "{label}");
    let s = page.wait("the blocking burst's result: waves of 4", |s| {
        s["event-loop"]["result"]["waves"] == serde_json::json!([4, 4, 4, 4])
    });
    assert_eq!(
        s["event-loop"]["frozenLanes"], 4,
        "each loop was seen frozen: {s:#}"
    );

    // Stop the pool twin: its panel says so; start it again: it comes back.
    let _ = pool.shutdown(Duration::from_secs(5));
    page.wait("the pool panel saying it is down", |s| {
        s["pool"]["up"] == false
    });
    page.shot("8-pool-stopped");
    let pool = start_pool(pool_addr);
    page.wait("the pool panel back", |s| s["pool"]["up"] == true);
    page.shot("9-pool-back");
    drop((pool, event_loop));
}

/// The stage over plain HTTP, with nothing to watch: it says what is not running, refuses what it
/// cannot fire with the limit, and keeps no file it was not asked for.
#[test]
fn the_stage_answers_without_twins_and_refuses_bad_bursts_with_the_limit() {
    let (_rt, stage) = start_stage(free_addr(), free_addr());
    let ask = |head: &str| {
        let request = format!(
            "{head} HTTP/1.1\r\nHost: stage\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        testkit::raw_exchange(stage, request.as_bytes(), Duration::from_secs(10))
            .expect("an answer")
    };
    let page = ask("GET /");
    assert!(
        page.status == 200 && page.body.contains("/stage.js"),
        "{}",
        page.body
    );
    // The twins are not there: each says so, with the command that starts it.
    let r = ask("POST /fire?route=/io&n=16&at=both");
    assert_eq!(r.status, 200, "{}", r.body);
    let result: Value = serde_json::from_str(&r.body).expect("JSON");
    let twins = result["twins"].as_array().expect("twins");
    assert_eq!(twins.len(), 2, "{result:#}");
    for t in twins {
        let error = t["error"].as_str().unwrap_or("");
        assert!(error.contains("not running: start it with `target"), "{t}");
    }
    let r = ask("POST /fire?route=/io&n=1001");
    assert_eq!(r.status, 400);
    let refused: Value = serde_json::from_str(&r.body).expect("JSON");
    assert_eq!(refused["allowed"], "1 to 1000", "{}", r.body);
    assert_eq!(ask("POST /fire?route=/nope").status, 400);
    assert_eq!(
        ask("GET /fire?route=/io").status,
        405,
        "a page cannot fire by following a link"
    );
    let r = ask("GET /bursts/99/pool.json");
    assert_eq!(r.status, 404);
    assert!(r.body.contains("keeps the last 20"), "{}", r.body);
}

fn ask_stage(stage: SocketAddr, head: &str, extra: &str) -> testkit::RawResponse {
    let request = format!(
        "{head} HTTP/1.1\r\nHost: {stage}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    testkit::raw_exchange(stage, request.as_bytes(), Duration::from_secs(30)).expect("an answer")
}

/// Wait until the stage knows both twins (their `hello`): its plan then has a model for each.
fn wait_for_twins(stage: SocketAddr) {
    testkit::wait_for("the stage to see both twins", || {
        let r = ask_stage(stage, "GET /plan?route=/io&n=16&at=both", "");
        let plan: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        let modelled = plan["twins"].as_array().map_or(0, |twins| {
            twins.iter().filter(|t| t["predicted_ms"].is_u64()).count()
        });
        modelled == 2
    });
}

/// Both twins and a stage that sees them.
struct Setup {
    pool: pool_server::Running,
    event_loop: async_server::Running,
    _rt: tokio::runtime::Runtime,
    stage: SocketAddr,
    pool_addr: SocketAddr,
    loop_addr: SocketAddr,
}

impl Setup {
    fn start() -> Setup {
        let (pool_addr, loop_addr) = (free_addr(), free_addr());
        let (pool, event_loop) = (start_pool(pool_addr), start_event_loop(loop_addr));
        let (rt, stage) = start_stage(pool_addr, loop_addr);
        wait_for_twins(stage);
        Setup {
            pool,
            event_loop,
            _rt: rt,
            stage,
            pool_addr,
            loop_addr,
        }
    }
}

/// Only the stage's own page (or curl) fires: another origin's page — a form, a no-cors fetch, a
/// file:// page — gets a JSON 403, and so does a burst the twin would refuse (`ms` over its
/// `--max-ms`) get a 400 before anything is fired.
#[test]
fn the_stage_fires_only_for_its_own_page_and_only_what_the_twins_accept() {
    let setup = Setup::start();
    let stage = setup.stage;
    let fire = "POST /fire?route=/io&n=4&at=pool&ms=10";
    for foreign in [
        "Origin: http://evil.example\r\n",
        "Origin: null\r\n",
        "Sec-Fetch-Site: cross-site\r\n",
        "Origin: http://localhost:1\r\nSec-Fetch-Site: same-site\r\n",
    ] {
        for what in [fire, "POST /cancel"] {
            let r = ask_stage(stage, what, foreign);
            assert_eq!(r.status, 403, "{what} with {foreign:?}: {}", r.body);
            let body: Value = serde_json::from_str(&r.body).expect("JSON");
            assert_eq!(body["error"], "forbidden", "{body}");
        }
    }
    // The stage's own page: same origin.
    let own = format!("Origin: http://{stage}\r\nSec-Fetch-Site: same-origin\r\n");
    let r = ask_stage(stage, fire, &own);
    assert_eq!(r.status, 200, "{}", r.body);
    let result: Value = serde_json::from_str(&r.body).expect("JSON");
    assert_eq!(result["twins"][0]["status"], "ok", "{result:#}");
    // What the twin would refuse is refused here, with the twin's limit.
    let r = ask_stage(stage, "POST /fire?route=/io&n=4&at=pool&ms=60001", "");
    assert_eq!(r.status, 400, "{}", r.body);
    let refused: Value = serde_json::from_str(&r.body).expect("JSON");
    assert_eq!(refused["parameter"], "ms");
    assert!(
        refused["allowed"]
            .as_str()
            .is_some_and(|a| a.contains("60000") && a.contains("--max-ms")),
        "{refused}"
    );
    // Nothing to cancel: said so.
    assert_eq!(ask_stage(stage, "POST /cancel", "").status, 409);
}

/// A long burst given up with `POST /cancel` (Esc on the page) ends at once as cancelled, and
/// both twins are free again within about T: each skips the requests it had not picked up.
#[test]
fn a_cancelled_burst_frees_both_twins_within_about_t() {
    let setup = Setup::start();
    let (stage, pool_addr, loop_addr) = (setup.stage, setup.pool_addr, setup.loop_addr);
    let (pool, event_loop) = (&setup.pool, &setup.event_loop);
    // 100 × /async-io-blocking: 25 waves of T on each twin (5 s).
    let firing = std::thread::spawn(move || {
        ask_stage(
            stage,
            "POST /fire?route=/async-io-blocking&n=100&at=both",
            "",
        )
    });
    testkit::wait_for("both twins busy", || {
        pool.in_flight() >= 4 && event_loop.in_flight() >= 1
    });
    let cancelled = Instant::now();
    let r = ask_stage(stage, "POST /cancel", "");
    assert_eq!(r.status, 202, "{}", r.body);
    // Both twins answer a new request within about T: each skips what it had not picked up.
    let asks: Vec<_> = [pool_addr, loop_addr]
        .into_iter()
        .map(|addr| std::thread::spawn(move || testkit::get(addr, "/io?ms=0").status))
        .collect();
    for ask in asks {
        assert_eq!(ask.join().expect("an answer"), 200);
    }
    let free = cancelled.elapsed();
    assert!(
        free < Duration::from_millis(T_MS + 800),
        "the twins were busy for {free:?} after the burst was cancelled (T = {T_MS} ms)"
    );
    let r = firing.join().expect("the burst's answer");
    let result: Value = serde_json::from_str(&r.body).expect("JSON");
    for t in result["twins"].as_array().expect("twins") {
        assert_eq!(t["status"], "cancelled", "{t}");
        let verdict = t["verdict"].as_str().unwrap_or("");
        assert!(verdict.contains("unserved"), "{verdict}");
    }
}

/// A burst the stage fired is kept as a recording; a stage with no twins plays it back.
#[test]
fn a_recorded_burst_plays_back_on_a_stage_with_no_twins() {
    let setup = Setup::start();
    let stage = setup.stage;
    let r = ask_stage(stage, "POST /fire?route=/io&n=8&at=both", "");
    let result: Value = serde_json::from_str(&r.body).expect("JSON");
    let link = result["recording"]
        .as_str()
        .unwrap_or_else(|| panic!("a recording link: {}", r.body))
        .to_owned();
    let file = ask_stage(stage, &format!("GET {link}"), "");
    assert_eq!(file.status, 200);
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("stage-recording.json");
    std::fs::write(&path, &file.body).expect("save the recording");
    let recording = stage::Recording::load(&path).expect("a recording");
    assert_eq!((recording.route.as_str(), recording.n), ("/io", 8));

    // Another stage, watching nothing, plays it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let replaying = rt.block_on(async {
        let mut config = StageConfig::watching(
            Target::parse(&format!("http://{}", free_addr()))
                .await
                .expect("url"),
            Target::parse(&format!("http://{}", free_addr()))
                .await
                .expect("url"),
        );
        config.recordings = vec![recording];
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(stage::serve(listener, config, std::future::pending()));
        addr
    });
    let played = Instant::now();
    let r = ask_stage(replaying, "POST /fire?route=/io&n=8&at=both", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let replayed: Value = serde_json::from_str(&r.body).expect("JSON");
    assert_eq!(replayed["replay"], true, "{replayed:#}");
    let statuses: Vec<&str> = replayed["twins"]
        .as_array()
        .expect("twins")
        .iter()
        .filter_map(|t| t["status"].as_str())
        .collect();
    assert_eq!(statuses, ["ok", "ok"], "{replayed:#}");
    // At its own pace: the pool's two waves of T.
    assert!(
        played.elapsed() >= Duration::from_millis(2 * T_MS),
        "{:?}",
        played.elapsed()
    );
    let none = ask_stage(replaying, "POST /fire?route=/cpu&n=8&at=both", "");
    assert_eq!(none.status, 404, "{}", none.body);
}

#[test]
fn steady_traffic_shows_the_pool_queue_growing_and_what_a_limit_sheds() {
    let Some(page) = Page::open() else {
        return;
    };
    let (pool_addr, loop_addr) = (free_addr(), free_addr());
    // The page's steady traffic waits 500 ms a request: the pool of 4 serves μ = 8/s. The event
    // loop sheds beyond 2 in the server (μ = 4/s).
    let _pool = pool_server::start(
        twin_core::listener::bind(pool_addr, 1024).expect("bind"),
        Config::for_tests(ServerKind::Pool, 4, T_MS),
    )
    .expect("pool");
    let mut limited = Config::for_tests(ServerKind::EventLoop, 2, T_MS);
    limited.limit_concurrency = Some(2);
    let _event_loop = async_server::start(
        twin_core::listener::bind(loop_addr, 1024).expect("bind"),
        limited,
    )
    .expect("event loop");
    let (_rt, stage) = start_stage(pool_addr, loop_addr);
    page.browser
        .goto(&format!("http://{stage}"))
        .expect("open the stage");
    page.wait("both twins up", |s| {
        s["pool"]["up"] == true && s["event-loop"]["up"] == true
    });
    // T: steady traffic; ↑ to 16 a second and ↓ back to 12 (5 s, 60 requests).
    page.browser.press("t").expect("press T");
    page.browser.press("\u{E013}").expect("press ↑"); // WebDriver's ArrowUp
    page.browser.press("\u{E015}").expect("press ↓"); // and ArrowDown
    let read = |what: &str| {
        page.browser
            .eval(&format!("return window.stage.{what}();"))
            .expect("read the page")
    };
    assert_eq!((read("mode"), read("rate")), ("steady".into(), "12".into()));
    page.browser.press("b").expect("press B");
    // Live: λ 12/s over μ 8/s, the pool's queue grows while the traffic runs.
    let s = page.wait("the pool's queue growing", |s| {
        s["pool"]["steady"].is_object() && s["pool"]["waiting"].as_u64().unwrap_or(0) >= 5
    });
    assert_eq!(s["pool"]["steady"]["rate"], 12.0, "{s:#}");
    assert_eq!(s["pool"]["steady"]["mu"], 8.0, "{s:#}");
    assert!(
        page.text("#panel-pool .counter").contains("λ 12/s · μ 8/s"),
        "{}",
        page.text("#panel-pool .counter")
    );
    page.shot("steady-1-queue-growing");
    let s = page.wait("both results", |s| {
        s["pool"]["result"].is_object() && s["event-loop"]["result"].is_object()
    });
    page.shot("steady-2-done");
    let pool = &s["pool"]["result"];
    assert_eq!(pool["status"], "ok", "{pool:#}");
    assert!(
        pool["verdict"]
            .as_str()
            .is_some_and(|v| v.contains("latency grew as predicted")),
        "{pool:#}"
    );
    assert!(pool["little"]["line"]
        .as_str()
        .is_some_and(|l| l.starts_with("Little's law, L = λ·W: 12.0/s")));
    let el = &s["event-loop"]["result"];
    assert_eq!(el["status"], "ok", "{el:#}");
    let shed = el["shed"].as_u64().expect("a count");
    assert!(shed >= 10, "{el:#}");
    // The page counted every shed request the twin said it shed, as such.
    assert_eq!(s["event-loop"]["shed"], shed, "{s:#}");
    assert!(page
        .text("#panel-event-loop .counter")
        .contains(&format!("{shed} shed (503)")));
}

/// The real stacks on the stage: gunicorn + Flask beside pool-server, uvicorn + FastAPI beside
/// async-server, four panels. B fires at all four at the same instant: the pool-style panels
/// show four waves, the loop-style ones one, each judged by the same model from its own hello.
/// Skipped (said) where the Python stacks are not installed, unless TWINS_REQUIRE_PYTHON=1.
#[test]
fn four_panels_the_real_stacks_beside_their_twins() {
    let Some(bin) = testkit::python::venv_or_skip() else {
        return;
    };
    let Some(page) = Page::open() else {
        return;
    };
    let (pool_addr, loop_addr) = (free_addr(), free_addr());
    let _pool = start_pool(pool_addr);
    let _event_loop = start_event_loop(loop_addr);
    let gunicorn = testkit::python::gunicorn(&bin, 4, T_MS);
    let uvicorn = testkit::python::uvicorn(&bin, 4, T_MS);
    let (_rt, stage) = start_stage_of(&[
        ("gunicorn + Flask", gunicorn.url().to_owned()),
        ("pool-server", format!("http://{pool_addr}")),
        ("uvicorn + FastAPI", uvicorn.url().to_owned()),
        ("async-server", format!("http://{loop_addr}")),
    ]);
    let names = [
        "gunicorn + Flask",
        "pool-server",
        "uvicorn + FastAPI",
        "async-server",
    ];
    page.browser
        .goto(&format!("http://{stage}"))
        .expect("open the stage");
    let s = page.wait("all four up", |s| names.iter().all(|n| s[n]["up"] == true));
    for (name, kind) in names
        .iter()
        .zip(["pool", "pool", "event-loop", "event-loop"])
    {
        assert_eq!(s[name]["kind"], kind, "{name}: {s:#}");
    }
    page.shot("four-1-up");

    page.browser.press("b").expect("press B");
    let s = page.wait("all four results", |s| {
        names.iter().all(|n| s[n]["result"]["status"].is_string())
    });
    page.shot("four-2-done");
    for name in names {
        let result = &s[name]["result"];
        assert_eq!(result["status"], "ok", "{name}: {result:#}");
        let pool_style = s[name]["kind"] == "pool";
        let waves = if pool_style {
            serde_json::json!([4, 4, 4, 4])
        } else {
            serde_json::json!([16])
        };
        assert_eq!(result["waves"], waves, "{name}: {result:#}");
        if pool_style {
            // A sync worker takes one request a wave: four each.
            assert_eq!(served(&s, name), [4, 4, 4, 4], "{name}: {s:#}");
        }
        assert_eq!(
            s[name]["done"], 16,
            "{name}: every request seen to its end: {s:#}"
        );
    }
    // uvicorn's workers race to accept: where the lanes show it, the panel says it in words.
    let lanes = served(&s, "uvicorn + FastAPI");
    let (most, least) = (lanes.iter().max(), lanes.iter().min());
    let uneven = s["uvicorn + FastAPI"]["uneven"].as_str().unwrap_or("");
    if most.zip(least).is_some_and(|(m, l)| m - l >= 2) {
        assert!(
            uneven.contains("workers race to accept"),
            "{lanes:?}: {uneven:?}"
        );
    } else {
        assert_eq!(uneven, "", "{lanes:?}");
    }
    // Each panel is titled by what it watches, and the real ones say so.
    let heads: Vec<String> = names
        .iter()
        .map(|n| {
            page.browser
                .eval(&format!(
                    "return [...document.querySelectorAll('.panel')].find(p => p.dataset.twin === {n:?}).querySelector('h2').innerText;"
                ))
                .expect("read a title")
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert!(heads[0].contains("the real thing: gunicorn"), "{heads:?}");
    assert!(
        heads[1].contains("twin · like gunicorn + Flask"),
        "{heads:?}"
    );
    assert!(heads[2].contains("the real thing: uvicorn"), "{heads:?}");
    // Legible on a 1280×720 projector: four lanes of every panel at least 20 px high, the page
    // no taller than the window.
    let layout = page
        .browser
        .eval(
            "return { page: document.documentElement.scrollHeight, \
             lanes: [...document.querySelectorAll('.stage-area')].map(a => a.clientHeight) };",
        )
        .expect("read the layout");
    assert!(layout["page"].as_f64().unwrap_or(9e9) <= 722.0, "{layout}");
    for h in layout["lanes"].as_array().expect("areas") {
        assert!(
            h.as_f64().unwrap_or(0.0) >= 34.0 + 22.0 + 4.0 * 20.0,
            "{layout}"
        );
    }
}

/// A server whose `/events` carries something else than JSON objects is not a twin: the stage
/// says so and passes nothing of it to a page.
#[test]
fn a_stream_whose_events_are_not_json_objects_is_not_a_twin() {
    let fake = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = fake.local_addr().expect("addr");
    std::thread::spawn(move || {
        // The stage looks again every half second: a bounded number of answers is plenty.
        for conn in fake.incoming().take(100) {
            let Ok(mut conn) = conn else { continue };
            let mut head = [0u8; 2048];
            let _ = conn.read(&mut head);
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n\
                  event: picked-up\ndata: [\"3-7\", \"/io\"]\n\n",
            );
        }
    });
    let (_rt, stage) = start_stage_of(&[("pool", format!("http://{addr}"))]);
    let feed = b"GET /feed HTTP/1.1\r\nHost: stage\r\nConnection: close\r\n\r\n";
    testkit::wait_for("the stage to say the stream is not a twin's", || {
        testkit::raw_exchange(stage, feed, Duration::from_millis(300)).is_some_and(|r| {
            r.body.contains("carried no JSON object: not a twin") && !r.body.contains("3-7")
        })
    });
}
