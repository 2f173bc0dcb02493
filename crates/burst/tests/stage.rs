//! The live stage in a real browser: headless Chromium, driven through WebDriver, reads what the
//! page shows while the stage fires at two twins started here — and what it shows when a twin
//! stops and starts again. Screenshots of each step go to `target/tmp/stage-screens/`.
//!
//! Needs Chromium and its WebDriver (`.ci/run` installs Debian's `chromium` and
//! `chromium-driver`); without them the test fails and says what to install, unless
//! `TWINS_SKIP_BROWSER=1` says to skip it.

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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let addr = rt.block_on(async {
        let config = StageConfig::watching(
            Target::parse(&format!("http://{pool}")).await.expect("url"),
            Target::parse(&format!("http://{event_loop}"))
                .await
                .expect("url"),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(stage::serve(listener, config, std::future::pending()));
        addr
    });
    (rt, addr)
}

struct Page {
    browser: Browser,
    shots: PathBuf,
}

impl Page {
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
    if std::env::var_os("TWINS_SKIP_BROWSER").is_some_and(|v| v == "1") {
        eprintln!("SKIPPED: TWINS_SKIP_BROWSER=1");
        return;
    }
    let browser = match Browser::start(1280, 720) {
        Ok(b) => b,
        Err(e) => panic!("{e} (or set TWINS_SKIP_BROWSER=1 to skip this test)"),
    };
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("stage-screens");
    std::fs::create_dir_all(&shots).expect("screenshot folder");
    let page = Page { browser, shots };

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
