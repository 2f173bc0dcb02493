//! # testkit — helpers for the twins' end-to-end tests
//!
//! One module a job, as axum's `test_helpers`; everything a test uses is also here at the root.
//!
//! | module | what it holds |
//! |---|---|
//! | [`process`] | [`ServerProcess`]: a real twin binary on port 0, its access log line by line, signals, always ended (by PID); [`wait_for`] a condition, not a guessed time; [`parse_log_line`] |
//! | [`http`] | [`raw_exchange`], [`get`]: HTTP over a plain TCP stream, for what a client library would not send; [`connect_resetting`] |
//! | [`waves`] | [`assert_waves`], [`assert_wave_shape`]: the queueing rule, with tolerances that hold on 2 busy cores; [`fire_ok`], [`keep_alive_burst`] as wrk or a browser fires; [`CpuHogs`] for a loaded laptop |
//! | [`bad_input`] | the bad-input catalogue both twins answer alike, and [`assert_survives_bad_input`] |
//! | [`contract`] | what both twins must do, one check each: the drain, no descriptors, idle connections, head limits, `HEAD`, `--log-finish`, `/events` |
//! | [`wire`] | raw byte streams in, every answer out, and where two twins' answers differ |
//! | [`events`] | a `GET /events` watcher that keeps up, and one that never reads |
//! | [`watchers`] | what watching and giving up cost, the same on both twins |
//! | [`browser`] | headless Chromium through WebDriver, for the live stage's tests |
//! | [`python`] | the real gunicorn + Flask and uvicorn + FastAPI, each with its events relay |

pub mod bad_input;
pub mod browser;
pub mod contract;
pub mod events;
pub mod http;
pub mod process;
pub mod python;
pub mod watchers;
pub mod waves;
pub mod wire;

pub use bad_input::*;
pub use contract::*;
pub use http::*;
pub use process::*;
pub use waves::*;
