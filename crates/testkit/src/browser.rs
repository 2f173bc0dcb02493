//! A real browser for the stage's tests: headless Chromium driven through WebDriver
//! (`chromedriver`), spoken in plain HTTP/1.1 with JSON — five calls, no client library.
//!
//! Debian: `apt-get install chromium chromium-driver`; macOS: `brew install --cask chromium
//! chromedriver`. `.ci/run` installs them when they are missing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A headless Chromium session; the driver (and so the browser) is ended on drop.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    /// The browser's profile, a folder of its own, removed on drop (left to itself, Chromium
    /// leaves a profile of a few MB in the temp folder after every session).
    profile: std::path::PathBuf,
}

/// Where the driver and the browser are, or why not: one line that says what to install.
pub fn find() -> Result<(String, Option<String>), String> {
    let on_path = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
                .map(|p| p.display().to_string())
        })
    };
    let driver = std::env::var("CHROMEDRIVER")
        .ok()
        .or_else(|| on_path("chromedriver"))
        .ok_or(
            "no chromedriver on PATH: install Chromium's WebDriver (Debian: `apt-get install \
                chromium chromium-driver`; macOS: `brew install --cask chromium chromedriver`) \
                or set CHROMEDRIVER",
        )?;
    let browser = std::env::var("CHROME")
        .ok()
        .or_else(|| on_path("chromium"))
        .or_else(|| on_path("chromium-browser"))
        .or_else(|| on_path("google-chrome"));
    Ok((driver, browser))
}

impl Browser {
    /// Start chromedriver and a headless browser window of `width`×`height`.
    pub fn start(width: u32, height: u32) -> Result<Browser, String> {
        let (driver_path, browser_path) = find()?;
        // A free port for the driver: it takes no port 0 of its own.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {driver_path}: {e}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let profile =
            std::env::temp_dir().join(format!("twins-browser-{}-{port}", std::process::id()));
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            profile,
        };
        let started = Instant::now();
        while call(addr, "GET", "/status", None).is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                return Err(format!("{driver_path} did not answer within 20 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut options = json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     format!("--window-size={width},{height}"),
                     format!("--user-data-dir={}", browser.profile.display())],
        });
        if let Some(path) = browser_path {
            options["binary"] = json!(path);
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}});
        let session = call(addr, "POST", "/session", Some(&caps))?;
        browser.session = session["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session: {session}"))?
            .to_owned();
        // The window includes the browser's own bars: grow it until the page itself is
        // width × height, as a projector at that resolution shows it.
        let inner = browser.eval("return [window.innerWidth, window.innerHeight];")?;
        let (w, h) = (
            inner[0].as_u64().unwrap_or(0),
            inner[1].as_u64().unwrap_or(0),
        );
        if w > 0 && h > 0 && (w, h) != (u64::from(width), u64::from(height)) {
            let rect =
                json!({"width": 2 * u64::from(width) - w, "height": 2 * u64::from(height) - h});
            call(addr, "POST", &browser.path("/window/rect"), Some(&rect))?;
        }
        Ok(browser)
    }

    fn path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Open `url`.
    pub fn goto(&self, url: &str) -> Result<(), String> {
        call(
            self.addr,
            "POST",
            &self.path("/url"),
            Some(&json!({ "url": url })),
        )
        .map(|_| ())
    }

    /// Run `script` (a function body; `return` gives the value) in the page.
    pub fn eval(&self, script: &str) -> Result<Value, String> {
        let body = json!({ "script": script, "args": [] });
        call(self.addr, "POST", &self.path("/execute/sync"), Some(&body))
    }

    /// Press and release one key, as a person would (`"b"`, `" "`, `"\u{E015}"` for ↓).
    pub fn press(&self, key: &str) -> Result<(), String> {
        let body = json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]});
        call(self.addr, "POST", &self.path("/actions"), Some(&body)).map(|_| ())
    }

    /// The window as PNG bytes.
    pub fn screenshot(&self) -> Result<Vec<u8>, String> {
        let shot = call(self.addr, "GET", &self.path("/screenshot"), None)?;
        base64_decode(shot.as_str().ok_or("no screenshot")?)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = call(self.addr, "DELETE", &self.path(""), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// One WebDriver call: its `value`, or the driver's error message.
fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    // The driver keeps the connection open whatever we ask: read the head, then Content-Length.
    let mut response = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head_end, length) = loop {
        let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("{method} {path}: the driver closed the connection"));
        }
        response.extend_from_slice(&chunk[..n]);
        if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while response.len() < head_end + length {
        let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&response[head_end..]);
    let value: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    let value = value.get("value").cloned().unwrap_or(Value::Null);
    match value.get("error") {
        Some(error) => Err(format!(
            "{method} {path}: {error}: {}",
            value["message"].as_str().unwrap_or("")
        )),
        None => Ok(value),
    }
}

fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        acc = (acc << 6) | u32::from(value(c).ok_or("not base64")?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_round_trips_what_a_driver_sends() {
        assert_eq!(
            super::base64_decode("aGVsbG8gd29ybGQ=").as_deref(),
            Ok(&b"hello world"[..])
        );
    }
}
