//! A piece of timed work — what a route asks a worker to do — and what is wrong with a request's
//! parameters when it cannot become one. Plain data: `request.rs` makes them, `reply.rs` words them.

use std::time::Duration;

use crate::route::Route;

/// A piece of timed work a worker must carry out before it can answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub route: Route,
    /// T: how long the work takes in all.
    pub wait: Duration,
    /// K: how many concurrent waits (only `/async-io-multi` uses it; 1 elsewhere).
    pub tasks: u32,
}

impl Job {
    /// T/K: the length of each concurrent wait on `/async-io-multi`.
    pub fn slice(&self) -> Duration {
        self.wait / self.tasks.max(1)
    }
}

/// A rejected query parameter: which one, what was sent, and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub error: &'static str,
    pub parameter: String,
    pub received: String,
    pub allowed: String,
}
