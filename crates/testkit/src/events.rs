//! Watching a twin's `GET /events` from a test: a reader that keeps up, and one that never reads.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// One event as a watcher received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub name: String,
    pub data: Value,
    pub received: Instant,
}

impl Seen {
    /// The event's server time, µs since the Unix epoch.
    pub fn t_us(&self) -> u64 {
        self.data["t_us"].as_u64().unwrap_or(0)
    }

    pub fn id(&self) -> &str {
        self.data["id"].as_str().unwrap_or("")
    }
}

const REQUEST: &[u8] =
    b"GET /events HTTP/1.1\r\nHost: twin\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n";

/// A watcher that reads every event as it comes, on a thread of its own.
#[derive(Debug)]
pub struct Watcher {
    events: Receiver<Seen>,
    /// The response head, once read.
    pub head: String,
    /// Its connection, closed when the watcher is dropped (its reader thread may be asleep).
    stream: TcpStream,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

impl Watcher {
    /// Open `/events` and wait (up to 5 s) for its `hello`.
    pub fn open(addr: SocketAddr) -> (Watcher, Seen) {
        let mut stream = TcpStream::connect(addr).expect("connect for /events");
        stream.write_all(REQUEST).expect("ask for /events");
        let kept = stream.try_clone().expect("a handle on the connection");
        let (tx, events) = mpsc::channel();
        let (head_tx, head_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stream).lines().map_while(Result::ok);
            let head: Vec<String> = lines.by_ref().take_while(|l| !l.is_empty()).collect();
            let _ = head_tx.send(head.join("\n"));
            let (mut name, mut data) = (String::new(), String::new());
            for line in lines {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = d.to_owned();
                } else if line.is_empty() && !name.is_empty() {
                    let seen = Seen {
                        name: std::mem::take(&mut name),
                        data: serde_json::from_str(&data).unwrap_or(Value::Null),
                        received: Instant::now(),
                    };
                    if tx.send(seen).is_err() {
                        return;
                    }
                }
            }
        });
        let head = head_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a response head from /events");
        let watcher = Watcher {
            events,
            head,
            stream: kept,
        };
        let hello = watcher.next(Duration::from_secs(5)).expect("a hello");
        assert_eq!(hello.name, "hello", "{hello:?}");
        (watcher, hello)
    }

    /// The next event, if one comes within `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<Seen> {
        self.events.recv_timeout(timeout).ok()
    }

    /// Events until one named `name` for which `pick` holds (that one included); fails after 10 s.
    pub fn until(&self, name: &str, pick: impl Fn(&Seen) -> bool) -> Vec<Seen> {
        let end = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let e = self
                .next(left)
                .unwrap_or_else(|| panic!("no {name} event within 10 s; saw {seen:#?}"));
            let done = e.name == name && pick(&e);
            seen.push(e);
            if done {
                return seen;
            }
        }
    }

    /// Everything that has arrived so far, without waiting.
    pub fn drain(&self) -> Vec<Seen> {
        self.events.try_iter().collect()
    }
}

/// A watcher that asks for `/events` and then never reads: its socket's receive buffer is as
/// small as the system allows, so the server's side fills almost at once.
#[derive(Debug)]
pub struct Stalled(pub TcpStream);

impl Stalled {
    pub fn open(addr: SocketAddr) -> Stalled {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .expect("a socket");
        socket
            .set_recv_buffer_size(4096)
            .expect("a small receive buffer");
        socket.connect(&addr.into()).expect("connect for /events");
        let mut stream: TcpStream = socket.into();
        stream.write_all(REQUEST).expect("ask for /events");
        // Its status line, and no more: the server has given it a place.
        let mut status = [0u8; 12];
        stream
            .read_exact(&mut status)
            .expect("a status line from /events");
        assert_eq!(&status, b"HTTP/1.1 200", "a stalled watcher was refused");
        Stalled(stream)
    }

    /// Read on at last: every event name this watcher gets within `quiet` of the last one.
    pub fn read_all(self, quiet: Duration) -> Vec<(String, Value)> {
        self.0.set_read_timeout(Some(quiet)).expect("timeout");
        let lines = BufReader::new(self.0).lines().map_while(Result::ok);
        let mut out = Vec::new();
        let mut name = String::new();
        for line in lines {
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_owned();
            } else if let Some(d) = line.strip_prefix("data: ") {
                out.push((name.clone(), serde_json::from_str(d).unwrap_or(Value::Null)));
            }
        }
        out
    }
}
