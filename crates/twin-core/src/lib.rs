//! # twin-core — everything the two twins share
//!
//! The twins are two HTTP servers with the same routes, the same answers and the same access log.
//! They differ in one thing only — how they wait:
//!
//! - `pool-server` (WSGI-style, like gunicorn + Flask): a fixed pool of blocking workers; each
//!   worker holds one request from pick-up to response, so a burst is served in *waves*.
//! - `async-server` (ASGI-style, like uvicorn + FastAPI): event loops that park a waiting request
//!   and pick up the next one, so a burst of IO-bound requests is served *all at once*.
//!
//! This crate holds what must be identical so that the difference is the only thing you see:
//!
//! | module | what it holds |
//! |---|---|
//! | [`route`] | the route catalogue and what each route means on each twin |
//! | [`job`] | a [`Job`]: the timed work a route asks for; what is wrong with its parameters |
//! | [`request`] | target parsing, parameter validation, the decision: reply now or do a [`Job`] |
//! | [`request_id`] | every request's id: its own `X-Request-Id`, or one the twin makes |
//! | [`reply`] | every response body and header, as plain data |
//! | [`work`] | blocking waits, async waits, concurrent waits, CPU work, a fresh event loop |
//! | [`access_log`] | the reference log line, written when a worker picks a request up |
//! | [`events`] | `GET /events`: each request's life, live, for the stage — never perturbing it |
//! | [`head`] | one strict reading of a request head: what both twins refuse, and how |
//! | [`limits`] | how large a request may be: 414, 431, 413 |
//! | [`contract`] | what a twin says about itself (`GET /`, `/events`), typed, for burst and the stage to read |
//! | [`config`] | the shared command-line flags and the effective configuration |
//! | [`banner`] | the startup banner and the `listening on` line |
//! | [`listener`] | binding with a real backlog |
//! | [`platform`] | what differs between Linux, macOS and Windows: open files, refusing on drain |
//! | [`shutdown`] | Ctrl-C / SIGTERM, in-flight counting, the drain report |
//! | [`run`] | a twin process's life: flags, bind, banner, wait, drain, exit status |
//!
//! Each twin's `handler.rs` is where a route becomes threads and tasks; read those two side by side.

pub mod access_log;
pub mod banner;
pub mod config;
pub mod contract;
pub mod events;
pub mod head;
pub mod job;
pub mod limits;
pub mod listener;
pub mod platform;
pub mod reply;
pub mod request;
pub mod request_id;
pub mod route;
pub mod run;
pub mod shutdown;
pub mod timefmt;
pub mod work;

pub use config::{Config, ServerArgs};
pub use job::Job;
pub use reply::{Reply, WorkReport};
pub use request::{dispatch, Dispatch};
pub use route::{Route, ServerKind};
